// torch_baseline.h: the low-precision baseline of spec §4, emulated in C++.
//
// "The same math done in PyTorch at that dtype with fp32 accumulation": the naive quadratic form
// with every tensor in the case's dtype (fp16 / bf16), every matmul accumulated in fp32 and its
// result rounded to the dtype, every element-wise op rounded to the dtype, i.e. what
//     P = q @ k.T;  A = P * M;  o = A @ v + (q * g) @ S0;  S_f = (k * w).T @ v + λ^L S0
// (M[t,u] = c λ^(t-u) for t >= u else 0, g[t] = c λ^(t+1), w[u] = λ^(L-1-u); masks, S0 and
// dS_final cast to the dtype) and autograd through it do in torch at that dtype.
// The fast path's error against the fp64 oracle must be at most twice this baseline's.
#pragma once

#include "testing/attn_case.h"

namespace tnl::testing {

// o (+ final_state), in the canonical order of AttnCase.
Outputs torch_like_forward(const AttnCase& c);
// dq, dk, dv (+ d_initial_state), by the autograd of the graph above.
Outputs torch_like_backward(const AttnCase& c);

// Rounds x to the nearest value of dtype (f16 / bf16 / f32); f64 returns x.
float round_to(double x, DType dtype);

}  // namespace tnl::testing
