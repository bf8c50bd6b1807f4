"""make_fixtures.py OUT_DIR: tiny random TransNormerLLM checkpoints written as genuine Hugging Face
directories (torch.save .bin, sharded .bin with its index, safetensors; fp32 and bf16 weights),
each with token ids and the float64 reference logits of transnormer_ref.py:
    OUT_DIR/<case>/{config.json, weights..., ids.i32, logits.f64, shape.txt}"""
import json
import os
import sys

import torch

import fixture_util
import transnormer_ref as ref
from fixture_util import hf_config, write_safetensors

CASES = [
    # name, d, heads, layers, glu, lrpe list, no_scale, format, dtype
    ("lrpe_h3_bin", 24, 3, 2, 40, [1, 0], False, "bin", torch.float32),
    ("nolrpe_h4_noscale_sharded", 32, 4, 3, 48, [0, 0, 0], True, "bin_sharded", torch.float32),
    ("lrpe_all_h2_safetensors", 16, 2, 2, 24, [1, 1], False, "safetensors", torch.float32),
    ("lrpe_h4_bf16_safetensors_sharded", 32, 4, 2, 40, [1, 0], False, "safetensors_sharded", torch.bfloat16),
]
VOCAB = 97


def config(d, heads, layers, glu, lrpe, no_scale):
    return hf_config(d, d, heads, layers, glu, VOCAB, lrpe, no_scale)


def random_weights(cfg, gen):
    w = fixture_util.random_weights(cfg, gen)
    w["lm_head.weight"] = w["model.embed_tokens.weight"]  # tied: one storage in the .bin
    return w


def save(case_dir, fmt, w):
    names = list(w)
    if fmt == "bin":
        torch.save(w, os.path.join(case_dir, "pytorch_model.bin"))
    elif fmt == "safetensors":
        write_safetensors(os.path.join(case_dir, "model.safetensors"),
                          {k: v for k, v in w.items() if k != "lm_head.weight"})
    else:
        half = len(names) // 2
        shards = [names[:half], names[half:]]
        weight_map = {}
        for i, part in enumerate(shards):
            if fmt == "bin_sharded":
                fname = f"pytorch_model-0000{i + 1}-of-00002.bin"
                torch.save({k: w[k] for k in part}, os.path.join(case_dir, fname))
            else:
                part = [k for k in part if k != "lm_head.weight"]
                fname = f"model-0000{i + 1}-of-00002.safetensors"
                write_safetensors(os.path.join(case_dir, fname), {k: w[k] for k in part})
            weight_map.update({k: fname for k in part})
        index = "pytorch_model.bin.index.json" if fmt == "bin_sharded" else "model.safetensors.index.json"
        with open(os.path.join(case_dir, index), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f)


class Evil:
    """Unpickling this runs a shell command: what a hostile checkpoint looks like."""
    def __reduce__(self):
        return (os.system, ("echo tnl-was-pwned > pwned.txt",))


def write_evil(out):
    case_dir = os.path.join(out, "evil_pickle")
    os.makedirs(case_dir, exist_ok=True)
    cfg = config(16, 2, 1, 24, [1], False)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    torch.save({"model.embed_tokens.weight": Evil()}, os.path.join(case_dir, "pytorch_model.bin"))


def main(out):
    write_evil(out)
    gen = fixture_util.seeded_generator(out)
    for name, d, heads, layers, glu, lrpe, no_scale, fmt, dtype in CASES:
        case_dir = os.path.join(out, name)
        os.makedirs(case_dir, exist_ok=True)
        cfg = config(d, heads, layers, glu, lrpe, no_scale)
        with open(os.path.join(case_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        w = {k: v.to(dtype) for k, v in random_weights(cfg, gen).items()}
        w["lm_head.weight"] = w["model.embed_tokens.weight"]
        save(case_dir, fmt, w)
        b, n = 2, 150  # more than two blocks of 64, with a partial one
        ids = torch.randint(0, VOCAB, (b, n), generator=gen)
        logits = ref.forward(cfg, {k: v.double() for k, v in w.items()}, ids)
        ids.to(torch.int32).numpy().tofile(os.path.join(case_dir, "ids.i32"))
        logits.numpy().tofile(os.path.join(case_dir, "logits.f64"))
        with open(os.path.join(case_dir, "shape.txt"), "w") as f:
            f.write(f"{b} {n} {VOCAB}\n")
        print(name)


if __name__ == "__main__":
    main(sys.argv[1])
