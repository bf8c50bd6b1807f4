#!/usr/bin/env bash
# cli_smoke.sh TNL PYTHON SOURCE_DIR: the tnl tool end to end on a tiny random model:
# tokenizer train, info, generate (greedy is repeatable, batches work), eval, and that bad
# arguments exit 2 with a message naming the flag.
set -euo pipefail
tnl=$1 py=$2 src=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for i in $(seq 1 2000); do
  echo "the lightning attention model keeps a constant state of decay $i while the sequence grows."
done > "$work/corpus.txt"
"$tnl" tokenizer train --input "$work/corpus.txt" --output "$work/tok" --vocab-size 320 >/dev/null
"$py" "$src/tests/ref/make_model.py" "$work/model" 320
cp "$work/tok.model" "$work/model/tokenizer.model"

"$tnl" info --model "$work/model" > "$work/info.txt"
grep -q "parameters" "$work/info.txt" || fail "info: no parameter count"
grep -q "LRPE layers      0" "$work/info.txt" || fail "info: LRPE layers"

a=$("$tnl" generate --model "$work/model" --prompt "the lightning" --greedy --max-tokens 12 2>/dev/null)
b=$("$tnl" generate --model "$work/model" --prompt "the lightning" --greedy --max-tokens 12 2>/dev/null)
[ "$a" = "$b" ] || fail "greedy generation is not repeatable"
case "$a" in "the lightning"*) ;; *) fail "generate did not echo the prompt: $a" ;; esac
[ "${#a}" -gt "${#b}" ] && fail "impossible"
printf 'the state\na longer prompt about decay\n' > "$work/prompts.txt"
n=$("$tnl" generate --model "$work/model" --prompts-file "$work/prompts.txt" --max-tokens 8 --seed 3 2>/dev/null | grep -c '^\[')
[ "$n" = 2 ] || fail "batched generation printed $n sequences, expected 2"

"$tnl" eval --model "$work/model" --text "$work/corpus.txt" --max-tokens 3000 --chunk 500 2>/dev/null > "$work/eval.txt"
grep -Eq "^perplexity [0-9.]+ over 2999 tokens" "$work/eval.txt" || fail "eval: $(cat "$work/eval.txt")"

expect_usage_error() {  # expect exit 2 and the flag named on stderr
  local flag=$1; shift
  set +e; "$tnl" "$@" >/dev/null 2>"$work/err"; local rc=$?; set -e
  [ "$rc" = 2 ] || fail "'$*' exited $rc, expected 2"
  grep -q -- "$flag" "$work/err" || fail "'$*': message does not name $flag: $(cat "$work/err")"
}
expect_usage_error "--model" generate --prompt hi
expect_usage_error "temperature" generate --model "$work/model" --prompt hi --temperature 0
expect_usage_error "--bogus" eval --model "$work/model" --text x --bogus 1
expect_usage_error "--device" generate --model "$work/model" --prompt hi --device tpu
expect_usage_error "--seqlens" bench attn --seqlens 0
echo "cli smoke: ok"
