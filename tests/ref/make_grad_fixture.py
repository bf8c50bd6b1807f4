"""make_grad_fixture.py OUT_DIR: tiny random TransNormerLLM models with a batch of ids and targets,
and the float64 PyTorch autograd gradient of the mean next-token cross-entropy (targets -1
ignored) through transnormer_ref.py, for tests/train/test_transnormer_grad_ref.cpp:
    OUT_DIR/<case>/{config.json, model.safetensors (F32 weights), ids.i32, targets.i32,
                    shape.txt ("B N V"), loss.f64, grads.safetensors (F64, one tensor per weight),
                    loss_f64angle.f64, grads_f64angle.safetensors}
The reference runs on the fp32 weights promoted to float64. loss/grads: the released model, whose
LRPE angle θ·p is an fp32 product (what the C++ fp32 training code computes); *_f64angle: the
angle in float64 too (what the C++ fp64 instantiation computes, a smooth function of θ)."""
import json
import os
import sys

import torch

import transnormer_ref as ref
from fixture_util import hf_config, random_weights, seeded_generator, write_safetensors

CASES = [
    # name, d, hidden, heads, layers, glu, vocab, lrpe list, no_scale, B, N
    ("lrpe_h3", 24, 24, 3, 2, 40, 37, [1, 0], False, 2, 70),
    ("nolrpe_h4_noscale", 32, 32, 4, 3, 48, 41, [0, 0, 0], True, 2, 33),
    ("lrpe_all_h2", 16, 16, 2, 2, 24, 29, [1, 1], False, 1, 130),
    ("lrpe_h5_hidden_ne_d", 24, 30, 5, 2, 36, 31, [1, 0], True, 3, 19),
]


def main(out):
    gen = seeded_generator(out)
    for name, d, hid, heads, layers, glu, vocab, lrpe, no_scale, b, n in CASES:
        case_dir = os.path.join(out, name)
        os.makedirs(case_dir, exist_ok=True)
        cfg = hf_config(d, hid, heads, layers, glu, vocab, lrpe, no_scale)
        with open(os.path.join(case_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        w32 = random_weights(cfg, gen)
        write_safetensors(os.path.join(case_dir, "model.safetensors"), w32)
        ids = torch.randint(0, vocab, (b, n), generator=gen)
        targets = torch.randint(0, vocab, (b, n), generator=gen)
        targets[0, 3] = -1  # ignored targets
        targets[-1, -1] = -1
        ids.to(torch.int32).numpy().tofile(os.path.join(case_dir, "ids.i32"))
        targets.to(torch.int32).numpy().tofile(os.path.join(case_dir, "targets.i32"))
        # The released model (fp32 LRPE angle), and the all-float64 function (fp64 angle).
        for suffix, kw in (("", {"fp64_theta_grad": True}), ("_f64angle", {"fp64_angle": True})):
            kw["fp32_slopes"] = True  # the C++ operator takes fp32 slopes
            w = {k: v.double().requires_grad_(True) for k, v in w32.items()}
            logits = ref.forward(cfg, w, ids, **kw)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1),
                                                     ignore_index=-1)
            loss.backward()
            torch.tensor([loss.item()], dtype=torch.float64).numpy().tofile(
                os.path.join(case_dir, f"loss{suffix}.f64"))
            write_safetensors(os.path.join(case_dir, f"grads{suffix}.safetensors"),
                              {k: v.grad.detach().clone() for k, v in w.items()})
        with open(os.path.join(case_dir, "shape.txt"), "w") as f:
            f.write(f"{b} {n} {vocab}\n")
        print(name)


if __name__ == "__main__":
    main(sys.argv[1])
