# _core.py: PyTorch tensors and NumPy arrays -> the plain views of the C++ API (tnl._C).
#
# Checks here cover only what a raw pointer cannot carry (dtype, device, ranks and sizes that
# must agree, a contiguous innermost dim); everything else (head dims, slopes, scale, cu_seqlens
# values, strides) is checked by the C++ library, whose messages reach Python unchanged as
# tnl.ArgumentError. Nothing here records autograd: see _torch_ops.py.
import numbers
from array import array
from collections import namedtuple

from . import _C

try:  # optional: NumPy-only users need no PyTorch
    import torch as _torch
except ImportError:
    _torch = None

ArgumentError = _C.ArgumentError
LAYOUTS = ("bhnd", "bnhd")
# tnl::Intermediates: how fp16/bf16 intermediates enter the CUDA kernels' 16-bit products.
INTERMEDIATES = ("compensated", "rounded")

# Keyed by dtype object (not by name), so that torch.compile traces the checks without breaks.
_TORCH_DTYPES = {} if _torch is None else {_torch.float32: "f32", _torch.float16: "f16",
                                           _torch.bfloat16: "bf16", _torch.float64: "f64"}
_TORCH_OF = {name: dt for dt, name in _TORCH_DTYPES.items()}
_NUMPY_DTYPES = {"float32": "f32", "float16": "f16", "float64": "f64"}

# Sizes of one call: (B, N, H, D, E), S = number of sequences (states), dtype name, device kind.
Sizes = namedtuple("Sizes", "B N H D E S dtype device")


def arg_error(fn, arg, msg):
    return ArgumentError(f"{fn}: argument '{arg}': {msg}")


def is_numpy(x):
    t = type(x)
    return t.__name__ == "ndarray" and t.__module__ == "numpy"


def is_torch(x):
    return _torch is not None and isinstance(x, _torch.Tensor)


# Each helper below asks is_torch first: an isinstance test, where is_numpy compares names (the
# common case, PyTorch tensors, then costs the least host time per call).
def dtype_of(x):
    """tnl dtype name of a tensor or array, or None when it has no tnl equivalent."""
    if is_torch(x):
        return _TORCH_DTYPES.get(x.dtype)
    return _NUMPY_DTYPES.get(str(x.dtype))


def device_of(x):
    """'cpu' or 'cuda:<i>' (NumPy arrays live on the CPU), for messages."""
    if not is_torch(x):
        return "cpu"
    d = x.device
    return "cpu" if d.type == "cpu" else f"{d.type}:{d.index if d.index is not None else 0}"


def device_kind(x):
    """'cpu', 'cuda' (or another torch device type, which the C++ library rejects)."""
    return x.device.type if is_torch(x) else "cpu"


def same_device(x, ref):
    if is_torch(x) and is_torch(ref):
        return x.device == ref.device
    return is_numpy(x) and is_numpy(ref)


