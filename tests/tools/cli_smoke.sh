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

# data prepare: 40 paragraphs into train/val shards, deterministic; meta.json agrees with the shards.
for i in $(seq 1 40); do printf 'paragraph %d about the decay of the state.\nits second line.\n\n' "$i"; done > "$work/docs.txt"
"$tnl" data prepare --input "$work/docs.txt" --tokenizer "$work/tok.model" --output "$work/data" \
  --val-fraction 0.1 --append-eos 2>/dev/null > "$work/prep.txt"
grep -q "(36 documents, 1 shards).*(4 documents)" "$work/prep.txt" || fail "data prepare: $(cat "$work/prep.txt")"
cp "$work/data/train-00000.tok" "$work/train0.tok"
"$tnl" data prepare --input "$work/docs.txt" --tokenizer "$work/tok.model" --output "$work/data" \
  --val-fraction 0.1 --append-eos >/dev/null 2>&1
cmp -s "$work/data/train-00000.tok" "$work/train0.tok" || fail "data prepare is not deterministic"
mkdir "$work/brown"
printf '\n\n\tThe/at jury/nn said/vbd ``/`` no/at %s ./.\n' "''/''" > "$work/brown/ca01"
printf '\n\n\tIt/pps rained/vbd ,/, he/pps said/vbd ./.\n' > "$work/brown/cb01"
"$tnl" data brown-text --input "$work/brown" --output "$work/brown.txt" >/dev/null
[ "$(head -n 1 "$work/brown.txt")" = 'The jury said "no".' ] || fail "brown-text: $(head -n 1 "$work/brown.txt")"
"$tnl" data prepare --input "$work/brown" --format brown --tokenizer "$work/tok.model" --output "$work/bdata" \
  --val-fraction 0.5 >/dev/null 2>&1 || fail "data prepare --format brown"
"$py" - "$work/data" "$work/bdata" <<'PY' || fail "data prepare: shards and meta.json disagree"
import json, struct, sys, os
for d in sys.argv[1:]:
    meta = json.load(open(os.path.join(d, 'meta.json')))
    for split in ('train', 'val'):
        total = 0
        for name in meta['shards'][split]:
            b = open(os.path.join(d, name), 'rb').read()
            assert b[:8] == b'TNLTOKS\0', name
            ver, dt, n, vocab = struct.unpack('<IIQQ', b[8:32])
            assert (ver, dt, vocab) == (1, 2, meta['vocab_size']) and len(b) == 32 + 2 * n, name
            toks = struct.unpack('<%dH' % n, b[32:])
            assert max(toks) < vocab, name
            total += n
        assert total == meta['tokens'][split] > 0, (d, split, total)
PY

# train: a tiny model on those shards; Ctrl-C saves a checkpoint and exits cleanly, --resume goes
# on from it to the end, and the checkpoint is a model directory that generate reads.
"$tnl" train --data "$work/data" --tokenizer "$work/tok.model" --out "$work/run" --shape tiny \
  --seq-len 16 --batch 2 --steps 100000 --warmup 2 --log-every 1 --eval-every 0 --no-floor \
  --threads 1 > "$work/train.txt" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "^step" "$work/train.txt" && break; sleep 0.1; done
kill -INT $pid
wait $pid || fail "train: Ctrl-C did not exit cleanly: $(tail -3 "$work/train.txt")"
grep -q "^interrupted: " "$work/train.txt" || fail "train: no interrupted line: $(tail -3 "$work/train.txt")"
ckpt="$work/run/$(cat "$work/run/latest")"
for f in config.json model.safetensors tokenizer.model optimizer.safetensors trainer_state.json; do
  [ -f "$ckpt/$f" ] || fail "train: checkpoint lacks $f"
done
done_steps=$(sed -n 's/.*"step": \([0-9]*\).*/\1/p' "$ckpt/trainer_state.json")
"$tnl" train --out "$work/run" --resume --steps $((done_steps + 3)) --no-floor --threads 1 \
  > "$work/resume.txt" 2>&1 || fail "train --resume: $(tail -3 "$work/resume.txt")"
grep -q "^resuming .* at step $done_steps" "$work/resume.txt" || fail "train --resume: $(head -2 "$work/resume.txt")"
grep -q "^$((done_steps + 3)) steps" "$work/resume.txt" || fail "train --resume: $(tail -4 "$work/resume.txt")"
"$tnl" generate --model "$work/run/$(cat "$work/run/latest")" --prompt "paragraph" --max-tokens 4 \
  --greedy >/dev/null 2>&1 || fail "generate from a training checkpoint"
[ -s "$work/run/loss.png" ] && [ -s "$work/run/loss.csv" ] || fail "train: no loss curve"
"$tnl" info --model "$work/run" 2>/dev/null | grep -q "parameters" || fail "info on a training output directory"

expect_usage_error() {  # expect exit 2 and the flag named on stderr
  local flag=$1; shift
  set +e; "$tnl" "$@" >/dev/null 2>"$work/err"; local rc=$?; set -e
  [ "$rc" = 2 ] || fail "'$*' exited $rc, expected 2"
  grep -q -- "$flag" "$work/err" || fail "'$*': message does not name $flag: $(cat "$work/err")"
}
# bench attn, CPU, tiny: a validated row per mode; verbose, every run, the host's times and the
# queued time a call on stderr.
TNL_BENCH_VERBOSE=1 "$tnl" bench attn --seqlens 128 --batch 1 --heads 2 --dim 16 --reps 3 --no-decode --threads 1 \
  > "$work/bench.txt" 2> "$work/bench.err" || fail "bench attn: $(cat "$work/bench.err")"
grep -q "^| fwd | 1 | 2 | 128 |" "$work/bench.txt" || fail "bench attn: no fwd row: $(cat "$work/bench.txt")"
grep -q "^| fwd+bwd | 1 | 2 | 128 |" "$work/bench.txt" || fail "bench attn: no fwd+bwd row"
n=$(grep -cE "runs, ms:( [0-9.]+){3}; host ms a call:( [0-9.]+){3}; queued, ms a call: [0-9.]+$" "$work/bench.err" || true)
[ "$n" = 2 ] || fail "bench attn verbose: $n of 2 lines: $(cat "$work/bench.err")"

expect_usage_error "--model" generate --prompt hi
expect_usage_error "temperature" generate --model "$work/model" --prompt hi --temperature 0
expect_usage_error "--bogus" eval --model "$work/model" --text x --bogus 1
expect_usage_error "--device" generate --model "$work/model" --prompt hi --device tpu
expect_usage_error "--seqlens" bench attn --seqlens 0
expect_usage_error "--out" train --data "$work/data" --tokenizer "$work/tok.model"
expect_usage_error "--seq-len" train --data "$work/data" --tokenizer "$work/tok.model" --out "$work/r2" --seq-len 0 --no-floor
expect_usage_error "--shape" train --out "$work/run" --resume --shape tiny
expect_usage_error "--format" data prepare --input "$work/docs.txt" --tokenizer "$work/tok.model" --output "$work/d2" --format html
expect_usage_error "--tokenizer" data prepare --input "$work/docs.txt" --output "$work/d2"
expect_usage_error "--val-fraction" data prepare --input "$work/docs.txt" --tokenizer "$work/tok.model" --output "$work/d2" --val-fraction 1
echo "cli smoke: ok"
