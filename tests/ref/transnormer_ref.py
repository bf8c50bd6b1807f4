"""transnormer_ref.py: TransNormerLLM in plain PyTorch, written from the spec
(shared/spec/transnormerllm.md), in float64: the reference the C++ model is tested against.
Deliberately naive: attention is the masked quadratic form with the decay matrix, no tiling."""
import math

import torch


def alibi_slopes(heads):
    def ladder(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]
    p2 = 2 ** int(math.floor(math.log2(heads)))
    if p2 == heads:
        return ladder(heads)
    return ladder(p2) + ladder(2 * p2)[0::2][: heads - p2]


def layer_slopes(heads, layer, num_layers):
    depth = layer / (num_layers - 1) if num_layers > 1 else 0.0
    return [s * (1 - depth + 1e-5) for s in alibi_slopes(heads)]


def srms(x):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


def lightning_naive(q, k, v, slopes):
    """q, k: (B, H, N, D); v: (B, H, N, E); causal linear attention with decay exp(-s(t-u))."""
    n = q.shape[2]
    t = torch.arange(n, dtype=torch.float64)
    dist = t[:, None] - t[None, :]
    out = []
    for h, s in enumerate(slopes):
        mask = torch.where(dist >= 0, torch.exp(-s * dist.clamp(min=0)), torch.zeros_like(dist))
        scores = (q[:, h] @ k[:, h].transpose(-1, -2)) * mask
        out.append(scores @ v[:, h])
    return torch.stack(out, 1)


def forward(cfg, w, ids, fp64_theta_grad=False, fp64_angle=False, fp32_slopes=False):
    """cfg: config dict; w: name -> float64 tensor; ids: (B, N) long. Returns logits (B, N, V).
    For gradient references: fp64_theta_grad keeps the LRPE angle's fp32 value (as released) but
    lets autograd see the float64 product θ·p, so that dθ is computed in float64; fp64_angle
    computes the angle itself in float64 (a smooth function of θ, for finite differences);
    fp32_slopes rounds the decay slopes to fp32 (as the C++ operator takes them)."""
    d, hid, heads = cfg["decoder_embed_dim"], cfg["hidden_dim"], cfg["decoder_attention_heads"]
    layers, dh = cfg["decoder_layers"], cfg["hidden_dim"] // cfg["decoder_attention_heads"]
    scale = 1.0 if cfg.get("no_scale_embedding", False) else math.sqrt(d)
    emb = w["model.embed_tokens.weight"]
    b, n = ids.shape
    h = scale * emb[ids]
    pos = torch.arange(n, dtype=torch.float32)
    for l in range(layers):
        p = f"model.layers.{l}."
        x = srms(h)
        q, k, v, u = (x @ w[p + "token_mixer.qkvu_proj.weight"].T).split(hid, -1)
        q, k = torch.nn.functional.silu(q), torch.nn.functional.silu(k)
        q, k, v = (t.view(b, n, heads, dh).transpose(1, 2) for t in (q, k, v))  # (B, H, N, dh)
        if cfg["linear_use_lrpe_list"][l]:
            theta = w[p + "token_mixer.lrpe.theta"].float()  # (H, 1, dh)
            angle = (theta * pos[None, :, None]).double()    # fp32 product, as released
            if fp64_angle:
                angle = w[p + "token_mixer.lrpe.theta"] * pos.double()[None, :, None]
            elif fp64_theta_grad:
                exact = w[p + "token_mixer.lrpe.theta"] * pos.double()[None, :, None]
                angle = exact + (angle - exact).detach()
            q = torch.cat([q * torch.cos(angle), q * torch.sin(angle)], -1)
            k = torch.cat([k * torch.cos(angle), k * torch.sin(angle)], -1)
        slopes = layer_slopes(heads, l, layers)
        if fp32_slopes:
            slopes = torch.tensor(slopes, dtype=torch.float32).tolist()
        o = lightning_naive(q, k, v, slopes)
        o = srms(o.transpose(1, 2).reshape(b, n, hid))
        h = h + (u * o) @ w[p + "token_mixer.out_proj.weight"].T
        x = srms(h)
        g = (x @ w[p + "channel_mixer.l1.weight"].T) * (x @ w[p + "channel_mixer.l2.weight"].T)
        h = h + g @ w[p + "channel_mixer.l3.weight"].T
    return srms(h) @ emb.T
