# test_backward.py: gradients of tnl.lightning_attn. The fast path (fp32) against autograd
# through the pure-PyTorch fp64 reference (bound 1e-5, spec §4); torch.autograd.gradcheck in fp64
# (the C++ fp64 reference backward) on small shapes: both layouts, initial and final states,
# variable length; the slope gets no gradient.
import pytest
import torch

import tnl
from conftest import make_qkv, make_slopes
from reference_torch import lightning_attn_ref, rel_err

FP32_BOUND = 1e-5


def _grads(fn, inputs, outputs_weights):
    outs = fn(*inputs)
    loss = sum((o * w).sum() for o, w in zip(outs, outputs_weights))
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
@pytest.mark.parametrize("N", [1, 63, 65])
@pytest.mark.parametrize("with_states", [False, True])
def test_fp32_gradients_match_reference(layout, N, with_states):
    B, H, D, E = 2, 3, 16, 8
    q, k, v = make_qkv(B, H, N, D, E, layout)
    s = make_slopes(H)
    s0 = torch.randn(B, H, D, E) if with_states else None
    w_o = torch.randn(v.shape)
    w_s = torch.randn(B, H, D, E) if with_states else None

    def ours(q, k, v, *s0_):
        o, sf = tnl.lightning_attn(q, k, v, s, layout=layout, initial_state=s0_[0] if s0_ else None,
                                   output_final_state=True)
        return (o, sf) if with_states else (o,)

    def ref(q, k, v, *s0_):
        o, sf = lightning_attn_ref(q, k, v, s, layout=layout, initial_state=s0_[0] if s0_ else None)
        return (o, sf) if with_states else (o,)

    leaves = [q, k, v] + ([s0] if with_states else [])
    ws = [w_o] + ([w_s] if with_states else [])
    got = _grads(ours, [x.clone().requires_grad_() for x in leaves], ws)
    want = _grads(ref, [x.double().requires_grad_() for x in leaves], [w.double() for w in ws])
    for name, g, r in zip(["dq", "dk", "dv", "d_initial_state"], got, want):
        assert g.dtype == torch.float32, name
        assert rel_err(g, r) <= FP32_BOUND, name


