#!/usr/bin/env python3
# sdpa_python.py: tnl.lightning_attn against torch SDPA (causal softmax attention, FlashAttention
# on the GPU), from Python, forward and forward+backward. Validates tnl first (fp64 PyTorch
# reference on a small case, spec §4 bound), then times with CUDA events (warm-up, median), and
# prints one markdown row per configuration: ms, GB/s, TFLOP/s and % of the floor (spec §5:
# max(bytes / measured copy bandwidth, FLOPs / measured bf16 GEMM rate)).
#
#   python3 bench/sdpa_python.py                      # GPU, bf16, the spec's table
#   python3 bench/sdpa_python.py --device cpu --dtype f32 --configs 1,4,512,64 --reps 3
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import tnl

DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}
DEFAULT_CONFIGS = "4,32,1024,128;4,32,4096,128;4,32,32768,128;1,16,131072,128;8,16,8192,64"


def timer(device, fn, reps, warmup=2, before=None):
    """Median milliseconds of fn() (CUDA events on the GPU, perf_counter on the CPU); before(),
    when given, runs ahead of each timed call on the GPU, outside the events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device == "cuda":
            if before is not None:
                before()
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def measure_floor(device, dtype):
    """(copy GB/s counting read + write, GEMM TFLOP/s at dtype) measured on this device."""
    n = (1 << 28) if device == "cuda" else (1 << 24)
    x = torch.empty(n, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    ms = timer(device, lambda: y.copy_(x), 5)
    bw = 2 * x.numel() * 4 / ms / 1e6
    m = 8192 if device == "cuda" else 1024
    a = torch.randn(m, m, device=device, dtype=dtype if device == "cuda" else torch.float32)
    ms = timer(device, lambda: a @ a, 5)
    return bw, 2 * m ** 3 / ms / 1e9


def validate(device, dtype):
    q, k, v = ((torch.randn(1, 4, 300, 64, device=device) / 8).to(dtype) for _ in range(3))
    s = tnl.slopes_transnormer(4, 0, 2)
    o = tnl.lightning_attn(q, k, v, s).double().cpu()
    q64, k64, v64 = (x.double().cpu() for x in (q, k, v))
    t = torch.arange(300, dtype=torch.float64)
    diff = t[:, None] - t[None, :]
    sd = s.double()[:, None, None]
    mask = torch.where(diff >= 0, torch.exp(-sd * diff.clamp(min=0)), torch.zeros(()))
    ref = (q64 @ k64.transpose(-1, -2) * mask) @ v64
    err = float((o - ref).norm() / ref.norm())
    bound = 1e-4 if dtype == torch.float32 else 1e-2
    if not err <= bound:
        raise SystemExit(f"validation failed: rel err {err:.3g} > {bound} (refusing to time)")
    return err


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    ap.add_argument("--configs", default=DEFAULT_CONFIGS, help="B,H,N,D;... (E = D)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--layout", default="bhnd", choices=["bhnd", "bnhd"])
    args = ap.parse_args()
    dev, dtype = args.device, DTYPES[args.dtype]
    es = torch.tensor([], dtype=dtype).element_size()
    err = validate(dev, dtype)
    bw, gemm = measure_floor(dev, dtype)
    has_sdpa = hasattr(F, "scaled_dot_product_attention")
    name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    print(f"device {dev} ({name}), {args.dtype}, "
          f"layout {args.layout}; validated (rel err {err:.2e}); floor: copy {bw:.0f} GB/s, "
          f"GEMM {gemm:.2f} TFLOP/s")
    print("| B, H, N, D | op | fwd ms | fwd GB/s | fwd TFLOP/s | fwd % floor | fwd+bwd ms | "
          "fwd+bwd % floor | SDPA fwd ms | SDPA fwd+bwd ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cfg in args.configs.split(";"):
        B, H, N, D = (int(x) for x in cfg.split(","))
        E, C = D, 64
        shape = (B, H, N, D) if args.layout == "bhnd" else (B, N, H, D)
        q, k, v = ((torch.randn(shape, device=dev) / D ** 0.5).to(dtype).requires_grad_()
                   for _ in range(3))
        do = torch.randn(shape, device=dev).to(dtype)
        s = tnl.slopes_transnormer(H, 0, 2)
        fwd = lambda: tnl.lightning_attn(q, k, v, s, layout=args.layout)  # noqa: E731
        fwdbwd = lambda: torch.autograd.grad(fwd(), (q, k, v), do)  # noqa: E731
        t_f, t_fb = timer(dev, fwd, args.reps), timer(dev, fwdbwd, args.reps)
        tokens = B * H * N
        bytes_f, bytes_b = tokens * (2 * D + 2 * E) * es, tokens * (4 * D + 3 * E) * es
        flops_f = tokens * (2 * C * D + 2 * C * E + 4 * D * E)
        floor_f = max(bytes_f / bw / 1e6, flops_f / gemm / 1e9)
        floor_fb = max((bytes_f + bytes_b) / bw / 1e6, 3.5 * flops_f / gemm / 1e9)
        sd_f = sd_fb = "n/a"
        if has_sdpa and N * N * B * H <= (1 << 34):
            qs, ks, vs = (x if args.layout == "bhnd" else x.transpose(1, 2) for x in (q, k, v))
            sfwd = lambda: F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)  # noqa: E731
            try:
                sd_f = f"{timer(dev, sfwd, args.reps):.3f}"
                dos = do if args.layout == "bhnd" else do.transpose(1, 2)
                sfb = lambda: torch.autograd.grad(sfwd(), (q, k, v), dos)  # noqa: E731
                sd_fb = f"{timer(dev, sfb, args.reps):.3f}"
            except RuntimeError as e:  # out of memory at long N
                sd_f = sd_fb = f"({type(e).__name__})"
                torch.cuda.empty_cache() if dev == "cuda" else None
        print(f"| {B}, {H}, {N}, {D} | tnl | {t_f:.3f} | {bytes_f / t_f / 1e6:.0f} | "
              f"{flops_f / t_f / 1e9:.2f} | {100 * floor_f / t_f:.0f}% | {t_fb:.3f} | "
              f"{100 * floor_fb / t_fb:.0f}% | {sd_f} | {sd_fb} |")


if __name__ == "__main__":
    main()
