#!/usr/bin/env bash
# decode_env_ab.sh: batch-1 GPU decode (1b shape, random bf16 weights) of one build under each
# value of an environment switch, alternating runs on the same GPU, after the GPU model tests
# under each value (and compute-sanitizer memcheck on the decode-attention test). Every step
# runs under a timeout, so that a hang costs a minute, not the call.
#
# Usage: VAR=TNL_GEMV_VEC VALUES="0 1" bench/decode_env_ab.sh [build-dir] [runs]   (default build-gpudecode, 3)
set -uo pipefail
cd "$(dirname "$0")/.."
VAR=${VAR:?set VAR}
VALUES=${VALUES:?set VALUES}
BUILD=${1:-build-gpudecode}
RUNS=${2:-3}
source bench/build_model_gpu.sh "$BUILD"
T=$BUILD/tests/model_test_transnormer_cuda
for v in $VALUES; do
  SECONDS=0
  env "$VAR=$v" TNL_TEST_PYTHON="$(command -v python3)" timeout 120 "$T" 2>&1 |
    grep -E "^\[ +(PASSED|FAILED)|Failure|Expected|Which is" | head -12 | sed "s/^/$VAR=$v tests: /"
  echo "$VAR=$v tests took ${SECONDS}s"
done
SECONDS=0
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 3 "$T" --gtest_filter='*SplitDecodeAttention*' 2>&1 |
  grep -E "ERROR SUMMARY|^\[ +(PASSED|FAILED)" | tr '\n' ' '
echo " memcheck rc=${PIPESTATUS[0]} (${SECONDS}s)"
echo "| variant | run | batch | decode tok/s | ms/step | % of floor | logits to host | without CUDA graph | state MiB |"
for i in $(seq "$RUNS"); do
  for v in $VALUES; do
    row=$(env "$VAR=$v" timeout 60 "$BUILD/tools/tnl" bench generate --device cuda --shape 1b --prompt-lens 1024 \
      --batches 1 --decode-tokens 128 2>/dev/null | grep -E '^\| 1 ' | head -1)
    echo "| $VAR=$v | $i $row"
  done
done
