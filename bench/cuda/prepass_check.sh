#!/usr/bin/env bash
# prepass_check.sh: the device call for the GEMM pre-pass (src/backends/cuda/prepass_tc.cuh):
# env_ab.sh with TNL_CUDA_PREPASS=0|1 (build, attention + rounded gpu tests, memcheck + racecheck
# incl. segmented bf16 cases with and without sub-segments, alternating benchmarks of segmented
# and unsegmented shapes in both modes), the 10^6-token test with it on, each kernel's time
# under Nsight Compute both ways, and the GEMM pre-pass's own Nsight Compute sections.
#
# Usage: OUT=<dir> bench/cuda/prepass_check.sh [build-dir]      (default build-gpu)
#   NCU_DETAIL=0  skip the pre-pass kernel's detailed sections
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-gpu}
OUT=${OUT:-$BUILD/out}
mkdir -p "$OUT"
SAN_ROUNDED='*bf16_N65:*bf16_D128_E128:*bf16_segmented_*:*f16_varlen' VAR=TNL_CUDA_PREPASS \
  VALUES="0 1" RUNS=2 MODES="rounded compensated" OUT="$OUT/ab" \
  SHAPES="--batch 1 --heads 16 --dim 128 --seqlens 131072;--batch 1 --heads 32 --dim 128 --seqlens 65536;--batch 4 --heads 32 --dim 128 --seqlens 1024,32768" \
  bench/cuda/env_ab.sh "$BUILD"
SECONDS=0
if "$BUILD/tests/backends_cuda_test_attention_cuda" --gtest_filter='*LongSequence1e6*' >"$OUT/long.log" 2>&1; then
  echo "prepass_check: LongSequence1e6 passed (${SECONDS}s)"
else
  echo "prepass_check: LongSequence1e6 FAILED"; grep -E "Failure|Expected|Which is|FAILED" "$OUT/long.log" | head -20
fi
ARGS="--dtype bf16 --batch 1 --heads 16 --dim 128 --seqlens 131072 --mode fwdbwd --no-decode --no-validate --intermediates rounded --reps 1"
for v in 0 1; do
  TNL_CUDA_PREPASS=$v COUNT=6 KERNELS='chunk_scan|prepass' OUT="$OUT/nk" ARGS="$ARGS" \
    bench/cuda/ncu_kernels.sh "$BUILD" | sed "s/^/TNL_CUDA_PREPASS=$v /"
done
TNL_CUDA_PREPASS_SPLIT=1 COUNT=1 KERNELS='prepass' OUT="$OUT/nk" ARGS="$ARGS" \
  bench/cuda/ncu_kernels.sh "$BUILD" | sed "s/^/TNL_CUDA_PREPASS_SPLIT=1 /"
if [ "${NCU_DETAIL:-1}" = 1 ]; then
  timeout 120 ncu --clock-control none --kernel-name regex:prepass --launch-count 1 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis \
    "$BUILD/tools/tnl" bench attn --device cuda $ARGS >"$OUT/ncu-prepass-detail.txt" 2>&1
  grep -E "Duration|Throughput|Achieved Occupancy|Theoretical Occupancy|Warp Cycles Per Issued|Stall|Registers|Block Limit|Issued Ipc|Mem Busy|Max Bandwidth|L2 Hit" \
    "$OUT/ncu-prepass-detail.txt" | head -40
fi
