#!/usr/bin/env bash
# decode_ab.sh: batch-1 GPU decode (1b shape, random bf16 weights) of two source trees on the
# same GPU in one device call, alternating runs, so that a change is judged against its base
# and not against another machine's figure (fresh machines differed by up to 5% this way).
#
# Usage: git archive <base-rev> | tar -x -C ab-old    (a plain directory: the device copy has no .git)
#        bench/decode_ab.sh ab-old [runs]               (default 3 runs of each)
# Builds ab-old into build-ab-old and this tree into build-gpudecode (with the GPU model's
# tests, which it runs), then prints the `tnl bench generate` batch-1 row of each run.
set -uo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/decode_ab.sh <old-source-dir> [runs]}
RUNS=${2:-3}
source scripts/deps-env.sh
G="-DTNL_CUDA_GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}"
(cmake -S "$OLD" -B build-ab-old -G Ninja -DTNL_CUDA=ON "$G" >/dev/null && ninja -C build-ab-old -j16 tnl_cli >/dev/null 2>&1) &
(cmake -S . -B build-gpudecode -G Ninja -DTNL_CUDA=ON -DTNL_WERROR=ON "$G" >/dev/null &&
  ninja -C build-gpudecode -j16 tnl_cli model_test_transnormer_cuda >/dev/null 2>&1) &
wait
[ -x build-ab-old/tools/tnl ] && [ -x build-gpudecode/tools/tnl ] || { echo "decode_ab: a build failed"; exit 1; }
TNL_TEST_PYTHON=$(command -v python3) build-gpudecode/tests/model_test_transnormer_cuda 2>&1 |
  grep -E "^\[ +(PASSED|FAILED)|Failure" | head
echo "| tree | run | batch | decode tok/s | ms/step | % of floor | without CUDA graph | ... |"
for i in $(seq "$RUNS"); do
  for b in build-ab-old build-gpudecode; do
    row=$("$b/tools/tnl" bench generate --device cuda --shape 1b --prompt-lens 1024 --batches 1 --decode-tokens 128 \
      2>/dev/null | grep -E '^\| 1 ' | head -1)
    echo "| $b | $i $row"
  done
done
