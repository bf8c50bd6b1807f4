#!/usr/bin/env bash
# ncu_scan.sh: Nsight Compute's view of one launch of the tensor-core chunk-scan kernel (the
# attention forward) - duration, occupancy, issue rate, warp stall reasons, and the SASS
# instruction mix per opcode and per stretch between barriers (bench/sass_summary.py) - to find
# what bounds it. Builds the tnl CLI with CUDA first.
#
# Usage: bench/ncu_scan.sh [build-dir]       (default build-ncu)
#   OUT=<dir>           where the report and logs go (default <build-dir>/out)
#   KERNEL=<regex>      the kernel (default chunk_scan_tc_kernel; chunk_scan_wgmma_kernel: the wgmma scan)
#   ARGS="..."          tnl bench attn arguments (default: bf16, B=4 H=32 D=E=128, N=32K,
#                       rounded intermediates, forward only)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-ncu}
OUT=${OUT:-$BUILD/out}
mkdir -p "$OUT"
source scripts/deps-env.sh
GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
cmake -S . -B "$BUILD" -G Ninja -DTNL_CUDA=ON "-DTNL_CUDA_GENCODE=$GENCODE" -DCMAKE_CUDA_FLAGS=-lineinfo \
  >"$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
ninja -C "$BUILD" -j"${JOBS:-16}" tnl_cli >"$OUT/build.log" 2>&1 || { grep -m5 -A8 error "$OUT/build.log"; exit 1; }
ARGS=${ARGS:-"--dtype bf16 --batch 4 --heads 32 --dim 128 --seqlens 32768 --mode fwd --no-decode --no-validate --intermediates rounded"}
timeout 300 ncu --clock-control none --kernel-name "regex:${KERNEL:-chunk_scan_tc_kernel}" --launch-skip 3 --launch-count 1 \
  --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
  --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
  --section InstructionStats --section SourceCounters -o "$OUT/scan" -f \
  "$BUILD/tools/tnl" bench attn --device cuda $ARGS >"$OUT/ncu.log" 2>&1 || { tail -20 "$OUT/ncu.log"; exit 1; }
ncu --import "$OUT/scan.ncu-rep" --page details --print-details all >"$OUT/details.txt" 2>&1
grep -E "Duration|Registers Per|Achieved Occupancy|Issue Slots Busy|Executed Ipc Active|Stall (Wait|Barrier|Short|Long|Math|Not Sel)|^ +(ALU|FMA|LSU|Tensor \(FP\)) " \
  "$OUT/details.txt" | awk '!seen[$0]++' | head -30
ncu --import "$OUT/scan.ncu-rep" --page source --csv --print-source sass >"$OUT/sass.csv" 2>/dev/null &&
  python3 bench/sass_summary.py "$OUT/sass.csv"
