# test_forward.py: tnl.lightning_attn's outputs and final states against the pure-PyTorch fp64
# reference: both layouts, any strides, D != E, N around the block size, scale, initial states,
# variable length, fp16/bf16, NumPy arrays. Bound: the spec's ‖out − ref‖/‖ref‖ (fp32: 1e-5).
import numpy as np
import pytest
import torch

import tnl
from conftest import make_qkv, make_slopes
from reference_torch import lightning_attn_ref, rel_err

FP32_BOUND = 1e-5   # spec §4, fp32 on the CPU
HALF_BOUND = 1e-2   # spec §4, fp16/bf16


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
@pytest.mark.parametrize("N", [1, 2, 63, 64, 65, 130])
def test_forward_matches_reference(layout, N):
    B, H, D, E = 2, 4, 16, 24
    q, k, v = make_qkv(B, H, N, D, E, layout)
    s = make_slopes(H)
    o, sf = tnl.lightning_attn(q, k, v, s, layout=layout, output_final_state=True)
    o_ref, sf_ref = lightning_attn_ref(q, k, v, s, layout=layout)
    assert o.shape == v.shape and o.dtype == v.dtype
    assert sf.shape == (B, H, D, E) and sf.dtype == torch.float32
    assert rel_err(o, o_ref) <= FP32_BOUND
    assert rel_err(sf, sf_ref) <= FP32_BOUND


def test_scale_and_initial_state():
    B, H, N, D, E = 2, 3, 37, 8, 8
    q, k, v = make_qkv(B, H, N, D, E)
    s = make_slopes(H)
    s0 = torch.randn(B, H, D, E)
    o, sf = tnl.lightning_attn(q, k, v, s, scale=0.37, initial_state=s0, output_final_state=True)
    o_ref, sf_ref = lightning_attn_ref(q, k, v, s, scale=0.37, initial_state=s0)
    assert rel_err(o, o_ref) <= FP32_BOUND
    assert rel_err(sf, sf_ref) <= FP32_BOUND


def test_layouts_agree_and_any_strides():
    B, H, N, D, E = 2, 3, 20, 8, 12
    q, k, v = make_qkv(B, H, N, D, E, "bnhd")
    s = make_slopes(H)
    o_bnhd = tnl.lightning_attn(q, k, v, s, layout="bnhd")
    # The same data seen head-major through transposed (non-contiguous) views.
    o_bhnd = tnl.lightning_attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), s,
                                layout="bhnd")
    assert torch.allclose(o_bhnd.transpose(1, 2), o_bnhd, rtol=0, atol=1e-6)
    # Rows of a wider buffer: strides with padding, innermost still contiguous.
    wide = torch.randn(B, N, H, 40)
    qw, kw, vw = wide[..., :D], wide[..., 10:10 + D], wide[..., 20:20 + E]
    o = tnl.lightning_attn(qw, kw, vw, s, layout="bnhd")
    o_ref, _ = lightning_attn_ref(qw, kw, vw, s, layout="bnhd")
    assert rel_err(o, o_ref) <= FP32_BOUND


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
def test_varlen(layout):
    H, D, E = 2, 8, 16
    lens = [1, 5, 0, 64, 33]
    T = sum(lens)
    cu = torch.tensor([0] + list(np.cumsum(lens)), dtype=torch.int32)
    q, k, v = make_qkv(1, H, T, D, E, layout)
    s = make_slopes(H)
    s0 = torch.randn(len(lens), H, D, E)
    o, sf = tnl.lightning_attn(q, k, v, s, layout=layout, initial_state=s0, cu_seqlens=cu,
                               output_final_state=True)
    o_ref, sf_ref = lightning_attn_ref(q, k, v, s, layout=layout, initial_state=s0, cu_seqlens=cu)
    assert sf.shape == (len(lens), H, D, E)
    assert rel_err(o, o_ref) <= FP32_BOUND
    assert rel_err(sf, sf_ref) <= FP32_BOUND
    # int64 offsets (FLA's convention) are accepted too.
    o64 = tnl.lightning_attn(q, k, v, s, layout=layout, initial_state=s0, cu_seqlens=cu.long())
    assert torch.equal(o64, o)
    # The max_seqlen hint changes nothing in the results.
    oh = tnl.lightning_attn(q, k, v, s, layout=layout, initial_state=s0, cu_seqlens=cu,
                            max_seqlen=max(lens))
    assert torch.equal(oh, o)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype):
    B, H, N, D, E = 1, 2, 70, 32, 32
    q, k, v = make_qkv(B, H, N, D, E, dtype=dtype)
    s = make_slopes(H)
    o, sf = tnl.lightning_attn(q, k, v, s, output_final_state=True)
    o_ref, sf_ref = lightning_attn_ref(q, k, v, s)  # fp64 math on the same rounded inputs
    assert o.dtype == dtype and sf.dtype == torch.float32
    assert rel_err(o, o_ref) <= HALF_BOUND
    assert rel_err(sf, sf_ref) <= HALF_BOUND


def test_float64_runs_the_reference():
    q, k, v = make_qkv(1, 2, 9, 4, 5, dtype=torch.float64)
    s = make_slopes(2)
    o, sf = tnl.lightning_attn(q, k, v, s, output_final_state=True)
    o_ref, sf_ref = lightning_attn_ref(q, k, v, s)
    assert o.dtype == torch.float64 and sf.dtype == torch.float64
    assert rel_err(o, o_ref) <= 1e-12 and rel_err(sf, sf_ref) <= 1e-12


@pytest.mark.parametrize("np_dtype", [np.float32, np.float64])
def test_numpy_forward(np_dtype):
    B, H, N, D, E = 2, 3, 11, 8, 6
    q, k, v = (x.numpy().astype(np_dtype) for x in make_qkv(B, H, N, D, E, "bnhd"))
    s = [0.0, 0.1, 1.0]
    o, sf = tnl.lightning_attn(q, k, v, s, layout="bnhd", output_final_state=True)
    assert isinstance(o, np.ndarray) and o.dtype == np_dtype and o.shape == v.shape
    o_ref, sf_ref = lightning_attn_ref(*(torch.from_numpy(x) for x in (q, k, v)), s, layout="bnhd")
    bound = FP32_BOUND if np_dtype == np.float32 else 1e-12
    assert rel_err(torch.from_numpy(o), o_ref) <= bound
    assert rel_err(torch.from_numpy(sf), sf_ref) <= bound


def test_numpy_rounded_intermediates():
    q, k, v = (x.numpy() for x in make_qkv(1, 2, 9, 4, 4))
    o = tnl.lightning_attn(q, k, v, [0.1, 0.2])
    assert np.array_equal(tnl.lightning_attn(q, k, v, [0.1, 0.2], intermediates="rounded"), o)
