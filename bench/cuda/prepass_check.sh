#!/usr/bin/env bash
# prepass_check.sh: the first device call for the GEMM pre-pass (src/backends/cuda/prepass_tc.cuh):
# env_ab.sh with TNL_CUDA_PREPASS=0|1 (build, attention + rounded gpu tests, memcheck + racecheck
# incl. a segmented bf16 case, alternating benchmarks of segmented shapes in both modes), the
# 10^6-token test with it on, then each kernel's time under Nsight Compute both ways.
#
# Usage: OUT=<dir> bench/cuda/prepass_check.sh [build-dir]      (default build-gpu)
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-gpu}
OUT=${OUT:-$BUILD/out}
mkdir -p "$OUT"
SAN_ROUNDED='*bf16_N65:*bf16_D128_E128:*bf16_segmented_N3001:*f16_varlen' VAR=TNL_CUDA_PREPASS \
  VALUES="0 1" RUNS=2 MODES="rounded compensated" OUT="$OUT/ab" \
  SHAPES="--batch 1 --heads 16 --dim 128 --seqlens 131072;--batch 1 --heads 32 --dim 128 --seqlens 65536;--batch 1 --heads 16 --dim 64 --seqlens 131072" \
  bench/cuda/env_ab.sh "$BUILD"
SECONDS=0
if "$BUILD/tests/backends_cuda_test_attention_cuda" --gtest_filter='*LongSequence1e6*' >"$OUT/long.log" 2>&1; then
  echo "prepass_check: LongSequence1e6 passed (${SECONDS}s)"
else
  echo "prepass_check: LongSequence1e6 FAILED"; grep -E "Failure|Expected|Which is|FAILED" "$OUT/long.log" | head -20
fi
for v in 0 1; do
  for m in rounded compensated; do
    TNL_CUDA_PREPASS=$v COUNT=6 OUT="$OUT/nk" ARGS="--dtype bf16 --batch 1 --heads 16 --dim 128 --seqlens 131072 --mode fwdbwd --no-decode --no-validate --intermediates $m --reps 1" \
      bench/cuda/ncu_kernels.sh "$BUILD" | sed "s/^/TNL_CUDA_PREPASS=$v $m /"
  done
done