def strides_of(x):
    if is_torch(x):
        return x.stride()
    return tuple(s // x.itemsize if s % x.itemsize == 0 else None for s in x.strides)


def address(x):
    if x is None:
        return 0
    return x.data_ptr() if is_torch(x) else x.ctypes.data


def is_contiguous(x):
    return x.is_contiguous() if is_torch(x) else bool(x.flags["C_CONTIGUOUS"])


def seq_dims(layout):
    """Positions of (batch, seq, head) in a 4-d tensor of the layout."""
    return (0, 1, 2) if layout == "bnhd" else (0, 2, 1)


def seq_view(x, layout):
    """(address, stride_batch, stride_seq, stride_head) of a 4-d (B, N, H, dim) / (B, H, N, dim)."""
    st = strides_of(x)
    b, n, h = seq_dims(layout)
    return (address(x), st[b], st[n], st[h])


def head_view(x):
    """The view of a 3-d (B, H, dim) decode tensor: the seq stride is unused."""
    st = strides_of(x)
    return (address(x), st[0], 0, st[1])


def _check_tensor(fn, name, x, ndim, dims_text, ref=None):
    """Rank, dtype, device (that of `ref`), innermost stride of one operand."""
    torch_x = is_torch(x)
    if not (torch_x or is_numpy(x)):
        raise arg_error(fn, name, f"expected a torch.Tensor or numpy.ndarray, got "
                                  f"{type(x).__name__}")
    if x.ndim != ndim:
        raise arg_error(fn, name, f"expected a {ndim}-d tensor ({dims_text}), got shape "
                                  f"{tuple(x.shape)}")
    if dtype_of(x) is None:
        raise arg_error(fn, name, f"expected float32, float16 or bfloat16 (float64: CPU reference "
                                  f"only), got {x.dtype}")
    if ref is not None:
        if torch_x != is_torch(ref):
            raise arg_error(fn, name, "expected the same kind of array as q (all torch.Tensor or "
                                      "all numpy.ndarray)")
        if dtype_of(x) != dtype_of(ref):
            raise arg_error(fn, name, f"expected the dtype of q ({ref.dtype}), got {x.dtype}")
        if not same_device(x, ref):
            raise arg_error(fn, name, f"expected the device of q ({device_of(ref)}), got "
                                      f"{device_of(x)}")
    st = strides_of(x)
    if not torch_x and any(s is None for s in st):  # a tensor's strides count elements
        raise arg_error(fn, name, "expected strides that are whole multiples of the element size")
    if x.shape[-1] > 1 and st[-1] != 1:
        raise arg_error(fn, name, f"expected a contiguous innermost dim (stride 1), got stride "
                                  f"{st[-1]} (call .contiguous() first)")


def _check_state(fn, name, x, shape, state_dtype, q):
    if not (is_torch(x) or is_numpy(x)) or is_numpy(x) != is_numpy(q):
        raise arg_error(fn, name, "expected the same kind of array as q")
    if tuple(x.shape) != tuple(shape):
        raise arg_error(fn, name, f"expected shape (S, H, D, E) = {tuple(shape)}, got "
                                  f"{tuple(x.shape)}")
    if dtype_of(x) != state_dtype:
        want = "float64 (the dtype of q)" if state_dtype == "f64" else "float32"
        raise arg_error(fn, name, f"expected {want}, got {x.dtype}")
    if not same_device(x, q):
        raise arg_error(fn, name, f"expected the device of q ({device_of(q)}), got {device_of(x)}")
    if not is_contiguous(x):
        raise arg_error(fn, name, "expected a contiguous tensor (call .contiguous() first)")


def check_intermediates(fn, intermediates):
    """The intermediates mode must be one of INTERMEDIATES (the C++ enum's names)."""
    if not (isinstance(intermediates, str) and intermediates in INTERMEDIATES):
        raise arg_error(fn, "intermediates", f"expected 'compensated' or 'rounded', got "
                                             f"{intermediates!r}")


def check_max_seqlen(fn, max_seqlen):
    """max_seqlen: None (unknown) or a non-negative int; returns it as an int (0: unknown). Its
    range against the batch (0 without cu_seqlens, at most the packed tokens) is the C++ side's."""
    if max_seqlen is None:
        return 0
    if isinstance(max_seqlen, bool) or not isinstance(max_seqlen, numbers.Integral) or max_seqlen < 0:
        raise arg_error(fn, "max_seqlen", f"expected None or an int >= 0 (the longest sequence with "
                                          f"cu_seqlens), got {max_seqlen!r}")
    return int(max_seqlen)


def state_dtype(dtype):
    return "f64" if dtype == "f64" else "f32"


def check_inputs(fn, q, k, v, layout, initial_state=None, cu_seqlens=None):
    """Checks q, k, v, the layout, the initial state and cu_seqlens; returns the Sizes."""
    if layout not in LAYOUTS:
        raise arg_error(fn, "layout", f"expected 'bhnd' or 'bnhd', got {layout!r}")
    dims = "B, H, N, dim" if layout == "bhnd" else "B, N, H, dim"
    _check_tensor(fn, "q", q, 4, dims)
    _check_tensor(fn, "k", k, 4, dims, ref=q)
    _check_tensor(fn, "v", v, 4, dims, ref=q)
    b, n, h = seq_dims(layout)
    B, N, H, D, E = q.shape[b], q.shape[n], q.shape[h], q.shape[3], v.shape[3]
    if tuple(k.shape) != tuple(q.shape):
        raise arg_error(fn, "k", f"expected the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if (v.shape[b], v.shape[n], v.shape[h]) != (B, N, H):
        raise arg_error(fn, "v", f"expected (batch, seq, heads) = {(B, N, H)} like q, got shape "
                                 f"{tuple(v.shape)}")
    S = B
    if cu_seqlens is not None:
        kind_ok = is_torch(cu_seqlens) if is_torch(q) else is_numpy(cu_seqlens)
        if not kind_ok:
            raise arg_error(fn, "cu_seqlens", "expected an int32 tensor of the same kind as q")
        if cu_seqlens.ndim != 1 or cu_seqlens.shape[0] < 2:
            raise arg_error(fn, "cu_seqlens", f"expected a 1-d tensor of num_seqs + 1 >= 2 "
                                              f"offsets, got shape {tuple(cu_seqlens.shape)}")
        if not (str(cu_seqlens.dtype) == "int32" if is_numpy(cu_seqlens)
                else cu_seqlens.dtype == _torch.int32):
            raise arg_error(fn, "cu_seqlens", f"expected int32 (FlashAttention's convention), got "
                                              f"{cu_seqlens.dtype}")
        if not same_device(cu_seqlens, q):
            raise arg_error(fn, "cu_seqlens", f"expected the device of q ({device_of(q)}), got "
                                              f"{device_of(cu_seqlens)}")
        if not is_contiguous(cu_seqlens):
            raise arg_error(fn, "cu_seqlens", "expected a contiguous tensor")
        S = cu_seqlens.shape[0] - 1
    dtype = dtype_of(q)
    if initial_state is not None:
        _check_state(fn, "initial_state", initial_state, (S, H, D, E), state_dtype(dtype), q)
    return Sizes(B, N, H, D, E, S, dtype, device_kind(q))


# Under torch.compile / export tracing the full checks run, as they always have there.
_compiling = getattr(getattr(_torch, "compiler", None), "is_compiling", None) or (lambda: False)


def check_inputs_fast(fn, q, k, v, layout, initial_state=None, cu_seqlens=None):
    """check_inputs for the common eager call: plain PyTorch tensors of one dtype and device,
    the shapes agreeing, a contiguous last dim, no initial state and no cu_seqlens. It accepts
    only what check_inputs accepts; anything else goes to check_inputs (and its messages)."""
    T = None if _torch is None else _torch.Tensor
    if (T is not None and not _compiling() and initial_state is None and cu_seqlens is None
            and type(q) is T and type(k) is T and type(v) is T and layout in LAYOUTS):
        dt, dev, qs, vs = q.dtype, q.device, q.shape, v.shape
        if (len(qs) == 4 and len(vs) == 4 and dt in _TORCH_DTYPES and k.dtype is dt and v.dtype is dt
                and k.device == dev and v.device == dev and k.shape == qs
                and (qs[3] == 1 or (q.stride(3) == 1 and k.stride(3) == 1))
                and (vs[3] == 1 or v.stride(3) == 1)):
            b, n, h = (0, 1, 2) if layout == "bnhd" else (0, 2, 1)
            B, N, H = qs[b], qs[n], qs[h]
            if (vs[b], vs[n], vs[h]) == (B, N, H):
                return Sizes(B, N, H, qs[3], vs[3], B, _TORCH_DTYPES[dt], dev.type)
    return check_inputs(fn, q, k, v, layout, initial_state, cu_seqlens)


def check_decode(fn, q, k, v, state):
    """Checks the operands of a decode step: q, k (B, H, D), v (B, H, E), state (B, H, D, E)."""
    _check_tensor(fn, "q", q, 3, "B, H, D")
    _check_tensor(fn, "k", k, 3, "B, H, D", ref=q)
    _check_tensor(fn, "v", v, 3, "B, H, E", ref=q)
    B, H, D = q.shape
    E = v.shape[2]
    if tuple(k.shape) != tuple(q.shape):
        raise arg_error(fn, "k", f"expected the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if tuple(v.shape[:2]) != (B, H):
        raise arg_error(fn, "v", f"expected (batch, heads) = {(B, H)} like q, got shape "
                                 f"{tuple(v.shape)}")
    if state is None:
        raise arg_error(fn, "state", "expected a (B, H, D, E) state tensor")
    dtype = dtype_of(q)
    _check_state(fn, "state", state, (B, H, D, E), state_dtype(dtype), q)
    return Sizes(B, 1, H, D, E, B, dtype, device_kind(q))


def slopes_array(fn, slope, heads):
    """The slopes as a host fp32 buffer of `heads` values: (owner, address).

    Accepts a number (every head), a sequence, a NumPy array or a tensor with `heads` elements
    (any shape, e.g. the Triton package's (H, 1, 1)); a CUDA tensor is copied to the host.
    """
    if is_torch(slope):
        buf = slope.detach()
        if not (buf.device.type == "cpu" and buf.dtype == _torch.float32 and buf.ndim == 1
                and buf.is_contiguous()):
            buf = buf.reshape(-1).to(device="cpu", dtype=_torch.float32).contiguous()
        n = buf.numel()
    elif is_numpy(slope):
        import numpy as np
        buf = np.ascontiguousarray(slope, dtype=np.float32).reshape(-1)
        n = buf.size
    elif isinstance(slope, (int, float)):
        buf, n = array("f", [float(slope)] * heads), heads
    else:
        try:
            buf = array("f", [float(x) for x in slope])
        except TypeError:
            raise arg_error(fn, "slope", f"expected a number, a sequence or a tensor of {heads} "
                                         f"values, got {type(slope).__name__}") from None
        n = len(buf)
    if n != heads:
        raise arg_error(fn, "slope", f"expected {heads} values (one per head), got {n}")
    if isinstance(buf, array):
        return buf, buf.buffer_info()[0]
    return buf, address(buf)


class _Call:
    """Device guard, stream and thread count for one call into tnl._C."""

    def __init__(self, x):
        self.x, self.guard = x, None

    def __enter__(self):
        x = self.x
        if not is_torch(x):
            return 0, 0
        kind = x.device.type
        if kind == "cpu":
            return _torch.get_num_threads(), 0
        if kind != "cuda":
            raise arg_error("tnl", "device", f"expected cpu or cuda, got {x.device}")
        self.guard = _torch.cuda.device(x.device)
        self.guard.__enter__()
        return 0, _torch.cuda.current_stream(x.device).cuda_stream

    def __exit__(self, *exc):
        if self.guard is not None:
            self.guard.__exit__(*exc)
        return False


def use_reference(sz):
    # The fast paths take f32/f16/bf16; f64 on the CPU runs the fp64 reference (gradcheck).
    # f64 elsewhere goes to the fast path, which rejects it with the C++ message.
    return sz.dtype == "f64" and sz.device == "cpu"


def _empty_like_kind(x, shape, dtype_name):
    if is_torch(x):
        return _torch.empty(shape, dtype=_TORCH_OF[dtype_name], device=x.device)
    import numpy as np
    dt = {"f32": np.float32, "f16": np.float16, "f64": np.float64}[dtype_name]
    return np.empty(shape, dtype=dt)


# An address standing in for a tensor's allocation when a plan is made from sizes alone (a fake
# tensor has none): 4 KiB-aligned, as the CUDA caching allocator's blocks are (the segment plan
# looks at addresses only for their 16-byte alignment).
_STAND_IN_BASE = 1 << 40


def _contiguous_view(shape, layout, base):
    """seq_view of a fresh contiguous tensor of `shape` at address `base` (forward()'s o)."""
    strides = (shape[1] * shape[2] * shape[3], shape[2] * shape[3], shape[3], 1)
    b, n, h = seq_dims(layout)
    return (base, strides[b], strides[n], strides[h])


def starts_bytes(sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens, intermediates,
                 max_seqlen, stand_in=False):
    """The bytes of the segment starts a CUDA forward with these arguments keeps (0: none).

    stand_in: plan from sizes, strides and storage offsets alone, every allocation at an aligned
    stand-in address (what a fake tensor allows; the custom op's fake and real forward agree on
    it). Either way o is the fresh contiguous tensor that forward() allocates."""
    # Only a sequence (or packed batch) of more than 4 chunks can split (segments.h).
    if sz.device != "cuda" or use_reference(sz) or int(sz.N) <= 256:
        return 0
    shape = tuple(int(x) for x in (sz.B, sz.N, sz.H, sz.D, sz.E))  # symbolic sizes: specialized
    if stand_in:
        def view(t):
            st = t.stride()
            b, n, h = seq_dims(layout)
            return (_STAND_IN_BASE + int(t.storage_offset()) * t.element_size(), int(st[b]),
                    int(st[n]), int(st[h]))

        def addr(t):
            return 0 if t is None else _STAND_IN_BASE
        slopes_owner = array("f", [0.0] * sz.H)  # the plan does not depend on the values
        slopes_ptr = slopes_owner.buffer_info()[0]
    else:
        def view(t):
            return seq_view(t, layout)
        addr = address
        slopes_owner, slopes_ptr = slopes_array("tnl.lightning_attn", slopes, sz.H)
    o_view = _contiguous_view(tuple(int(x) for x in v.shape), layout, _STAND_IN_BASE)
    num_seqs = int(sz.S) if cu_seqlens is not None else 0
    n = _C.segment_starts_bytes(sz.dtype, sz.device, shape, view(q), view(k), view(v), o_view,
                                slopes_ptr, float(scale), addr(cu_seqlens), num_seqs,
                                addr(initial_state), 0, intermediates, max_seqlen)
    del slopes_owner
    return n


def forward(fn, q, k, v, slopes, scale, layout, initial_state, want_final_state, cu_seqlens,
            intermediates="compensated", sz=None, max_seqlen=0, keep_starts=False,
            backward_follows=True, starts_buffer=None):
    """Runs the forward; returns (o, final_state), final_state an empty (0,) tensor unless asked.

    `slopes` is anything slopes_array() takes. sz: the Sizes of a caller that has already run
    check_intermediates and check_inputs on these arguments (they are then not run again).
    max_seqlen: the longest sequence with cu_seqlens, 0 when unknown (a hint; check_max_seqlen).
    keep_starts: returns (o, final_state, starts), starts the segment starts the forward kept
    for its backward (PyTorch CUDA tensors, when backward_follows: a uint8 tensor for
    backward(starts=...)) or None. starts_buffer: a uint8 tensor to keep them in instead (the
    custom op's, sized by starts_bytes(stand_in=True)); filled only when starts_bytes() of
    these very tensors is its size (the custom op's backward checks the same), returned as
    starts either way.
    """
    if sz is None:
        check_intermediates(fn, intermediates)
        sz = check_inputs(fn, q, k, v, layout, initial_state, cu_seqlens)
    owner, slopes_ptr = slopes_array(fn, slopes, sz.H)
    o = _empty_like_kind(v, tuple(v.shape), sz.dtype)
    sdt = state_dtype(sz.dtype)
    sf = _empty_like_kind(q, (sz.S, sz.H, sz.D, sz.E) if want_final_state else (0,), sdt)
    num_seqs = sz.S if cu_seqlens is not None else 0
    shape, views = (sz.B, sz.N, sz.H, sz.D, sz.E), [seq_view(t, layout) for t in (q, k, v, o)]
    sf_addr = address(sf) if want_final_state else 0
    starts, kept = starts_buffer, None
    # Only a sequence (or packed batch) of more than 4 chunks can split (segments.h).
    if (keep_starts and backward_follows and sz.device == "cuda" and not use_reference(sz)
            and sz.N > 256):
        if starts_buffer is not None:  # the custom op's: the rule its backward checks too
            if starts_buffer.numel() > 0 and starts_buffer.numel() == starts_bytes(
                    sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens, intermediates,
                    max_seqlen):
                kept = starts_buffer
            n = 0
        else:
            n = _C.segment_starts_bytes(sz.dtype, sz.device, shape, *views, slopes_ptr,
                                        float(scale), address(cu_seqlens), num_seqs,
                                        address(initial_state), sf_addr, intermediates, max_seqlen)
        if n > 0:
            import torch
            starts = kept = torch.empty(n, dtype=torch.uint8, device=q.device)
    with _Call(q) as (threads, stream):
        _C.forward(sz.dtype, sz.device, shape, *views, slopes_ptr, float(scale),
                   address(cu_seqlens), num_seqs, address(initial_state), sf_addr,
                   threads, stream, use_reference(sz), intermediates, max_seqlen,
                   address(kept), kept.numel() if kept is not None else 0)
    del owner
    return (o, sf, starts) if keep_starts else (o, sf)


def backward(fn, do, d_final_state, q, k, v, slopes, scale, layout, initial_state, cu_seqlens,
             need_initial_grad, intermediates="compensated", sz=None, max_seqlen=0, starts=None):
    """Runs the backward (PyTorch tensors); returns (dq, dk, dv, d_initial_state or empty (0,)).
    sz, max_seqlen: as for forward(); starts: what forward(keep_starts=True) kept, or None."""
    if sz is None:
        check_intermediates(fn, intermediates)
        sz = check_inputs(fn, q, k, v, layout, initial_state, cu_seqlens)
    owner, slopes_ptr = slopes_array(fn, slopes, sz.H)
    if do.shape[-1] > 1 and do.stride(-1) != 1:  # e.g. an expanded gradient of .sum()
        do = do.contiguous()
    do = do.to(q.dtype)
    if d_final_state is not None:  # (S, H, D, E), fp32 (fp64 for f64 inputs), contiguous
        import torch
        sdt = torch.float64 if sz.dtype == "f64" else torch.float32
        d_final_state = d_final_state.to(sdt).contiguous()
    dq = _empty_like_kind(q, tuple(q.shape), sz.dtype)
    dk = _empty_like_kind(k, tuple(k.shape), sz.dtype)
    dv = _empty_like_kind(v, tuple(v.shape), sz.dtype)
    want_ds0 = need_initial_grad and initial_state is not None
    ds0 = _empty_like_kind(q, tuple(initial_state.shape) if want_ds0 else (0,),
                           state_dtype(sz.dtype))
    num_seqs = sz.S if cu_seqlens is not None else 0
    with _Call(q) as (threads, stream):
        _C.backward(sz.dtype, sz.device, (sz.B, sz.N, sz.H, sz.D, sz.E),
                    seq_view(q, layout), seq_view(k, layout), seq_view(v, layout),
                    seq_view(do, layout), seq_view(dq, layout), seq_view(dk, layout),
                    seq_view(dv, layout), slopes_ptr, float(scale), address(cu_seqlens), num_seqs,
                    address(initial_state), address(d_final_state),
                    address(ds0) if want_ds0 else 0, threads, stream, use_reference(sz),
                    intermediates, max_seqlen, address(starts),
                    starts.numel() if starts is not None else 0)
    del owner
    return dq, dk, dv, ds0


def decode(fn, q, k, v, state, slopes, scale):
    """One decode step in place on `state`; returns o (B, H, E)."""
    sz = check_decode(fn, q, k, v, state)
    owner, slopes_ptr = slopes_array(fn, slopes, sz.H)
    o = _empty_like_kind(v, tuple(v.shape), sz.dtype)
    with _Call(q) as (threads, stream):
        _C.decode(sz.dtype, sz.device, (sz.B, sz.H, sz.D, sz.E), head_view(q), head_view(k),
                  head_view(v), head_view(o), address(state), slopes_ptr, float(scale), threads,
                  stream, use_reference(sz))
    del owner
    return o
