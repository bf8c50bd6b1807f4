# test_errors.py: bad arguments raise tnl.ArgumentError (a ValueError) naming the argument, with
# the C++ library's message where the C++ library checks it; nothing crashes.
import numpy as np
import pytest
import torch

import tnl
from conftest import make_qkv


def _qkv(**kw):
    return make_qkv(2, 2, 8, 4, 4, **kw)


def _raises(match, *args, **kwargs):
    with pytest.raises(tnl.ArgumentError, match=match):
        tnl.lightning_attn(*args, **kwargs)


def test_error_classes():
    assert issubclass(tnl.ArgumentError, ValueError)
    assert issubclass(tnl.ArgumentError, tnl.Error)
    assert issubclass(tnl.Error, RuntimeError)


def test_cpp_messages():
    q, k, v = _qkv()
    _raises(r"tnl::attention_forward: argument 'slopes': expected values >= 0", q, k, v, [0.1, -1])
    _raises(r"argument 'slopes': expected finite values", q, k, v, [0.1, float("nan")])
    _raises(r"argument 'scale': expected a finite value", q, k, v, [0.1, 0.1], scale=float("inf"))
    big = torch.randn(1, 1, 2, 300)
    _raises(r"tnl::attention_forward: argument 'dim_qk': expected 1..256", big, big, big, [0.0])
    _raises(r"argument 'seqlen': expected >= 1", *make_qkv(1, 1, 0, 4, 4), [0.0])
    cu = torch.tensor([0, 5, 3, 8], dtype=torch.int32)
    q1, k1, v1 = make_qkv(1, 2, 8, 4, 4)
    _raises(r"argument 'cu_seqlens': expected non-decreasing offsets", q1, k1, v1, [0, 0],
            cu_seqlens=cu)
    _raises(r"argument 'cu_seqlens': expected cu_seqlens\[num_seqs\] == seqlen", q1, k1, v1,
            [0, 0], cu_seqlens=torch.tensor([0, 5], dtype=torch.int32))
    _raises(r"argument 'batch': expected 1 with cu_seqlens", q, k, v, [0, 0],
            cu_seqlens=torch.tensor([0, 8], dtype=torch.int32))
    _raises(r"argument 'max_seqlen': expected 0 without cu_seqlens", q1, k1, v1, [0, 0], max_seqlen=8)
    _raises(r"argument 'max_seqlen': expected 0 \(unknown\) or the longest", q1, k1, v1, [0, 0],
            cu_seqlens=torch.tensor([0, 8], dtype=torch.int32), max_seqlen=9)
    _raises(r"argument 'max_seqlen': expected None or an int >= 0", q1, k1, v1, [0, 0],
            cu_seqlens=torch.tensor([0, 8], dtype=torch.int32), max_seqlen=-1)
    _raises(r"argument 'max_seqlen': expected None or an int >= 0", q1, k1, v1, [0, 0],
            cu_seqlens=torch.tensor([0, 8], dtype=torch.int32), max_seqlen=8.0)


def test_dtype_errors():
    q, k, v = _qkv()
    _raises(r"argument 'k': expected the dtype of q", q, k.double(), v, [0, 0])
    _raises(r"argument 'q': expected float32, float16 or bfloat16", q.int(), k.int(), v.int(),
            [0, 0])
    _raises(r"argument 'initial_state': expected float32", q, k, v, [0, 0],
            initial_state=torch.zeros(2, 2, 4, 4, dtype=torch.float16))
    _raises(r"argument 'cu_seqlens': expected int32", *make_qkv(1, 2, 8, 4, 4), [0, 0],
            cu_seqlens=torch.tensor([0.0, 8.0]))


def test_shape_errors():
    q, k, v = _qkv()
    _raises(r"argument 'q': expected a 4-d tensor", q[0], k[0], v[0], [0, 0])
    _raises(r"argument 'k': expected the shape of q", q, k[:, :, :4], v, [0, 0])
    _raises(r"argument 'v': expected \(batch, seq, heads\)", q, k, v[:, :1], [0, 0])
    _raises(r"argument 'slope': expected 2 values \(one per head\), got 3", q, k, v, [0, 0, 0])
    _raises(r"argument 'initial_state': expected shape \(S, H, D, E\)", q, k, v, [0, 0],
            initial_state=torch.zeros(1, 2, 4, 4))
    _raises(r"argument 'layout': expected 'bhnd' or 'bnhd'", q, k, v, [0, 0], layout="nhd")


