#!/usr/bin/env python3
"""python_glue_cpu.py: the host time of one tnl.lightning_attn call from Python on the CPU, on a
one-token problem (B = H = N = 1, D = E = 16), so that the kernel's own time is negligible:
the whole call, the same with autograd recording it, the bare C++ binding (tnl._C.forward with
prepared views) and one torch.empty for scale. The least of --rounds rounds of --calls calls (interleaved: the
fastest round is the one least disturbed by the machine's other work).
The gap between the first and the third figure is tnl's Python glue (checks, views, slopes).

  python3 bench/python_glue_cpu.py [--rounds 15] [--calls 1000]
"""
import argparse
import time

import torch

import tnl
from tnl import _C, _core


def per_call_us(fn, calls):
    for _ in range(100):
        fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=1000)
    a = ap.parse_args()
    torch.set_num_threads(1)
    q, k, v = (torch.randn(1, 1, 1, 16) for _ in range(3))
    qg = q.clone().requires_grad_()
    s = torch.tensor([0.1])
    o = torch.empty_like(v)
    views = [_core.seq_view(x, "bhnd") for x in (q, k, v, o)]
    cases = {
        "tnl.lightning_attn": lambda: tnl.lightning_attn(q, k, v, s),
        "the same, q requires grad": lambda: tnl.lightning_attn(qg, k, v, s),
        "tnl._C.forward alone": lambda: _C.forward("f32", "cpu", (1, 1, 1, 16, 16), *views, s.data_ptr(), 1.0, 0, 0,
                                                   0, 0, 1, 0, False, "compensated"),
        "torch.empty": lambda: torch.empty_like(v),
    }
    times = {name: [] for name in cases}
    for _ in range(a.rounds):  # interleaved rounds: a slow moment hits every case alike
        for name, fn in cases.items():
            times[name].append(per_call_us(fn, a.calls))
    print(f"torch {torch.__version__}, one thread, the least of {a.rounds} rounds of {a.calls} calls")
    print("| call | µs per call |")
    print("|---|---|")
    for name, t in times.items():
        print(f"| {name} | {min(t):.1f} |")


if __name__ == "__main__":
    main()