def test_fp32_varlen_gradients():
    H, D, E = 2, 8, 8
    lens = [3, 1, 40]
    cu = torch.tensor([0, 3, 4, 44], dtype=torch.int32)
    q, k, v = make_qkv(1, H, sum(lens), D, E, "bnhd")
    s = make_slopes(H)
    s0 = torch.randn(len(lens), H, D, E)
    w_o, w_s = torch.randn(v.shape), torch.randn(s0.shape)

    def ours(q, k, v, s0):
        return tnl.lightning_attn(q, k, v, s, layout="bnhd", initial_state=s0, cu_seqlens=cu,
                                  output_final_state=True)

    def ref(q, k, v, s0):
        return lightning_attn_ref(q, k, v, s, layout="bnhd", initial_state=s0, cu_seqlens=cu)

    got = _grads(ours, [x.clone().requires_grad_() for x in (q, k, v, s0)], [w_o, w_s])
    want = _grads(ref, [x.double().requires_grad_() for x in (q, k, v, s0)],
                  [w_o.double(), w_s.double()])
    for g, r in zip(got, want):
        assert rel_err(g, r) <= FP32_BOUND


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
def test_gradcheck_fp64(layout):
    q, k, v = make_qkv(2, 2, 5, 3, 4, layout, dtype=torch.float64)
    s = torch.tensor([0.0, 0.7])
    s0 = torch.randn(2, 2, 3, 4, dtype=torch.float64)
    inputs = [x.requires_grad_() for x in (q, k, v, s0)]

    def f(q, k, v, s0):
        return tnl.lightning_attn(q, k, v, s, scale=0.8, layout=layout, initial_state=s0,
                                  output_final_state=True)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_fp64_varlen():
    cu = torch.tensor([0, 2, 2, 6], dtype=torch.int32)
    q, k, v = make_qkv(1, 2, 6, 3, 2, "bnhd", dtype=torch.float64)
    s0 = torch.randn(3, 2, 3, 2, dtype=torch.float64)
    inputs = [x.requires_grad_() for x in (q, k, v, s0)]

    def f(q, k, v, s0):
        return tnl.lightning_attn(q, k, v, [0.2, 0.0], layout="bnhd", initial_state=s0,
                                  cu_seqlens=cu, output_final_state=True)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradcheck_fp64_output_only():
    q, k, v = make_qkv(1, 1, 4, 2, 3, dtype=torch.float64)
    s0 = torch.randn(1, 1, 2, 3, dtype=torch.float64)
    inputs = [x.requires_grad_() for x in (q, k, v, s0)]
    assert torch.autograd.gradcheck(
        lambda q, k, v, s0: tnl.lightning_attn(q, k, v, [0.5], initial_state=s0), inputs,
        eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gradients(dtype):
    q, k, v = make_qkv(1, 2, 70, 32, 16, "bnhd", dtype=dtype)
    s = make_slopes(2)
    w = torch.randn(v.shape)
    ours = [x.clone().requires_grad_() for x in (q, k, v)]
    (tnl.lightning_attn(*ours, s, layout="bnhd").float() * w).sum().backward()
    ref = [x.double().requires_grad_() for x in (q, k, v)]
    (lightning_attn_ref(*ref, s, layout="bnhd")[0] * w.double()).sum().backward()
    for name, a, r in zip(["dq", "dk", "dv"], ours, ref):
        assert a.grad.dtype == dtype
        assert rel_err(a.grad, r.grad) <= 1e-2, name  # spec §4: fp16/bf16 bound


def test_only_final_state_used_and_expanded_grads():
    q, k, v = make_qkv(1, 2, 7, 4, 4)
    ours = [x.clone().requires_grad_() for x in (q, k, v)]
    _, sf = tnl.lightning_attn(*ours, [0.1, 0.2], output_final_state=True)
    sf.sum().backward()  # o unused (its gradient is None); sf's is an expanded, stride-0 tensor
    ref = [x.double().requires_grad_() for x in (q, k, v)]
    lightning_attn_ref(*ref, [0.1, 0.2])[1].sum().backward()
    assert ours[0].grad is None or not ours[0].grad.any()  # the final state does not see q
    for g, r in zip(ours[1:], ref[1:]):
        assert rel_err(g.grad, r.grad) <= FP32_BOUND
    ours = [x.clone().requires_grad_() for x in (q, k, v)]
    tnl.lightning_attn(*ours, [0.1, 0.2]).sum().backward()  # stride-0 gradient of o
    ref = [x.double().requires_grad_() for x in (q, k, v)]
    lightning_attn_ref(*ref, [0.1, 0.2])[0].sum().backward()
    for g, r in zip(ours, ref):
        assert rel_err(g.grad, r.grad) <= FP32_BOUND


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_rounded_intermediates_change_nothing_on_cpu(dtype):
    # The CPU computes in fp32 either way: "rounded" gives the default's outputs and gradients.
    q, k, v = make_qkv(2, 2, 70, 16, 8, "bnhd", dtype=dtype)
    s = make_slopes(2)
    s0 = torch.randn(2, 2, 16, 8)
    w_o, w_s = torch.randn(v.shape), torch.randn(s0.shape)
    results = []
    for mode in ("compensated", "rounded"):
        leaves = [x.clone().requires_grad_() for x in (q, k, v, s0)]
        o, sf = tnl.lightning_attn(*leaves[:3], s, layout="bnhd", initial_state=leaves[3],
                                   output_final_state=True, intermediates=mode)
        loss = (o.float() * w_o).sum() + (sf * w_s).sum()
        results.append([o, sf, *torch.autograd.grad(loss, leaves)])
    for name, a, b in zip(["o", "final_state", "dq", "dk", "dv", "d_initial_state"], *results):
        assert torch.equal(a, b), name


def test_slope_gets_no_gradient():
    q, k, v = make_qkv(1, 2, 5, 4, 4)
    q.requires_grad_()
    s = torch.tensor([0.1, 0.2], requires_grad=True)
    tnl.lightning_attn(q, k, v, s).sum().backward()
    assert q.grad is not None and s.grad is None
