# test_compile.py: with PyTorch >= 2.4, lightning_attn is the custom op tnl::lightning_attn_fwd
# (fake implementation + registered autograd): torch.library.opcheck validates the registration
# and torch.compile(fullgraph=True) traces through forward and backward. Skipped on older
# PyTorch (e.g. Debian 12's 1.13), where tnl falls back to a plain autograd.Function.
import pytest
import torch

import tnl
from conftest import make_qkv, make_slopes
from tnl import _core, _torch_ops

pytestmark = pytest.mark.skipif(not _torch_ops.HAS_CUSTOM_OP,
                                reason="torch.library.custom_op needs PyTorch >= 2.4")


@pytest.mark.parametrize("intermediates", ["compensated", "rounded"])
def test_opcheck(intermediates):
    q, k, v = make_qkv(1, 2, 9, 4, 4)
    s = make_slopes(2)
    s0 = torch.randn(1, 2, 4, 4)
    args = [x.requires_grad_() for x in (q, k, v)]
    torch.library.opcheck(torch.ops.tnl.lightning_attn_fwd.default,
                          (*args, s, 1.0, "bhnd", s0.requires_grad_(), True, None, 0, intermediates))


@pytest.mark.parametrize("intermediates", ["compensated", "rounded"])
def test_compile_fullgraph_forward_and_backward(intermediates):
    q, k, v = make_qkv(2, 2, 17, 8, 8, "bnhd")
    s = make_slopes(2)

    def f(q, k, v):
        o, sf = tnl.lightning_attn(q, k, v, s, layout="bnhd", output_final_state=True,
                                   intermediates=intermediates)
        return (o * o).sum() + sf.sum()

    eager = [x.clone().requires_grad_() for x in (q, k, v)]
    f(*eager).backward()
    compiled = [x.clone().requires_grad_() for x in (q, k, v)]
    loss = torch.compile(f, fullgraph=True, backend="aot_eager")(*compiled)
    loss.backward()
    for a, b in zip(eager, compiled):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_plain_eager_calls_skip_the_custom_op_and_match_it():
    """Plain eager calls take the autograd.Function (no custom-op dispatch); the result and the
    gradients (q, k, v and the initial state) equal those through the custom op."""
    q, k, v = make_qkv(2, 3, 21, 8, 4)
    s = make_slopes(3)
    s0 = torch.randn(2, 3, 8, 4)
    assert _torch_ops._plain_eager(q, k, v, s0)

    def run(force_op):
        _torch_ops._FORCE_OP = force_op
        try:
            xs = [x.clone().requires_grad_() for x in (q, k, v, s0)]
            o, sf = tnl.lightning_attn(*xs[:3], s, initial_state=xs[3], output_final_state=True)
            ((o * o).sum() + (sf * sf).sum()).backward()
            return o.detach(), sf.detach(), [x.grad for x in xs], o.grad_fn.name()
        finally:
            _torch_ops._FORCE_OP = False

    o1, sf1, g1, fn1 = run(False)
    o2, sf2, g2, fn2 = run(True)
    assert "LightningAttnFunction" in fn1, fn1
    assert "LightningAttnFunction" not in fn2, fn2
    assert torch.equal(o1, o2) and torch.equal(sf1, sf2)
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


def test_fake_and_meta_tensors_go_through_the_custom_op():
    from torch._subclasses.fake_tensor import FakeTensorMode
    q, k, v = make_qkv(1, 2, 9, 4, 4)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        fq, fk, fv = (mode.from_tensor(x) for x in (q, k, v))
        assert not _torch_ops._plain_eager(fq, fk, fv, None)
        o = tnl.lightning_attn(fq, fk, fv, make_slopes(2))
        assert tuple(o.shape) == tuple(v.shape)
    mq, mk, mv = (x.to("meta") for x in (q, k, v))
    assert not _torch_ops._plain_eager(mq, mk, mv, None)


def _split_case(dtype):
    """One (sequence, head) pair of 3000 rows on the GPU: the CUDA scans split it into segments."""
    B, H, N, D = 1, 2, 3000, 64
    q, k, v = make_qkv(B, H, N, D, D, "bnhd", dtype=dtype, device="cuda")
    s0 = torch.randn(B, H, D, D, device="cuda")
    return q, k, v, s0, torch.tensor([0.02, 0.005])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_custom_op_segment_starts_fake_and_real_agree(dtype):
    """keep_starts: the op's third output holds the segment starts, and its fake has their size;
    opcheck validates the registration with them."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    q, k, v, s0, st = _split_case(dtype)
    args = (q, k, v, st, 1.0, "bnhd", s0, True, None, 0, "rounded", True)
    o, sf, starts = torch.ops.tnl.lightning_attn_fwd(*args)
    assert starts.dtype == torch.uint8 and starts.numel() > 0
    _, _, none = torch.ops.tnl.lightning_attn_fwd(*args[:-1], False)
    assert none.numel() == 0
    with FakeTensorMode() as mode:
        fake = torch.ops.tnl.lightning_attn_fwd(
            *(mode.from_tensor(x) for x in (q, k, v, st)), 1.0, "bnhd", mode.from_tensor(s0),
            True, None, 0, "rounded", True)
    assert [tuple(x.shape) for x in fake] == [tuple(x.shape) for x in (o, sf, starts)]
    grads = [x.clone().requires_grad_() for x in (q, k, v, s0)]
    torch.library.opcheck(torch.ops.tnl.lightning_attn_fwd.default,
                          (*grads[:3], st, 1.0, "bnhd", grads[3], True, None, 0, "rounded", True))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_custom_op_and_compile_reuse_segment_starts(dtype, monkeypatch):
    """Through the custom op (forced) and under torch.compile the backward gets the forward's
    segment starts, and the gradients equal the eager path's (which the reference tests)."""
    q, k, v, s0, st = _split_case(dtype)
    w = torch.randn(v.shape, device="cuda")
    w_s = torch.randn(s0.shape, device="cuda")
    got_starts = []
    backward = _core.backward

    def spy(*a):  # both paths pass starts as the 16th positional argument
        got_starts.append(a[15] is not None)
        return backward(*a)
    monkeypatch.setattr(_core, "backward", spy)

    def f(q, k, v, s0):
        o, sf = tnl.lightning_attn(q, k, v, st, layout="bnhd", initial_state=s0,
                                   output_final_state=True, intermediates="rounded")
        return (o.float() * w).sum() + (sf * w_s).sum()

    def grads(path):
        xs = [x.clone().requires_grad_() for x in (q, k, v, s0)]
        _torch_ops._FORCE_OP = path == "op"
        try:
            fn = torch.compile(f, fullgraph=True, backend="aot_eager") if path == "compile" else f
            fn(*xs).backward()
        finally:
            _torch_ops._FORCE_OP = False
        return [x.grad for x in xs]

    eager = grads("eager")
    for path in ("op", "compile"):
        got_starts.clear()
        for name, a, b in zip(["dq", "dk", "dv", "d_initial_state"], grads(path), eager):
            assert torch.equal(a, b), (path, name)
        assert got_starts == [True], path
