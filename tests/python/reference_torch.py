# reference_torch.py: the pure-PyTorch oracle for the Python tests (spec §1, the naive quadratic
# form in fp64), differentiable by autograd, so it also gives the reference gradients.
import torch


def to_bhnd(x, layout):
    return x if layout == "bhnd" else x.transpose(1, 2)


def from_bhnd(x, layout):
    return x if layout == "bhnd" else x.transpose(1, 2)


def _one_sequence(q, k, v, s, scale, s0):
    """q, k: (H, L, D); v: (H, L, E); s: (H); s0: (H, D, E) or None -> o (H, L, E), sf (H, D, E)."""
    L = q.shape[1]
    t = torch.arange(L, dtype=torch.float64)
    diff = t[:, None] - t[None, :]                                       # (L, L): t - u
    decay = torch.exp(-s[:, None, None] * diff.clamp(min=0))              # (H, L, L)
    mask = torch.where(diff >= 0, decay, torch.zeros_like(decay))
    o = (q @ k.transpose(1, 2) * mask) @ v                                # (H, L, E)
    w = torch.exp(-s[:, None] * (L - 1 - t)[None, :])                     # (H, L): λ^{L-1-u}
    sf = (k * w[:, :, None]).transpose(1, 2) @ v                          # (H, D, E)
    if s0 is not None:
        o = o + torch.exp(-s[:, None, None] * (t + 1)[None, :, None]) * (q @ s0)
        sf = sf + torch.exp(-s * L)[:, None, None] * s0
    return scale * o, sf


def lightning_attn_ref(q, k, v, slope, scale=1.0, layout="bhnd", initial_state=None,
                       cu_seqlens=None):
    """Returns (o, final_state), both fp64; every step in fp64."""
    # Slopes are fp32 in the API: round them the same way.
    s = torch.as_tensor(slope, dtype=torch.float32).reshape(-1).double().to(q.device)
    q64, k64, v64 = (to_bhnd(x, layout).double() for x in (q, k, v))    # (B, H, N, dim)
    s0 = None if initial_state is None else initial_state.double()
    outs, states = [], []
    if cu_seqlens is None:
        for b in range(q64.shape[0]):
            o, sf = _one_sequence(q64[b], k64[b], v64[b], s, scale, None if s0 is None else s0[b])
            outs.append(o)
            states.append(sf)
        o = torch.stack(outs)
    else:
        cu = [int(x) for x in cu_seqlens]
        for i in range(len(cu) - 1):
            a, e = cu[i], cu[i + 1]
            if e == a:  # an empty sequence: its state passes through
                states.append(torch.zeros(q64.shape[1], q64.shape[3], v64.shape[3],
                                          dtype=torch.float64) if s0 is None else s0[i])
                continue
            o, sf = _one_sequence(q64[0, :, a:e], k64[0, :, a:e], v64[0, :, a:e], s, scale,
                                  None if s0 is None else s0[i])
            outs.append(o)
            states.append(sf)
        o = torch.cat(outs, dim=1)[None]
    return from_bhnd(o, layout), torch.stack(states)


def rel_err(x, ref):
    """‖x − ref‖ / ‖ref‖ in fp64 (the spec's metric)."""
    x, ref = x.double(), ref.double()
    return float((x - ref).norm() / ref.norm().clamp(min=1e-300))
