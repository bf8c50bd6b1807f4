#!/usr/bin/env bash
# generate_check.sh: the GPU generation path in one device call: build, the GPU model's tests,
# the GPU sampler's kernel tests under compute-sanitizer (memcheck, racecheck), memcheck on the
# model's decode tests that choose tokens on the GPU,
# `tnl generate --device cuda` end to end on a tiny random model (greedy equals a draw cut to
# the top token by top-k or top-p, seeded draws repeat, batches run), then `tnl bench generate` (1b shape, 1K
# prompts, batches 1, 16, 64), its table last.
#
# Usage: bench/generate_check.sh [build-dir]   (default build-gpudecode; needs python3 with torch
#        for the checkpoint fixtures and the tiny model)
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-gpudecode}
source bench/build_model_gpu.sh "$BUILD"
T=$BUILD/tests/model_test_transnormer_cuda
TNL=$BUILD/tools/tnl
TNL_TEST_PYTHON=$(command -v python3) timeout 180 "$T" 2>&1 | grep -E "^\[ +(PASSED|FAILED)|Failure|Expected|Which is" | head -20
S=$BUILD/tests/model_test_sample_cuda  # the token choice's kernels alone: quick under racecheck
timeout 120 "$S" 2>&1 | grep -E "^\[ +(PASSED|FAILED)|Failure|Expected|Which is" | head -20
for tool in memcheck racecheck; do
  timeout 300 compute-sanitizer --tool $tool "$S" 2>&1 |
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|^\[ +(PASSED|FAILED)" | tr '\n' ' '
  echo " ($tool, the sampler's kernels)"
done
timeout 420 compute-sanitizer --tool memcheck "$T" --gtest_filter='*SampledOnTheGpu*:*GreedyStepsKept*' 2>&1 |
  grep -E "ERROR SUMMARY|^\[ +(PASSED|FAILED)" | tr '\n' ' '
echo " (memcheck, the model's decode with tokens chosen on the GPU)"

work=$(mktemp -d)
for i in $(seq 1 2000); do
  echo "the lightning attention model keeps a constant state of decay $i while the sequence grows."
done > "$work/corpus.txt"
"$TNL" tokenizer train --input "$work/corpus.txt" --output "$work/tok" --vocab-size 320 >/dev/null 2>&1
python3 tests/ref/make_model.py "$work/model" 320 && cp "$work/tok.model" "$work/model/tokenizer.model"
gen() { "$TNL" generate --model "$work/model" --device cuda --max-tokens 24 "$@" 2>/dev/null; }
a=$(gen --prompt "the lightning" --greedy)                   # chosen on the GPU (decode_sample)
b=$(gen --prompt "the lightning" --top-k 1 --seed 9)         # a draw from the top token alone
c=$(gen --prompt "the lightning" --top-p 0.000001 --seed 9)  # the smallest prefix: the top token
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" = "$c" ] && echo "generate: greedy = top-k 1 = top-p 1e-6: ok" ||
  echo "generate: FAIL: greedy '$a', top-k 1 '$b', top-p 1e-6 '$c'"
c=$(gen --prompt "the lightning" --seed 4 --top-p 0.9); d=$(gen --prompt "the lightning" --seed 4 --top-p 0.9)
[ -n "$c" ] && [ "$c" = "$d" ] && echo "generate: sampling on the GPU repeatable with a seed: ok" || echo "generate: FAIL: '$c' vs '$d'"
printf 'the state\na longer prompt about decay\n' > "$work/prompts.txt"
n=$("$TNL" generate --model "$work/model" --device cuda --prompts-file "$work/prompts.txt" --max-tokens 8 --seed 3 2>/dev/null | grep -c '^\[')
[ "$n" = 2 ] && echo "generate: a batch of 2 prompts: ok" || echo "generate: FAIL: batch printed $n sequences"
rm -rf "$work"

timeout 240 "$TNL" bench generate --device cuda --shape 1b --prompt-lens 1024 --batches 1,16,64 --decode-tokens 64 2>/dev/null
