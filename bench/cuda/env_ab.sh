#!/usr/bin/env bash
# env_ab.sh: one device call that judges a kernel variant selected by an environment variable:
# builds once, runs the attention gpu tests, the rounded-intermediates tests and memcheck +
# racecheck on small cases under each value, then alternating benchmark runs of every value
# (same build, same GPU), rows printed last.
#
# Usage: VAR=TNL_CUDA_TC_WIDE VALUES="0 1 2" OUT=<dir> bench/cuda/env_ab.sh [build-dir]
#   a value may instead be comma-joined assignments, VALUES="A=0 A=1,B=3": VAR only names the rows then
#   RUNS=2      alternating runs of each value
#   SHAPES=...  `tnl bench attn` shape arguments, ';'-separated (default: B=4 H=32 D=128 at 1K
#               and 32K, B=1 H=16 D=128 at 128K, B=8 H=16 D=64 at 8K)
#   MODES="rounded compensated"  intermediates modes timed
#   TESTS=0     benchmarks only
#   TEST_VALUES="1 2"  the values tested (default: all of VALUES; the baseline's tests may be skipped)
#   SAN_ROUNDED=<gtest filter>  the rounded-mode cases run under memcheck and racecheck
#   TEST_TIMEOUT / BENCH_TIMEOUT=<seconds>  limits of each test binary / benchmark run (300)
set -uo pipefail
cd "$(dirname "$0")/../.."
VAR=${VAR:?set VAR, the environment variable that selects the variant}
VALUES=${VALUES:?set VALUES, e.g. "0 1"}
BUILD=${1:-build-gpu}
OUT=${OUT:-$BUILD/out}
RUNS=${RUNS:-2}
MODES=${MODES:-rounded compensated}
SHAPES=${SHAPES:-"--batch 4 --heads 32 --dim 128 --seqlens 1024,32768;--batch 1 --heads 16 --dim 128 --seqlens 131072;--batch 8 --heads 16 --dim 64 --seqlens 8192"}
mkdir -p "$OUT"
# The assignments of value $1, one a line.
assignments() { if [[ $1 == *=* ]]; then tr ',' '\n' <<<"$1"; else echo "$VAR=$1"; fi; }
source scripts/deps-env.sh
GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}
SECONDS=0
cmake -S . -B "$BUILD" -G Ninja -DTNL_CUDA=ON -DTNL_WERROR=ON "-DTNL_CUDA_GENCODE=$GENCODE" \
  -DCMAKE_CUDA_FLAGS=-Xptxas=-v >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
if ! ninja -C "$BUILD" -j16 tnl_cli backends_cuda_test_attention_cuda backends_cuda_test_rounded_cuda \
  >"$OUT/build.log" 2>&1; then
  grep -n -A12 -m8 "error" "$OUT/build.log" | head -80
  echo "env_ab: build FAILED"
  exit 1
fi
echo "env_ab: built in ${SECONDS}s"
T=$BUILD/tests
if [ "${TESTS:-1}" = 1 ]; then
  source bench/cuda/attn_tests.sh
  for v in ${TEST_VALUES:-$VALUES}; do
    mapfile -t a < <(assignments "$v")
    attn_gpu_tests "$T" "$OUT/${v//[=,]/_}_" "env_ab: ${a[*]}" "${a[@]}"
  done
fi
rows=$OUT/rows.txt
: >"$rows"
IFS=';' read -r -a shapes <<<"$SHAPES"
for i in $(seq "$RUNS"); do
  for shape in "${shapes[@]}"; do
    for m in $MODES; do
      for v in $VALUES; do
        mapfile -t a < <(assignments "$v")
        timeout "${BENCH_TIMEOUT:-300}" env "${a[@]}" $BUILD/tools/tnl bench attn --device cuda --dtype bf16 $shape --no-decode \
          --no-validate --intermediates $m 2>/dev/null | grep -E '^\| (fwd|bwd)' |
          sed "s/^/| ${a[*]} | $m /" >>"$rows"
      done
    done
  done
done
echo "| variant | intermediates | mode | B | H | N | D | E | dtype | ms | tokens/s | GB/s | TFLOP/s | % of floor | bound | runs |"
sort -s -t'|' -k3,3 -k7,7 -k5,5 -k4,4 -k2,2 "$rows"