def test_stride_and_device_errors():
    q, k, v = _qkv()
    _raises(r"argument 'q': expected a contiguous innermost dim \(stride 1\), got stride 2",
            torch.randn(2, 2, 8, 8)[..., ::2], k, v, [0, 0])
    _raises(r"argument 'initial_state': expected a contiguous tensor", q, k, v, [0, 0],
            initial_state=torch.zeros(2, 2, 4, 4).transpose(2, 3))
    # Mixed devices, without a GPU: the meta device stands in for a second device.
    _raises(r"argument 'v': expected the device of q \(cpu\), got meta", q, k,
            v.to("meta"), [0, 0])
    _raises(r"argument 'k': expected the same kind of array", q, k.numpy(), v, [0, 0])


def test_intermediates_errors():
    q, k, v = _qkv()
    want = r"tnl.lightning_attn: argument 'intermediates': expected 'compensated' or 'rounded'"
    for bad in ("fast", "Rounded", "", None, 1):
        _raises(want, q, k, v, [0, 0], intermediates=bad)
    _raises(want + r", got 'fast'", *(x.numpy() for x in (q, k, v)), [0, 0],
            intermediates="fast")
    # The binding checks it too, with its own message.
    with pytest.raises(tnl.ArgumentError, match=r"tnl._C: argument 'intermediates': expected "
                                                r"compensated or rounded, got 'fast'"):
        tnl._C.forward("f32", "cpu", (1, 1, 1, 1, 1), (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0),
                       (0, 0, 0, 0), 0, 1.0, 0, 0, 0, 0, 0, 0, False, "fast")


def test_numpy_errors():
    q, k, v = (x.numpy() for x in _qkv())
    _raises(r"argument 'slopes': expected values >= 0", q, k, v, np.array([-1.0, 0.0]))
    _raises(r"argument 'q': expected float32, float16 or bfloat16", q.astype(np.int32),
            k.astype(np.int32), v.astype(np.int32), [0, 0])
    with pytest.raises(tnl.ArgumentError, match=r"tnl.decode_step: argument 'state'"):
        tnl.decode_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], np.zeros((2, 2, 4, 3), np.float32),
                        [0, 0])


def test_slope_helpers_errors():
    with pytest.raises(tnl.ArgumentError, match=r"tnl::slopes_transnormer: argument 'layer'"):
        tnl.slopes_transnormer(8, 5, 4)


def test_fast_input_check_agrees_with_the_full_one():
    # _core.check_inputs_fast (the common call's shortcut) returns check_inputs' sizes where it
    # accepts, and leaves every other call to check_inputs (and its messages).
    from tnl import _core
    g = torch.Generator().manual_seed(0)
    cases = []
    for layout in ("bhnd", "bnhd"):
        for dtype in (torch.float32, torch.bfloat16, torch.float64):
            shape = (2, 3, 5, 8) if layout == "bhnd" else (2, 5, 3, 8)
            q, k = (torch.randn(shape, generator=g).to(dtype) for _ in range(2))
            v = torch.randn(shape[:3] + (4,), generator=g).to(dtype)
            cases.append((q, k, v, layout))
            wide = torch.randn(shape[:3] + (16,), generator=g).to(dtype)[..., :8]  # strided rows
            cases.append((wide, k, v, layout))
    for q, k, v, layout in cases:
        assert _core.check_inputs_fast("t", q, k, v, layout) == _core.check_inputs("t", q, k, v, layout)
    q, k, v, _ = cases[0]
    k_strided = k.transpose(2, 3).contiguous().transpose(2, 3)  # last dim not contiguous
    bad = [(q, k.double(), v, "bhnd"), (q, k, v[:1], "bhnd"), (q, k_strided, v, "bhnd"),
           (q, k, v, "nhbd"), (q, k[:, :, :, :4], v, "bhnd")]
    for args in bad:
        with pytest.raises(tnl.ArgumentError) as fast:
            _core.check_inputs_fast("t", *args)
        with pytest.raises(tnl.ArgumentError) as full:
            _core.check_inputs("t", *args)
        assert str(fast.value) == str(full.value)
