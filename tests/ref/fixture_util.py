"""fixture_util.py: what the reference generators share: a TransNormerLLM config.json, random
weights (larger than the init so that every layer matters), and a safetensors writer."""
import json
import os
import struct

import torch


def seeded_generator(out):
    """A torch generator drawn afresh each run, or from TNL_FIXTURE_SEED to reproduce a run; the
    seed goes to OUT/seed.txt (the C++ tests print it)."""
    seed = int(os.environ.get("TNL_FIXTURE_SEED") or int.from_bytes(os.urandom(4), "little"))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "seed.txt"), "w") as f:
        f.write(f"{seed}\n")
    return torch.Generator().manual_seed(seed)


def hf_config(d, hid, heads, layers, glu, vocab, lrpe, no_scale):
    return {"model_type": "transnormer", "vocab_size": vocab, "decoder_embed_dim": d,
            "hidden_dim": hid, "decoder_layers": layers, "decoder_attention_heads": heads,
            "glu_dim": glu, "linear_use_lrpe_list": lrpe, "no_scale_embedding": no_scale,
            "linear_act_fun": "swish", "norm_type": "simplermsnorm", "bias": False,
            "init_std": 0.02, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def random_weights(cfg, gen):
    """fp32 weights under the checkpoint names (no lm_head: it is the embedding), N(0, 0.2²);
    LRPE θ at its initial value with a ±10% jitter."""
    d, hid, heads = cfg["decoder_embed_dim"], cfg["hidden_dim"], cfg["decoder_attention_heads"]
    dh, glu, vocab = hid // heads, cfg["glu_dim"], cfg["vocab_size"]
    rnd = lambda *s: torch.randn(*s, generator=gen) * 0.2
    w = {"model.embed_tokens.weight": rnd(vocab, d)}
    for l in range(cfg["decoder_layers"]):
        p = f"model.layers.{l}."
        w[p + "token_mixer.qkvu_proj.weight"] = rnd(4 * hid, d)
        w[p + "token_mixer.out_proj.weight"] = rnd(d, hid)
        if cfg["linear_use_lrpe_list"][l]:
            c = torch.arange(dh, dtype=torch.float64)
            theta = torch.stack([10000 ** (-2 * (h * dh + c) / d) for h in range(heads)])
            jitter = 1 + 0.1 * torch.rand(heads, 1, dh, generator=gen)
            w[p + "token_mixer.lrpe.theta"] = theta.float().view(heads, 1, dh) * jitter
        w[p + "channel_mixer.l1.weight"] = rnd(glu, d)
        w[p + "channel_mixer.l2.weight"] = rnd(glu, d)
        w[p + "channel_mixer.l3.weight"] = rnd(d, glu)
    return {k: v.float() for k, v in w.items()}


def write_safetensors(path, tensors):
    """F64, F32, BF16 or F16 tensors, in the order given."""
    dtypes = {torch.float64: "F64", torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        half = t.dtype in (torch.bfloat16, torch.float16)
        raw = t.view(torch.int16).numpy().tobytes() if half else t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
