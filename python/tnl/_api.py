# _api.py: the public entry points, tnl.lightning_attn, tnl.lightning_attn_func, tnl.decode_step.
# PyTorch tensors go through _torch_ops (autograd, custom ops); NumPy arrays straight to the
# C++ library (forward only). PyTorch is imported only when a tensor is passed.
from . import _core

_ATTN = "tnl.lightning_attn"
_DECODE = "tnl.decode_step"


def _torch_ops():
    from . import _torch_ops
    return _torch_ops


def lightning_attn(q, k, v, slope, *, scale=1.0, layout="bhnd", initial_state=None,
                   output_final_state=False, cu_seqlens=None, max_seqlen=None,
                   intermediates="compensated"):
    """Lightning attention: S_t = λ S_{t-1} + k_tᵀ v_t, o_t = scale · q_t S_t, λ = exp(-slope).

    q, k: (B, H, N, D) with layout="bhnd" (default, the paper's / Triton's), or (B, N, H, D)
    with layout="bnhd" (FlashAttention / FLA); v: the same with E for D. Any strides with a
    contiguous last dim; dtype float32, float16 or bfloat16 (float64 on the CPU: the fp64
    reference, for gradcheck); CPU or CUDA (on the current stream). NumPy arrays: forward only.
    slope: (H) decay rates >= 0 (a number, a sequence, or a tensor of H elements, any shape);
        it gets no gradient.
    initial_state: (S, H, D, E) float32 (float64 for float64 inputs), contiguous; S = B, or
        the number of sequences with cu_seqlens. Differentiable.
    cu_seqlens: (num_seqs + 1) int32 offsets (int64 is converted) of sequences packed along N
        of a batch of 1; the state resets at each boundary.
    max_seqlen: with cu_seqlens, the longest sequence's length when known (FlashAttention's
        hint; an int, None = unknown). On CUDA it lets a batch with one sequence much longer
        than the others split that one into segments; results never depend on it.
    intermediates: float16/bfloat16 on CUDA only (ignored on the CPU and for float32, which
        compute in fp32 either way); the backward uses the forward's mode.
        "compensated" (default): fp32-level error.
        "rounded": the kernels' intermediates rounded once to the input dtype, about PyTorch-level
        error (that of the same math at that dtype), ~25% faster.
    Returns o (like v), or (o, final_state) when output_final_state; final_state is S_{N-1},
    (S, H, D, E) float32, differentiable.
    """
    _core.check_intermediates(_ATTN, intermediates)
    max_seqlen = _core.check_max_seqlen(_ATTN, max_seqlen)
    if not _core.is_torch(q):  # NumPy (or an error naming q)
        o, sf = _core.forward(_ATTN, q, k, v, slope, scale, layout, initial_state,
                              bool(output_final_state), cu_seqlens, intermediates,
                              max_seqlen=max_seqlen)
        return (o, sf) if output_final_state else o
    ops = _torch_ops()
    cu_seqlens = ops.int32_offsets(cu_seqlens)
    sz = _core.check_inputs_fast(_ATTN, q, k, v, layout, initial_state, cu_seqlens)
    slopes = ops.slopes_tensor(_ATTN, slope, sz.H)
    o, sf = ops.attn(q, k, v, slopes, float(scale), layout, initial_state,
                     bool(output_final_state), cu_seqlens, max_seqlen, intermediates, sz)
    return (o, sf) if output_final_state else o


def lightning_attn_func(q, k, v, s=None):
    """The call of the Triton package (lightning_attn.ops.lightning_attn_func): q, k (B, H, N, D),
    v (B, H, N, E), s the (H, 1, 1) slopes; returns o (B, H, N, E). Like the Triton kernels it
    copies inputs whose last dim is not contiguous."""
    if s is None:
        raise _core.arg_error("tnl.lightning_attn_func", "s", "expected the (H, 1, 1) slopes")
    q, k, v = (x.contiguous() if x.ndim == 4 and x.shape[-1] > 1 and x.stride(-1) != 1 else x
               for x in (q, k, v))
    return lightning_attn(q, k, v, s, layout="bhnd")


def decode_step(q, k, v, state, slope, *, scale=1.0):
    """One token per sequence: state ← λ state + kᵀ v (in place), returns o = scale · q state.

    q, k: (B, H, D); v: (B, H, E); state: (B, H, D, E) float32, contiguous (e.g. the
    final_state of lightning_attn); CPU or CUDA tensors, or NumPy arrays. No autograd.
    """
    if not _core.is_torch(q):
        return _core.decode(_DECODE, q, k, v, state, slope, scale)
    ops = _torch_ops()
    sz = _core.check_decode(_DECODE, q, k, v, state)
    return ops.decode(q, k, v, state, ops.slopes_tensor(_DECODE, slope, sz.H), float(scale))
