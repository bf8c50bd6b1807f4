# tnl: Lightning Attention for PyTorch (and NumPy), a thin binding of the tnl C++/CUDA library.
#
#   o = tnl.lightning_attn(q, k, v, slope)                         # (B, H, N, D): paper style
#   o, s = tnl.lightning_attn(q, k, v, slope, layout="bnhd", output_final_state=True)  # FLA style
#   o = tnl.lightning_attn_func(q, k, v, s)                        # the Triton package's call
#   o = tnl.decode_step(q, k, v, state, slope)                     # one token, state in place
#
# S_t = λ S_{t-1} + k_tᵀ v_t,  o_t = scale · q_t S_t,  λ = exp(-slope)  (per head).
from . import _C
from ._api import decode_step, lightning_attn, lightning_attn_func
from .slopes import alibi_slopes, slopes_minimax, slopes_transnormer

__version__ = _C.__version__
Error = _C.Error                  # every failure of the C++ library (a RuntimeError)
ArgumentError = _C.ArgumentError  # a bad argument, named in the message (a ValueError too)
cuda_built = _C.cuda_built        # this build has the CUDA backend
max_head_dim = _C.max_head_dim    # D and E may be 1..max_head_dim

__all__ = ["lightning_attn", "lightning_attn_func", "decode_step", "slopes_transnormer",
           "slopes_minimax", "alibi_slopes", "Error", "ArgumentError", "cuda_built",
           "max_head_dim", "__version__"]
