"""make_model.py OUT_DIR VOCAB: one random TransNormerLLM (d=32, 2 layers, LRPE in layer 0) saved as
a Hugging Face directory with safetensors weights, for end-to-end tests of the command-line tool."""
import json
import os
import sys

import torch

import make_fixtures as fx


def main(out, vocab):
    fx.VOCAB = vocab
    os.makedirs(out, exist_ok=True)
    cfg = fx.config(32, 4, 2, 48, [1, 0], False)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    w = fx.random_weights(cfg, torch.Generator().manual_seed(7))
    fx.save(out, "safetensors", w)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
