# test_cuda.py (marker `gpu`): tnl.lightning_attn on CUDA tensors, zero-copy on the current
# stream: bf16 and fp32 outputs, states and gradients against the pure-PyTorch fp64 reference
# (spec §4: fp32 ≤ 1e-4 on the GPU, fp16/bf16 ≤ 1e-2), both layouts, both intermediates modes,
# varlen, decode, errors.
import pytest
import torch

import tnl
from tnl import _core
from conftest import make_qkv, make_slopes
from reference_torch import lightning_attn_ref, rel_err

pytestmark = pytest.mark.gpu
BOUND = {torch.float32: 1e-4, torch.bfloat16: 1e-2, torch.float16: 1e-2}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
@pytest.mark.parametrize("N,D,E", [(1, 64, 64), (65, 128, 128), (1000, 256, 128), (300, 96, 64)])
def test_cuda_forward_backward(dtype, layout, N, D, E):
    B, H = 2, 3
    q, k, v = make_qkv(B, H, N, D, E, layout, dtype=dtype, device="cuda")
    s = make_slopes(H)
    s0 = torch.randn(B, H, D, E, device="cuda")
    w_o, w_s = torch.randn(v.shape, device="cuda"), torch.randn(B, H, D, E, device="cuda")
    ours = [x.clone().requires_grad_() for x in (q, k, v, s0)]
    o, sf = tnl.lightning_attn(*ours[:3], s, layout=layout, initial_state=ours[3],
                               output_final_state=True)
    assert o.device.type == "cuda" and o.dtype == dtype and sf.dtype == torch.float32
    ((o.float() * w_o).sum() + (sf * w_s).sum()).backward()
    ref = [x.detach().cpu().double().requires_grad_() for x in (q, k, v, s0)]
    o_ref, sf_ref = lightning_attn_ref(*ref[:3], s, layout=layout, initial_state=ref[3])
    ((o_ref * w_o.cpu().double()).sum() + (sf_ref * w_s.cpu().double()).sum()).backward()
    assert rel_err(o.cpu(), o_ref) <= BOUND[dtype]
    assert rel_err(sf.cpu(), sf_ref) <= BOUND[dtype]
    for name, a, r in zip(["dq", "dk", "dv", "d_initial_state"], ours, ref):
        assert rel_err(a.grad.cpu(), r.grad) <= BOUND[dtype], name


@pytest.mark.parametrize("layout", ["bhnd", "bnhd"])
@pytest.mark.parametrize("N,D,E", [(65, 128, 128), (1000, 256, 128), (300, 96, 64)])
def test_cuda_rounded_intermediates(layout, N, D, E):
    # bf16: both modes within the spec's bound of the fp64 reference, outputs and autograd's
    # gradients (the backward runs in the forward's mode).
    B, H, dtype = 2, 3, torch.bfloat16
    q, k, v = make_qkv(B, H, N, D, E, layout, dtype=dtype, device="cuda")
    s = make_slopes(H)
    s0 = torch.randn(B, H, D, E, device="cuda")
    w_o, w_s = torch.randn(v.shape, device="cuda"), torch.randn(B, H, D, E, device="cuda")
    ref = [x.detach().cpu().double().requires_grad_() for x in (q, k, v, s0)]
    o_ref, sf_ref = lightning_attn_ref(*ref[:3], s, layout=layout, initial_state=ref[3])
    ((o_ref * w_o.cpu().double()).sum() + (sf_ref * w_s.cpu().double()).sum()).backward()
    for mode in ("compensated", "rounded"):
        ours = [x.clone().requires_grad_() for x in (q, k, v, s0)]
        o, sf = tnl.lightning_attn(*ours[:3], s, layout=layout, initial_state=ours[3],
                                   output_final_state=True, intermediates=mode)
        assert o.dtype == dtype and sf.dtype == torch.float32
        grads = torch.autograd.grad((o.float() * w_o).sum() + (sf * w_s).sum(), ours)
        assert rel_err(o.cpu(), o_ref) <= BOUND[dtype], mode
        assert rel_err(sf.cpu(), sf_ref) <= BOUND[dtype], mode
        for name, g, x, r in zip(["dq", "dk", "dv", "d_initial_state"], grads, ours, ref):
            assert g.dtype == x.dtype, (mode, name)
            assert rel_err(g.cpu(), r.grad) <= BOUND[dtype], (mode, name)


def test_cuda_varlen_and_stream():
    H, D, E = 4, 64, 64
    cu = torch.tensor([0, 1, 64, 65, 300], dtype=torch.int32, device="cuda")
    q, k, v = make_qkv(1, H, 300, D, E, "bnhd", dtype=torch.bfloat16, device="cuda")
    s = tnl.slopes_transnormer(H, 0, 2)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())  # the inputs were made on the default stream
    with torch.cuda.stream(stream):  # runs on the current (side) stream
        o, sf = tnl.lightning_attn(q, k, v, s, layout="bnhd", cu_seqlens=cu,
                                   output_final_state=True)
    stream.synchronize()
    o_ref, sf_ref = lightning_attn_ref(q.cpu(), k.cpu(), v.cpu(), s, layout="bnhd",
                                       cu_seqlens=cu.cpu())
    assert rel_err(o.cpu(), o_ref) <= 1e-2 and rel_err(sf.cpu(), sf_ref) <= 1e-2


