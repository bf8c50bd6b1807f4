#!/usr/bin/env bash
# attn_ab.sh: `tnl bench attn --device cuda` of two source trees on the same GPU in one device
# call, alternating runs, so that a kernel change is judged against its base and not against
# another machine's figure (fresh machines differ by up to 5%).
#
# Usage: git archive <base-rev> | tar -x -C ab-old    (a plain directory: the device copy has no .git)
#        bench/attn_ab.sh ab-old [runs]                 (default 3 runs of each)
#   ARGS="..."   tnl bench attn arguments (default: bf16, B=4 H=32 D=E=128, N=1K and 32K, fwd and
#                fwd+bwd, rounded intermediates); several configurations separated by ';', each
#                run alternating the trees on every one
#   TESTS=1      also build this tree's attention gpu tests and run them (rounded-mode tests too),
#                then compute-sanitizer memcheck and racecheck on small cases, before the timings
# Builds ab-old into build-ab-old and this tree into build-ab-new, then prints the rows of each run.
set -uo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: bench/attn_ab.sh <old-source-dir> [runs]}
RUNS=${2:-3}
ARGS=${ARGS:-"--dtype bf16 --batch 4 --heads 32 --dim 128 --seqlens 1024,32768 --no-decode --no-validate --intermediates rounded"}
source scripts/deps-env.sh
G="-DTNL_CUDA_GENCODE=${TNL_CUDA_GENCODE:--gencode=arch=compute_90a,code=sm_90a}"
(cmake -S "$OLD" -B build-ab-old -G Ninja -DTNL_CUDA=ON "$G" >/dev/null && ninja -C build-ab-old -j8 tnl_cli >/dev/null 2>&1) &
NEW_TARGETS="tnl_cli"
[ "${TESTS:-0}" = 1 ] && NEW_TARGETS="tnl_cli backends_cuda_test_attention_cuda backends_cuda_test_rounded_cuda"
(cmake -S . -B build-ab-new -G Ninja -DTNL_CUDA=ON "$G" >/dev/null && ninja -C build-ab-new -j8 $NEW_TARGETS >build-ab-new.log 2>&1) &
wait
[ -x build-ab-old/tools/tnl ] && [ -x build-ab-new/tools/tnl ] || { echo "attn_ab: a build failed"; grep -m5 -A10 error build-ab-new.log; exit 1; }
if [ "${TESTS:-0}" = 1 ]; then
  source bench/cuda/attn_tests.sh
  attn_gpu_tests build-ab-new/tests ab- attn_ab
fi
IFS=';' read -r -a configs <<<"$ARGS"
for c in "${!configs[@]}"; do echo "config $c: tnl bench attn --device cuda ${configs[$c]}"; done
echo "| config | tree | run | mode | B | H | N | D | E | dtype | ms | tokens/s | GB/s | TFLOP/s | % of floor | bound | runs |"
for i in $(seq "$RUNS"); do
  for c in "${!configs[@]}"; do
    for b in build-ab-old build-ab-new; do
      "$b/tools/tnl" bench attn --device cuda ${configs[$c]} 2>/dev/null | grep -E '^\| (fwd|bwd|decode)' |
        sed "s/^/| $c | $b | $i /"
    done
  done
done | sort -s -t'|' -k2,2n -k5,5 -k8,8 -k3,3
