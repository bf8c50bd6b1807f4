#!/usr/bin/env bash
# ncu_kernels.sh: the duration, DRAM traffic and grid of every kernel of one `tnl bench attn`
# configuration, each kernel alone (Nsight Compute serializes them), to see where a forward or
# backward spends its time: the segment pre-pass against the main scan, dq against dk/dv.
# Expects a CUDA build of the CLI (scripts/gpu-check.sh or bench/cuda/env_ab.sh make one).
#
# Usage: bench/cuda/ncu_kernels.sh [build-dir]      (default build-gpu)
#   ARGS="..."   tnl bench attn arguments (default: bf16, B=1 H=16 D=E=128, N=128K, rounded,
#                forward and backward)
#   KERNELS=...  regex of the kernel names profiled (default chunk_scan|decode: the attention's)
#   SKIP=0 COUNT=12  launches of those skipped, then profiled
#   OUT=<dir>    where the raw CSV goes (default <build-dir>/out)
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-gpu}
OUT=${OUT:-$BUILD/out}
mkdir -p "$OUT"
ARGS=${ARGS:-"--dtype bf16 --batch 1 --heads 16 --dim 128 --seqlens 131072 --mode fwdbwd --no-decode --no-validate --intermediates rounded --reps 1"}
csv=$OUT/ncu-kernels-$(echo "$ARGS" | tr -c 'a-zA-Z0-9' '_' | cut -c1-80).csv
timeout 300 ncu --clock-control none --print-kernel-base demangled --kernel-name "regex:${KERNELS:-chunk_scan|decode}" \
  --launch-skip "${SKIP:-0}" --launch-count "${COUNT:-12}" --csv \
  --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,launch__grid_size,launch__block_size \
  "$BUILD/tools/tnl" bench attn --device cuda $ARGS >"$csv" 2>"$OUT/ncu-kernels.err" ||
  { echo "ncu_kernels: ncu failed"; tail -20 "$OUT/ncu-kernels.err"; exit 1; }
echo "ncu_kernels: $ARGS"
python3 - "$csv" <<'EOF'
import csv, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head, rows = rows[0], rows[1:]
col = {n: i for i, n in enumerate(head)}
kernels = {}  # launch id -> {metric: value}
for r in rows:
    k = kernels.setdefault(r[col["ID"]], {"name": r[col["Kernel Name"]]})
    k[r[col["Metric Name"]]] = (r[col["Metric Unit"]], r[col["Metric Value"]].replace(",", ""))
def val(k, m, scale):
    unit, v = k.get(m, ("", "nan"))
    mult = {"ns": 1e-3, "nsecond": 1e-3, "us": 1, "usecond": 1, "ms": 1e3, "msecond": 1e3,
            "byte": 1, "B": 1, "Kbyte": 1e3, "KB": 1e3, "Mbyte": 1e6, "MB": 1e6, "Gbyte": 1e9,
            "GB": 1e9}.get(unit, float("nan"))
    return float(v) * mult / scale
print("| # | kernel | grid | block | us | DRAM read MB | DRAM write MB | GB/s |")
print("|---|---|---|---|---|---|---|---|")
for i, (kid, k) in enumerate(sorted(kernels.items(), key=lambda kv: int(kv[0]))):
    name = k["name"].split("(")[0][:100]
    us = val(k, "gpu__time_duration.sum", 1)
    rd, wr = val(k, "dram__bytes_read.sum", 1e6), val(k, "dram__bytes_write.sum", 1e6)
    print(f"| {kid} | {name} | {k.get('launch__grid_size', ('', '?'))[1]} | "
          f"{k.get('launch__block_size', ('', '?'))[1]} | {us:.1f} | {rd:.1f} | {wr:.1f} | "
          f"{(rd + wr) / 1e3 / (us * 1e-6):.0f} |")
EOF
