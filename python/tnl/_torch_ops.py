# _torch_ops.py: the PyTorch side of tnl.lightning_attn: autograd and custom-op registration.
#
# With PyTorch >= 2.4 (torch.library.custom_op) the forward, backward and decode step are the
# custom ops tnl::lightning_attn_fwd, tnl::lightning_attn_bwd and tnl::lightning_attn_decode,
# with fake (meta) implementations and a registered autograd formula, so torch.compile traces
# through them without a graph break. Older PyTorch gets a plain torch.autograd.Function that
# calls the same C++ kernels (torch.compile, where it exists, then breaks the graph around it).
# Either way the backward runs tnl's backward kernels, with the forward's `intermediates` mode;
# the slope gets no gradient; and a CUDA forward that has a backward keeps its segment starts
# for it (the backward's dq scan then skips a pre-pass over K and V). Through the custom op the
# starts are a third output, sized from sizes, strides and storage offsets alone
# (_core.starts_bytes(stand_in=True)) so that the fake agrees; with symbolic shapes none are
# kept.
#
# A custom op's dispatch costs host time on every call (python_overhead.py measures it), which
# an eager caller pays while the GPU waits whenever the kernels are short. So plain eager calls
# (real CPU/CUDA tensors, no torch.compile/export tracing, no dispatch or function mode active)
# take the autograd.Function straight to the kernels; anything else goes through the custom op.
import os
from typing import Optional, Tuple

import torch

from . import _core

FN = "tnl.lightning_attn"
HAS_CUSTOM_OP = hasattr(torch.library, "custom_op") and hasattr(torch.library, "register_fake")


def _state_dtype(q):
    return torch.float64 if q.dtype == torch.float64 else torch.float32


class LightningAttnFunction(torch.autograd.Function):
    """Forward and backward through tnl's kernels: the eager path (see the header)."""

    @staticmethod
    def forward(ctx, q, k, v, slopes, scale, layout, initial_state, output_final_state,
                cu_seqlens, max_seqlen, intermediates, sz):
        # sz: the Sizes from lightning_attn's checks of these very arguments. A forward that
        # will have a backward keeps its segment starts for it (the backward then skips one
        # pre-pass over K and V).
        o, sf, ctx.starts = _core.forward(FN, q, k, v, slopes, scale, layout, initial_state,
                                          output_final_state, cu_seqlens, intermediates, sz,
                                          max_seqlen, keep_starts=True,
                                          backward_follows=any(ctx.needs_input_grad[:3]))
        ctx.save_for_backward(q, k, v, slopes, initial_state, cu_seqlens)
        ctx.sz, ctx.scale, ctx.layout, ctx.want_final = sz, scale, layout, output_final_state
        ctx.max_seqlen = max_seqlen
        ctx.intermediates = intermediates  # the backward rounds like the forward did
        ctx.set_materialize_grads(False)
        if not output_final_state:
            ctx.mark_non_differentiable(sf)
        return o, sf

    @staticmethod
    def backward(ctx, do, d_final_state):
        q, k, v, slopes, initial_state, cu_seqlens = ctx.saved_tensors
        if do is None:
            do = torch.zeros(tuple(v.shape), dtype=v.dtype, device=v.device)
        need_s0 = initial_state is not None and ctx.needs_input_grad[6]
        dq, dk, dv, ds0 = _core.backward(FN, do, d_final_state if ctx.want_final else None,
                                         q, k, v, slopes, ctx.scale, ctx.layout,
                                         initial_state, cu_seqlens, need_s0,
                                         ctx.intermediates, ctx.sz, ctx.max_seqlen, ctx.starts)
        return (dq, dk, dv, None, None, None, (ds0 if need_s0 else None), None, None, None, None,
                None)


def _plain_eager(*tensors):
    """Whether this call can skip the custom op: plain tensors (not fake, meta or subclasses),
    not under torch.compile / export, and no dispatch or function mode active (fake tensor
    mode, functionalization, opcheck's checks all use one). TNL_CUSTOM_OP=1 forces the op."""
    if _FORCE_OP or _is_compiling():
        return False
    if _dispatch_modes() or _function_modes():
        return False
    return all(t is None or (type(t) is torch.Tensor and t.device.type in ("cpu", "cuda"))
               for t in tensors)


_FORCE_OP = os.environ.get("TNL_CUSTOM_OP") == "1"
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None) or (lambda: False)
_dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", None)
_function_modes = getattr(torch._C, "_len_torch_function_stack", None)
if _dispatch_modes is None or _function_modes is None:  # cannot tell: always the custom op
    _dispatch_modes = _function_modes = (lambda: 1)


