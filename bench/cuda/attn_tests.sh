# attn_tests.sh: sourced by bench/attn_ab.sh and bench/cuda/env_ab.sh. The GPU checks a kernel
# change gets before it is timed: the attention gpu tests, the rounded-intermediates tests, and
# compute-sanitizer memcheck + racecheck on small cases, one summary line each.
#
# attn_gpu_tests <tests-dir> <log-prefix> <label> [VAR=value ...]
#   runs <tests-dir>/backends_cuda_test_{attention,rounded}_cuda under the VAR=value settings;
#   logs <log-prefix>{attention,rounded,memcheck,racecheck}.log
#   SAN_ROUNDED=<gtest filter>  the rounded cases run under the sanitizers
#   TEST_TIMEOUT=<seconds>      each test binary's limit (default 300; the sanitizer runs get 3x):
#                               a hung kernel fails its run instead of the whole device call
attn_gpu_tests() {
  local tests=$1 pre=$2 label=$3 t tool r1 r2 lim=${TEST_TIMEOUT:-300}
  shift 3
  for t in attention rounded; do
    SECONDS=0
    if timeout "$lim" env "$@" "$tests/backends_cuda_test_${t}_cuda" --gtest_filter='-*LongSequence1e6*' >"${pre}$t.log" 2>&1; then
      echo "$label: $t tests passed (${SECONDS}s): $(grep -E '^\[  PASSED' "${pre}$t.log")"
    else
      r1=$?
      echo "$label: $t tests FAILED (rc=$r1 after ${SECONDS}s; 124: over the ${lim}s limit)"
      grep -E "Failure|Expected|Which is|error|\[  FAILED|ERROR|Hazard|Invalid" "${pre}$t.log" | head -30
    fi
  done
  for tool in memcheck racecheck; do
    SECONDS=0
    timeout $((3 * lim)) env "$@" compute-sanitizer --tool "$tool" --error-exitcode 3 "$tests/backends_cuda_test_attention_cuda" \
      --gtest_filter='*SmallForSanitizers*' >"${pre}$tool.log" 2>&1
    r1=$?
    timeout $((3 * lim)) env "$@" compute-sanitizer --tool "$tool" --error-exitcode 3 "$tests/backends_cuda_test_rounded_cuda" \
      --gtest_filter="${SAN_ROUNDED:-*bf16_N65:*bf16_D128_E128:*f16_varlen}" >>"${pre}$tool.log" 2>&1
    r2=$?
    echo "$label: $tool rc=$r1,$r2 (${SECONDS}s): $(grep -cE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' \
      "${pre}$tool.log") of 2 runs clean"
    grep -m5 -E "Hazard|Invalid|ERROR SUMMARY: [1-9]" "${pre}$tool.log"
  done
  return 0
}
