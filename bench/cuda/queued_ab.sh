#!/usr/bin/env bash
# queued_ab.sh: `tnl bench attn` rows beside each configuration's time a call when calls are
# queued back to back (the GPU ahead of the host, as in a training loop; TNL_BENCH_VERBOSE=1),
# for each value of an environment switch, alternating, in one device call. Benchmarks only.
#
# Usage: VAR=TNL_CUDA_BWD_STREAMS VALUES="1 0" bench/cuda/queued_ab.sh [build-dir]
#   ROUNDS=2   alternating rounds
#   SHAPES=... `tnl bench attn` shape arguments, ';'-separated (default: the issue's shapes)
set -uo pipefail
cd "$(dirname "$0")/../.."
VAR=${VAR:?set VAR, the environment variable that selects the variant}
VALUES=${VALUES:?set VALUES, e.g. "1 0"}
BUILD=${1:-build-gpu}
SHAPES=${SHAPES:-"--batch 4 --heads 32 --dim 128 --seqlens 1024,32768;--batch 1 --heads 16 --dim 128 --seqlens 131072,1048576;--batch 8 --heads 16 --dim 64 --seqlens 8192;--batch 4 --heads 16 --dim 256 --dim-v 128 --seqlens 8192"}
source scripts/deps-env.sh
GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
log=$(mktemp)
cmake -S . -B "$BUILD" -G Ninja -DTNL_CUDA=ON -DTNL_WERROR=ON "-DTNL_CUDA_GENCODE=$GENCODE" >"$log" 2>&1 || { tail -30 "$log"; exit 1; }
ninja -C "$BUILD" -j16 tnl_cli >"$log" 2>&1 || { grep -m8 -A8 error "$log"; exit 1; }
IFS=';' read -r -a shapes <<<"$SHAPES"
echo "| variant | mode | B | H | N | D | E | dtype | ms | queued ms a call |"
for round in $(seq "${ROUNDS:-2}"); do
  for shape in "${shapes[@]}"; do
    for v in $VALUES; do
      env "$VAR=$v" TNL_BENCH_VERBOSE=1 "$BUILD/tools/tnl" bench attn --device cuda --dtype bf16 $shape --no-decode \
        --no-validate --intermediates rounded 2>&1 | python3 -c '
import re, sys
queued = None
for line in sys.stdin:
    m = re.search(r"queued, ms a call: ([0-9.]+)", line)
    if m: queued = m.group(1)
    elif line.startswith("| fwd"):
        f = [x.strip() for x in line.strip().strip("|").split("|")]
        print("| " + sys.argv[1] + " | " + " | ".join(f[:8]) + " | " + str(queued) + " |")
' "$VAR=$v"
    done
  done
done