if HAS_CUSTOM_OP:

    def _op_starts_bytes(sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens, max_seqlen,
                         intermediates, stand_in):
        """The custom op's segment starts in bytes (see the header): the fake and the real
        forward call it with stand_in=True, the real backward with False to learn whether the
        forward filled them (it fills them when both agree)."""
        return _core.starts_bytes(sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens,
                                  intermediates, max_seqlen, stand_in=stand_in)

    @torch.library.custom_op("tnl::lightning_attn_fwd", mutates_args=())
    def _fwd_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor,
                scale: float, layout: str, initial_state: Optional[torch.Tensor],
                output_final_state: bool, cu_seqlens: Optional[torch.Tensor], max_seqlen: int,
                intermediates: str, keep_starts: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (o, final state or (0,), segment starts (bytes,) uint8 or (0,))
        _core.check_intermediates(FN, intermediates)
        sz = _core.check_inputs(FN, q, k, v, layout, initial_state, cu_seqlens)
        n = _op_starts_bytes(sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens,
                             max_seqlen, intermediates, True) if keep_starts else 0
        starts = torch.empty(n, dtype=torch.uint8, device=q.device)
        o, sf, _ = _core.forward(FN, q, k, v, slopes, scale, layout, initial_state,
                                 output_final_state, cu_seqlens, intermediates, sz, max_seqlen,
                                 keep_starts=True, starts_buffer=starts)
        return o, sf, starts

    @_fwd_op.register_fake
    def _fwd_fake(q, k, v, slopes, scale, layout, initial_state, output_final_state, cu_seqlens,
                  max_seqlen, intermediates, keep_starts=False):
        _core.check_intermediates(FN, intermediates)
        sz = _core.check_inputs(FN, q, k, v, layout, initial_state, cu_seqlens)
        o = torch.empty(tuple(v.shape), dtype=v.dtype, device=v.device)
        shape = (sz.S, sz.H, sz.D, sz.E) if output_final_state else (0,)
        n = _op_starts_bytes(sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens,
                             max_seqlen, intermediates, True) if keep_starts else 0
        return (o, torch.empty(shape, dtype=_state_dtype(q), device=q.device),
                torch.empty(n, dtype=torch.uint8, device=q.device))

    @torch.library.custom_op("tnl::lightning_attn_bwd", mutates_args=())
    def _bwd_op(do: torch.Tensor, d_final_state: Optional[torch.Tensor], q: torch.Tensor,
                k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor, scale: float, layout: str,
                initial_state: Optional[torch.Tensor], cu_seqlens: Optional[torch.Tensor],
                max_seqlen: int, need_initial_grad: bool, intermediates: str,
                starts: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        _core.check_intermediates(FN, intermediates)
        sz = _core.check_inputs(FN, q, k, v, layout, initial_state, cu_seqlens)
        if starts is not None and (starts.numel() == 0 or starts.numel() != _op_starts_bytes(
                sz, q, k, v, slopes, scale, layout, initial_state, cu_seqlens, max_seqlen,
                intermediates, False)):
            starts = None  # none kept, or the forward did not fill them
        return _core.backward(FN, do, d_final_state, q, k, v, slopes, scale, layout,
                              initial_state, cu_seqlens, need_initial_grad, intermediates, sz,
                              max_seqlen, starts)

    @_bwd_op.register_fake
    def _bwd_fake(do, d_final_state, q, k, v, slopes, scale, layout, initial_state, cu_seqlens,
                  max_seqlen, need_initial_grad, intermediates, starts=None):
        _core.check_intermediates(FN, intermediates)
        ds0 = (tuple(initial_state.shape) if need_initial_grad and initial_state is not None
               else (0,))
        dq, dk, dv = (torch.empty(tuple(t.shape), dtype=t.dtype, device=t.device)
                      for t in (q, k, v))
        return dq, dk, dv, torch.empty(ds0, dtype=_state_dtype(q), device=q.device)

    def _setup_context(ctx, inputs, output):
        (q, k, v, slopes, scale, layout, initial_state, output_final_state, cu_seqlens,
         max_seqlen, intermediates) = inputs[:11]
        ctx.save_for_backward(q, k, v, slopes, initial_state, cu_seqlens, output[2])
        ctx.scale, ctx.layout, ctx.want_final = scale, layout, output_final_state
        ctx.max_seqlen = max_seqlen
        ctx.intermediates = intermediates  # the backward rounds like the forward did

    def _backward(ctx, do, d_final_state, d_starts):
        q, k, v, slopes, initial_state, cu_seqlens, starts = ctx.saved_tensors
        if do is None:
            do = torch.zeros(tuple(v.shape), dtype=v.dtype, device=v.device)
        need_s0 = initial_state is not None and ctx.needs_input_grad[6]
        dq, dk, dv, ds0 = _bwd_op(do, d_final_state if ctx.want_final else None, q, k, v, slopes,
                                  ctx.scale, ctx.layout, initial_state, cu_seqlens,
                                  ctx.max_seqlen, need_s0, ctx.intermediates, starts)
        return (dq, dk, dv, None, None, None, (ds0 if need_s0 else None), None, None, None, None,
                None)

    _fwd_op.register_autograd(_backward, setup_context=_setup_context)

    @torch.library.custom_op("tnl::lightning_attn_decode", mutates_args=("state",))
    def _decode_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: torch.Tensor,
                   slopes: torch.Tensor, scale: float) -> torch.Tensor:
        return _core.decode("tnl.decode_step", q, k, v, state, slopes, scale)

    @_decode_op.register_fake
    def _decode_fake(q, k, v, state, slopes, scale):
        _core.check_decode("tnl.decode_step", q, k, v, state)
        return torch.empty(tuple(v.shape), dtype=v.dtype, device=v.device)

    def attn(q, k, v, slopes, scale, layout, initial_state, output_final_state, cu_seqlens,
             max_seqlen, intermediates, sz):
        if _plain_eager(q, k, v, initial_state):
            return LightningAttnFunction.apply(q, k, v, slopes, scale, layout, initial_state,
                                               output_final_state, cu_seqlens, max_seqlen,
                                               intermediates, sz)
        # Starts only for a backward, and not with symbolic sizes (their byte count is a plan).
        keep = (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
                and all(type(d) is int for d in (*q.shape, *q.stride(), *k.stride(),
                                                 *v.shape, *v.stride())))
        o, sf, _ = _fwd_op(q, k, v, slopes, scale, layout, initial_state, output_final_state,
                           cu_seqlens, max_seqlen, intermediates, keep)
        return o, sf

    def decode(q, k, v, state, slopes, scale):
        if _plain_eager(q, k, v, state):
            with torch.no_grad():
                return _core.decode("tnl.decode_step", q, k, v, state, slopes, scale)
        return _decode_op(q, k, v, state, slopes, scale)