def _grads_vs_reference(q, k, v, s, s0, layout, cu=None, max_seqlen=None, bound=1e-2):
    """Forward + backward of tnl and of the fp64 reference; asserts o, S_final and every
    gradient within `bound`."""
    w_o = torch.randn(v.shape, device="cuda")
    ours = [x.clone().requires_grad_() for x in (q, k, v, s0)]
    o, sf = tnl.lightning_attn(*ours[:3], s, layout=layout, initial_state=ours[3],
                               output_final_state=True, cu_seqlens=cu, max_seqlen=max_seqlen)
    w_s = torch.randn(sf.shape, device="cuda")
    ((o.float() * w_o).sum() + (sf * w_s).sum()).backward()
    ref = [x.detach().cpu().double().requires_grad_() for x in (q, k, v, s0)]
    o_ref, sf_ref = lightning_attn_ref(*ref[:3], s, layout=layout, initial_state=ref[3],
                                       cu_seqlens=None if cu is None else cu.cpu())
    ((o_ref * w_o.cpu().double()).sum() + (sf_ref * w_s.cpu().double()).sum()).backward()
    assert rel_err(o.cpu(), o_ref) <= bound and rel_err(sf.cpu(), sf_ref) <= bound
    for name, a, r in zip(["dq", "dk", "dv", "d_initial_state"], ours, ref):
        assert rel_err(a.grad.cpu(), r.grad) <= bound, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_backward_reuses_segment_starts(dtype):
    # One (sequence, head) pair of 3000 rows splits into segments; a forward that will have a
    # backward keeps the state each segment starts from, and the backward's dq scan starts from
    # them instead of a pre-pass.
    B, H, N, D = 1, 2, 3000, 64
    q, k, v = make_qkv(B, H, N, D, D, "bnhd", dtype=dtype, device="cuda")
    s = [0.02, 0.005]
    s0 = torch.randn(B, H, D, D, device="cuda")
    sz = _core.check_inputs("t", q, k, v, "bnhd", s0, None)
    *_, starts = _core.forward("t", q, k, v, s, 1.0, "bnhd", s0, True, None, sz=sz,
                               keep_starts=True)
    assert starts is not None and starts.numel() > 0 and starts.device.type == "cuda"
    _grads_vs_reference(q, k, v, s, s0, "bnhd", bound=BOUND[dtype])


def test_cuda_varlen_tail_split_through_python():
    # Enough packed sequences to fill the GPU, one far longer than the rest: with the max_seqlen
    # hint the scans split it (the varlen tail); with or without, the reference's results.
    H, D = 4, 64
    lens = [2000, 256, 257, 0] + [int(x) for x in torch.randint(1, 130, (60,))]
    cu = torch.tensor([0] + list(torch.tensor(lens).cumsum(0)), dtype=torch.int32, device="cuda")
    q, k, v = make_qkv(1, H, int(cu[-1]), D, D, "bnhd", dtype=torch.bfloat16, device="cuda")
    s = tnl.slopes_transnormer(H, 0, 2)
    s0 = torch.randn(len(lens), H, D, D, device="cuda")
    for hint in (None, max(lens)):
        _grads_vs_reference(q, k, v, s, s0, "bnhd", cu=cu, max_seqlen=hint)


def test_cuda_decode_and_slopes_on_device():
    B, H, D, E = 3, 4, 128, 128
    q, k, v = make_qkv(B, H, 9, D, E, dtype=torch.float32, device="cuda")
    s = tnl.alibi_slopes(H).cuda().reshape(H, 1, 1)  # the Triton call's slopes, on the device
    o_all, sf_all = tnl.lightning_attn(q, k, v, s, output_final_state=True)
    _, state = tnl.lightning_attn(q[:, :, :8], k[:, :, :8], v[:, :, :8], s,
                                  output_final_state=True)
    o = tnl.decode_step(q[:, :, 8], k[:, :, 8], v[:, :, 8], state, s)
    assert rel_err(o, o_all[:, :, 8]) <= 1e-4 and rel_err(state, sf_all) <= 1e-4
    assert rel_err(tnl.lightning_attn_func(q, k, v, s), o_all) <= 1e-6


def test_cuda_errors():
    q, k, v = make_qkv(1, 2, 8, 4, 4, device="cuda")
    with pytest.raises(tnl.ArgumentError, match=r"argument 'k': expected the device of q"):
        tnl.lightning_attn(q, k.cpu(), v, [0.1, 0.2])
    with pytest.raises(tnl.ArgumentError, match=r"argument 'dtype': expected f32, f16 or bf16"):
        tnl.lightning_attn(q.double(), k.double(), v.double(), [0.1, 0.2])
    with pytest.raises(tnl.ArgumentError, match=r"argument 'cu_seqlens': expected the device"):
        tnl.lightning_attn(q, k, v, [0.1, 0.2], cu_seqlens=torch.tensor([0, 8], dtype=torch.int32))
