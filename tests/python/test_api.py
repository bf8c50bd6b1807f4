# test_api.py: the helpers: slope ladders, the Triton package's call (lightning_attn_func), the
# decode step (continues a prefix exactly like the full forward), and the package metadata.
import math

import numpy as np
import pytest
import torch

import tnl
from conftest import make_qkv, make_slopes
from reference_torch import lightning_attn_ref, rel_err


def test_slope_ladders():
    s = tnl.slopes_transnormer(8, 0, 24)
    assert s.dtype == torch.float32 and s.shape == (8,)
    want = [2 ** (-8 * (h + 1) / 8) * (1 + 1e-5) for h in range(8)]
    assert torch.allclose(s, torch.tensor(want), rtol=1e-6, atol=0)
    last = tnl.slopes_transnormer(8, 23, 24)  # last layer: factor 1e-5
    assert torch.allclose(last, torch.tensor([2 ** (-(h + 1)) * 1e-5 for h in range(8)]),
                          rtol=1e-5, atol=0)
    # ALiBi's interleave for 12 heads: the 8-ladder, then every other value of the 16-ladder.
    a12 = tnl.alibi_slopes(12)
    want12 = [2 ** (-(h + 1)) for h in range(8)] + [2 ** (-0.5 * (2 * i + 1)) for i in range(4)]
    assert torch.allclose(a12, torch.tensor(want12), rtol=1e-6, atol=0)
    m = tnl.slopes_minimax(16, 3, 32)
    assert torch.allclose(m, torch.tensor([(8 / 16) * (1 - 3 / 32) * h for h in range(16)]),
                          rtol=1e-6, atol=1e-7)


def test_lightning_attn_func_matches_triton_call():
    B, H, N, D, E = 2, 4, 33, 16, 32
    q, k, v = make_qkv(B, H, N, D, E)
    s = tnl.alibi_slopes(H).reshape(H, 1, 1)  # the Triton package's _build_slope_tensor shape
    o = tnl.lightning_attn_func(q, k, v, s)
    o_ref, _ = lightning_attn_ref(q, k, v, s)
    assert o.shape == (B, H, N, E) and rel_err(o, o_ref) <= 1e-5
    # Like the Triton kernels it accepts inputs whose last dim is not contiguous.
    qt = q.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert torch.allclose(tnl.lightning_attn_func(qt, k, v, s), o, rtol=0, atol=1e-6)
    with pytest.raises(tnl.ArgumentError, match="argument 's'"):
        tnl.lightning_attn_func(q, k, v)


def test_slope_forms():
    q, k, v = make_qkv(1, 3, 6, 4, 4)
    base = tnl.lightning_attn(q, k, v, torch.tensor([0.5, 0.5, 0.5]))
    for s in (0.5, [0.5] * 3, (0.5, 0.5, 0.5), np.full(3, 0.5), torch.full((1, 3, 1, 1), 0.5),
              torch.full((3,), 0.5, dtype=torch.float64)):
        assert torch.equal(tnl.lightning_attn(q, k, v, s), base)


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
def test_decode_continues_the_forward(layout):
    B, H, N, D, E = 2, 3, 12, 8, 16
    q, k, v = make_qkv(B, H, N + 1, D, E, layout)
    s = make_slopes(H)
    o_all, sf_all = tnl.lightning_attn(q, k, v, s, scale=0.5, layout=layout,
                                       output_final_state=True)
    seq = 2 if layout == "bhnd" else 1
    prefix = [x.narrow(seq, 0, N) for x in (q, k, v)]
    _, state = tnl.lightning_attn(*prefix, s, scale=0.5, layout=layout, output_final_state=True)
    last = [x.select(seq, N) for x in (q, k, v)]  # (B, H, dim)
    o = tnl.decode_step(*last, state, s, scale=0.5)
    assert o.shape == (B, H, E)
    assert rel_err(o, o_all.select(seq, N)) <= 1e-5
    assert rel_err(state, sf_all) <= 1e-5  # the state was updated in place


def test_decode_numpy_and_float64():
    q, k, v = (x.numpy() for x in make_qkv(2, 2, 1, 4, 3))
    state = np.random.default_rng(0).standard_normal((2, 2, 4, 3)).astype(np.float32)
    s0 = state.copy()
    o = tnl.decode_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state, [0.0, 1.0])
    lam = np.exp(-np.array([0.0, 1.0], np.float32))[None, :, None, None]
    want_state = lam * s0 + k[:, :, 0, :, None] * v[:, :, 0, None, :]
    want_o = np.einsum("bhd,bhde->bhe", q[:, :, 0], want_state)
    assert np.allclose(state, want_state, atol=1e-6) and np.allclose(o, want_o, atol=1e-6)
    st64 = torch.from_numpy(s0.astype(np.float64))
    q64, k64, v64 = (torch.from_numpy(x[:, :, 0].astype(np.float64)) for x in (q, k, v))
    o64 = tnl.decode_step(q64, k64, v64, st64, [0.0, 1.0])
    assert o64.dtype == torch.float64 and np.allclose(o64.numpy(), want_o, atol=1e-6)


def test_metadata():
    assert tnl.__version__ and tnl.max_head_dim == 256
    assert isinstance(tnl.cuda_built(), bool)
    assert math.isclose(float(tnl.alibi_slopes(1)[0]), 2 ** -8)