else:

    def attn(q, k, v, slopes, scale, layout, initial_state, output_final_state, cu_seqlens,
             max_seqlen, intermediates, sz):
        return LightningAttnFunction.apply(q, k, v, slopes, scale, layout, initial_state,
                                           output_final_state, cu_seqlens, max_seqlen,
                                           intermediates, sz)

    def decode(q, k, v, state, slopes, scale):
        with torch.no_grad():
            return _core.decode("tnl.decode_step", q, k, v, state, slopes, scale)

    _disable = getattr(getattr(torch, "compiler", None), "disable", None)
    if _disable is not None:  # PyTorch 2.1-2.3: graph-break around the kernels
        attn, decode = _disable(attn), _disable(decode)


def slopes_tensor(fn, slope, heads):
    """The slopes as a CPU float32 tensor (H,): the form the ops take (host memory per the API)."""
    if isinstance(slope, torch.Tensor):
        if slope.numel() != heads:
            raise _core.arg_error(fn, "slope", f"expected {heads} values (one per head), got "
                                               f"{slope.numel()}")
        s = slope.detach()
        if s.device.type == "cpu" and s.dtype == torch.float32 and s.ndim == 1:
            return s
        return s.reshape(-1).to(device="cpu", dtype=torch.float32)
    if isinstance(slope, (int, float)):
        values = [float(slope)] * heads
    elif _core.is_numpy(slope):
        values = [float(x) for x in slope.reshape(-1)]
    else:
        try:
            values = [float(x) for x in slope]
        except TypeError:
            raise _core.arg_error(fn, "slope", f"expected a number, a sequence or a tensor of "
                                               f"{heads} values, got {type(slope).__name__}"
                                  ) from None
    if len(values) != heads:
        raise _core.arg_error(fn, "slope", f"expected {heads} values (one per head), got "
                                           f"{len(values)}")
    return torch.tensor(values, dtype=torch.float32)


def int32_offsets(cu_seqlens):
    """cu_seqlens as int32 (FLA passes int64 offsets; FlashAttention int32)."""
    if isinstance(cu_seqlens, torch.Tensor) and cu_seqlens.dtype == torch.int64:
        return cu_seqlens.to(torch.int32)
    return cu_seqlens
