# slopes.py: the per-head decay-rate ladders (spec §3), computed by the C++ library.
#
# Each returns a float32 CPU torch.Tensor of shape (heads,) when PyTorch is installed, else a
# list of floats; lightning_attn takes either. λ = exp(-slope).
from . import _C


def _as_tensor(values):
    try:
        import torch
    except ImportError:
        return list(values)
    return torch.tensor(values, dtype=torch.float32)


def slopes_transnormer(heads, layer=0, num_layers=1):
    """TransNormerLLM: the ALiBi ladder 2^(-8(h+1)/H) (ALiBi's interleave when H is not a power
    of two) times (1 - layer/(num_layers-1) + 1e-5)."""
    return _as_tensor(_C.slopes_transnormer(heads, layer, num_layers))


def slopes_minimax(heads, layer=0, num_layers=1):
    """MiniMax / FLA: (8/H)(1 - layer/num_layers) h for h = 0..H-1."""
    return _as_tensor(_C.slopes_minimax(heads, layer, num_layers))


def alibi_slopes(heads):
    """The bare ALiBi ladder, no layer factor (the Triton package's _build_slope_tensor)."""
    return _as_tensor(_C.alibi_slopes(heads))
