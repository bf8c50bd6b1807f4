#!/usr/bin/env bash
# decode_variants.sh: batch-1 decode of the GPU model (1b shape, random bf16 weights) under its
# switches, in one device call: builds the CLI and the GPU model's tests (as gpu-check.sh does),
# runs the tests, then `tnl bench generate` once per variant (TNL_ATTN_SPLIT, TNL_ATTN_PDL,
# TNL_GEMV_VEC; VARIANTS="A B ..." to choose,
# "_" joining the switches of one variant),
# the per-launch profile (TNL_PROFILE=1, decode without graphs) and, where ncu reads the
# counters, each decode kernel's time and DRAM throughput alone.
#
# Usage: bench/decode_variants.sh [build-dir]   (OUT=<dir> for the logs; default <build-dir>/out;
#        NCU=0 skips the per-kernel ncu table)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpu}
OUT=${OUT:-$BUILD/out}
mkdir -p "$OUT"
GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
source scripts/deps-env.sh
SECONDS=0
cmake -S . -B "$BUILD" -G Ninja -DTNL_CUDA=ON -DTNL_WERROR=ON "-DTNL_CUDA_GENCODE=$GENCODE" >"$OUT/configure.log" 2>&1 ||
  { tail -20 "$OUT/configure.log"; exit 1; }
ninja -C "$BUILD" -j"${JOBS:-16}" tnl_cli model_test_transnormer_cuda >"$OUT/build.log" 2>&1 ||
  { grep -m8 -A12 error "$OUT/build.log"; exit 1; }
echo "decode_variants: built in ${SECONDS}s"
fail=0
TNL_TEST_PYTHON=$(command -v python3) "$BUILD/tests/model_test_transnormer_cuda" >"$OUT/model-tests.log" 2>&1 || fail=1
grep -E "^\[ +(FAILED|PASSED|  FAILED  ) |Failure|fused GEMV, B 1" "$OUT/model-tests.log" | head -30
if command -v compute-sanitizer >/dev/null 2>&1; then  # the decode kernels
  # racecheck reports hazards inside cuBLAS's own kernels (nvjet_*, the prefill GEMMs), and
  # crashes when they are filtered out; so the whole run, then the hazards counted by kernel.
  for tool in memcheck racecheck; do
    timeout 240 compute-sanitizer --tool $tool "$BUILD/tests/model_test_transnormer_cuda" \
      --gtest_filter='*GraphsFusedGemv*' >"$OUT/sanitize-$tool.log" 2>&1
    echo "decode_variants: compute-sanitizer $tool: exit $? ($(grep -m1 -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize-$tool.log"))"
    grep -E "^========= +(Error|Warning)" -A1 "$OUT/sanitize-$tool.log" | grep -oE "at [A-Za-z_0-9]+" | sort | uniq -c |
      sed 's/^/    hazards /'
    ours=$(grep -cE "gemv_kernel|attn_split_kernel" "$OUT/sanitize-$tool.log")
    echo "    reports naming the decode kernels (gemv_kernel, attn_split_kernel): $ours"
  done
fi

TNL=$BUILD/tools/tnl
bench() { env "$@" "$TNL" bench generate --device cuda --shape 1b --prompt-lens 1024 --batches 1,16 --decode-tokens 64 2>&1; }
VARIANTS=${VARIANTS:-"TNL_ATTN_SPLIT=0_TNL_GEMV_VEC=0 DEFAULT=1 TNL_ATTN_PDL=0 TNL_GEMV_VEC=0 TNL_ATTN_SPLIT=0 DEFAULT=2"}
for v in $VARIANTS; do
  log="$OUT/bench-${v//=/-}.log"
  bench ${v//_TNL/ TNL} >"$log" || fail=1
  echo "== $v: $(grep -E '^\| 1024 ' "$log" | cut -d'|' -f6,7) | by batch: $(grep -E '^\| (1|16) ' "$log" | cut -d'|' -f2-5,7 | tr '\n' ' ')"
done
TNL_PROFILE=1 "$TNL" bench generate --device cuda --shape 1b --prompt-lens 1024 --batches 1 --decode-tokens 64 \
  >"$OUT/profile.log" 2>&1 || fail=1
grep -A14 "^TNL_PROFILE" "$OUT/profile.log"

if [ "${NCU:-1}" = 1 ] && command -v ncu >/dev/null 2>&1; then
  # One decode step's kernels (prefill uses cuBLAS; the first 81 GEMV/attention launches are
  # the warm-up step).
  timeout 150 ncu --clock-control none --kernel-name regex:"gemv_kernel|attn_split_kernel" --launch-skip 81 \
    --launch-count 81 --csv --print-units base --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
    "$TNL" bench generate --device cuda --shape 1b --prompt-lens 1024 --batches 1 --decode-tokens 4 \
    >"$OUT/ncu.csv" 2>"$OUT/ncu.err" || echo "decode_variants: ncu failed: $(tail -2 "$OUT/ncu.err")"
  python3 - "$OUT/ncu.csv" <<'EOF' || true
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
if not rows: sys.exit("no ncu rows")
h = rows[0]; ki = h.index("Kernel Name"); mi = h.index("Metric Name"); vi = h.index("Metric Value"); ii = h.index("ID")
per = collections.OrderedDict()
for r in rows[1:]:
    per.setdefault(r[ii], {"name": r[ki]})[r[mi]] = float(r[vi].replace(",", ""))
tot = collections.OrderedDict()
for i, k in enumerate(per.values()):
    t = k["gpu__time_duration.sum"]; b = k["dram__bytes_read.sum"] + k["dram__bytes_write.sum"]
    key = ("attn" if "attn" in k["name"] else "gemv") + "#" + str(i % 5 if i < 80 else 9)
    a = tot.setdefault(key, [0.0, 0.0, 0]); a[0] += t; a[1] += b; a[2] += 1
print("ncu (alone, one decode step): kernel-in-layer, count, us per launch, MB per launch, GB/s")
for k, (t, b, n) in tot.items():
    print(f"  {k:8s} {n:3d} {t / n / 1e3:8.2f} us {b / n / 1e6:8.2f} MB {b / t:8.1f} GB/s")
print(f"  all: {sum(v[0] for v in tot.values()) / 1e3:.1f} us")
EOF
fi
exit $fail
