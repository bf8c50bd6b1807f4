#!/usr/bin/env python3
"""python_overhead.py: how much of tnl.lightning_attn's time through Python is the GPU's.

For each shape, forward only, three figures (median of --reps):
  events ms   CUDA events around the call, as bench/sdpa_python.py times it: the host work
              before the launch counts, since the GPU idles while the host prepares the call;
  GPU ms      the same events with the GPU held busy (torch.cuda._sleep) while the host enqueues
              the call, so that only the GPU's time is counted (what `tnl bench attn` reports);
  host ms     perf_counter around the call alone (no synchronization inside): Python, the
              custom op's dispatch and the launch.
with inputs that require grad (autograd records the call) and without. --breakdown then splits
the host time of one call into its layers (the custom op's dispatch, the autograd.Function,
tnl's Python glue, the C++ binding with the launch): the best median of --rounds interleaved
rounds.

  python3 bench/python_overhead.py [--configs "4,32,1024,128;4,32,32768,128"] [--layout bhnd]
"""
import argparse
import statistics
import time

import torch

import tnl
from sdpa_python import timer  # bench/ is on the path when run as a script


def median_ms(fn, reps, busy_cycles):
    """Median ms of fn() between CUDA events; busy_cycles > 0: the GPU kept busy that long
    (torch.cuda._sleep) before each call's first event, so the host's enqueueing is hidden."""
    busy = (lambda: torch.cuda._sleep(busy_cycles)) if busy_cycles else None
    return timer("cuda", fn, reps, before=busy)


def host_ms(fn, reps):
    times = []
    for _ in range(reps + 2):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
        torch.cuda.synchronize()
    return statistics.median(times[2:])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configs", default="4,32,1024,128;4,32,32768,128", help="B,H,N,D;... (E = D)")
    ap.add_argument("--layout", default="bhnd", choices=["bhnd", "bnhd"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--intermediates", default="compensated", choices=["compensated", "rounded"])
    ap.add_argument("--breakdown", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the breakdown")
    args = ap.parse_args()
    busy = int(4e7)  # ~20 ms at 2 GHz: longer than any host preparation of one call
    print(f"tnl.lightning_attn forward, bf16, layout {args.layout}, {args.intermediates}, "
          f"{torch.cuda.get_device_name()}")
    print("| B, H, N, D | requires grad | events ms | GPU ms | host ms |")
    print("|---|---|---|---|---|")
    for cfg in args.configs.split(";"):
        B, H, N, D = (int(x) for x in cfg.split(","))
        shape = (B, H, N, D) if args.layout == "bhnd" else (B, N, H, D)
        s = tnl.slopes_transnormer(H, 0, 2)
        for grad in (False, True):
            q, k, v = ((torch.randn(shape, device="cuda") / D ** 0.5).to(torch.bfloat16)
                       .requires_grad_(grad) for _ in range(3))
            fn = lambda: tnl.lightning_attn(q, k, v, s, layout=args.layout,  # noqa: E731
                                            intermediates=args.intermediates)
            print(f"| {B}, {H}, {N}, {D} | {grad} | {median_ms(fn, args.reps, 0):.3f} | "
                  f"{median_ms(fn, args.reps, busy):.3f} | {host_ms(fn, args.reps):.3f} |")
        if args.breakdown:
            breakdown(q.detach(), k.detach(), v.detach(), s, args)


def breakdown(q, k, v, s, args):
    """Host ms of each layer of one forward call (no grad)."""
    from tnl import _core, _torch_ops
    st = _torch_ops.slopes_tensor("x", s, q.shape[1 if args.layout == "bhnd" else 2])
    it, lay = args.intermediates, args.layout
    sz = _core.check_inputs("x", q, k, v, lay)
    owner, sp = _core.slopes_array("x", st, sz.H)
    o = torch.empty_like(v)
    stream = torch.cuda.current_stream().cuda_stream
    views = [_core.seq_view(x, lay) for x in (q, k, v, o)]
    call = lambda: tnl.lightning_attn(q, k, v, s, layout=lay, intermediates=it)  # noqa: E731

    def forced_op():
        _torch_ops._FORCE_OP = True
        try:
            return call()
        finally:
            _torch_ops._FORCE_OP = False

    print(f"|   plain eager path taken: {_torch_ops._plain_eager(q, k, v, None)} | | | | |")
    layers = [
        ("tnl.lightning_attn", call),
        ("tnl.lightning_attn through the custom op (TNL_CUSTOM_OP=1)", forced_op),
        ("custom op tnl::lightning_attn_fwd", lambda: torch.ops.tnl.lightning_attn_fwd(
            q, k, v, st, 1.0, lay, None, False, None, 0, it)),
        ("autograd.Function, sizes passed", lambda: _torch_ops.LightningAttnFunction.apply(
            q, k, v, st, 1.0, lay, None, False, None, 0, it, sz)),
        ("autograd.Function, sizes checked again", lambda: _torch_ops.LightningAttnFunction.apply(
            q, k, v, st, 1.0, lay, None, False, None, 0, it, None)),
        ("_core.forward (Python glue + binding)", lambda: _core.forward(
            "x", q, k, v, st, 1.0, lay, None, False, None, it)),
        ("_C.forward (binding + launch)", lambda: _core._C.forward(
            sz.dtype, sz.device, (sz.B, sz.N, sz.H, sz.D, sz.E), *views, sp, 1.0, 0, 0, 0, 0, 0,
            stream, False, it)),
    ]
    # Rounds interleaved, the best median of each: the host's timing drifts between rounds.
    best = {name: host_ms(fn, 100) for name, fn in layers}
    for _ in range(args.rounds - 1):
        for name, fn in layers:
            best[name] = min(best[name], host_ms(fn, 100))
    for name, _ in layers:
        print(f"|   host ms of {name} | | | | {best[name]:.3f} |")
    del owner


if __name__ == "__main__":
    main()
