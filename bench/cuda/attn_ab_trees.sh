#!/usr/bin/env bash
# attn_ab_trees.sh: `tnl bench attn` of two source trees on the same GPU in one device call,
# alternating runs (kernel changes that are not behind an environment switch; for those,
# env_ab.sh). Rows are printed last, grouped by shape, mode and tree.
#
# Usage: git archive <base-rev> | tar -x -C ab-old    (a plain directory: the device copy has no .git)
#        bench/cuda/attn_ab_trees.sh ab-old [runs]     (default 2 runs of each)
#   SHAPES=...  ';'-separated shape arguments (default: B=4 H=32 D=128 at 1K and 32K, B=1 H=16 at 128K)
#   MODES="rounded compensated"
set -uo pipefail
cd "$(dirname "$0")/../.."
OLD=${1:?usage: bench/cuda/attn_ab_trees.sh <old-source-dir> [runs]}
RUNS=${2:-2}
MODES=${MODES:-rounded compensated}
SHAPES=${SHAPES:-"--batch 4 --heads 32 --dim 128 --seqlens 1024,32768;--batch 1 --heads 16 --dim 128 --seqlens 131072"}
source scripts/deps-env.sh
G="-DTNL_CUDA_GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}"
(cmake -S "$OLD" -B build-ab-old -G Ninja -DTNL_CUDA=ON "$G" >/dev/null && ninja -C build-ab-old -j16 tnl_cli >/dev/null 2>&1) &
(cmake -S . -B build-ab-new -G Ninja -DTNL_CUDA=ON "$G" >/dev/null && ninja -C build-ab-new -j16 tnl_cli >/dev/null 2>&1) &
wait
[ -x build-ab-old/tools/tnl ] && [ -x build-ab-new/tools/tnl ] || { echo "attn_ab_trees: a build failed"; exit 1; }
rows=$(mktemp)
IFS=';' read -r -a shapes <<<"$SHAPES"
for i in $(seq "$RUNS"); do
  for m in $MODES; do
    for shape in "${shapes[@]}"; do
      for b in build-ab-old build-ab-new; do
        "$b/tools/tnl" bench attn --device cuda --dtype bf16 $shape --no-decode --no-validate \
          --intermediates "$m" 2>/dev/null | grep -E '^\| (fwd|bwd)' | sed "s#^#| $b | $m #" >>"$rows"
      done
    done
  done
done
echo "| tree | intermediates | mode | B | H | N | D | E | dtype | ms | tokens/s | GB/s | TFLOP/s | % of floor | bound | runs |"
sort -s -t'|' -k4,4 -k8,8 -k3,3 -k2,2 "$rows"
rm -f "$rows"
