# test_compile.py: with PyTorch >= 2.4, lightning_attn is the custom op tnl::lightning_attn_fwd
# (fake implementation + registered autograd): torch.library.opcheck validates the registration
# and torch.compile(fullgraph=True) traces through forward and backward. Skipped on older
# PyTorch (e.g. Debian 12's 1.13), where tnl falls back to a plain autograd.Function.
import pytest
import torch

import tnl
from conftest import make_qkv, make_slopes
from tnl import _torch_ops

pytestmark = pytest.mark.skipif(not _torch_ops.HAS_CUSTOM_OP,
                                reason="torch.library.custom_op needs PyTorch >= 2.4")


@pytest.mark.parametrize("intermediates", ["compensated", "rounded"])
def test_opcheck(intermediates):
    q, k, v = make_qkv(1, 2, 9, 4, 4)
    s = make_slopes(2)
    s0 = torch.randn(1, 2, 4, 4)
    args = [x.requires_grad_() for x in (q, k, v)]
    torch.library.opcheck(torch.ops.tnl.lightning_attn_fwd.default,
                          (*args, s, 1.0, "bhnd", s0.requires_grad_(), True, None, intermediates))


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
