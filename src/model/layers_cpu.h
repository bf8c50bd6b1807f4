// layers_cpu.h: the element-wise and GEMM building blocks of TransNormerLLM on the CPU, in fp32.
// Row-major matrices; `rows` tokens by `cols` features.
#pragma once

#include <cstdint>

namespace tnl::model::cpu {

// y (rows, n) = x (rows, k) · Wᵀ, W (n, k) row-major (a PyTorch Linear weight). OpenBLAS SGEMM.
void linear(const float* x, int64_t rows, int64_t k, const float* w, int64_t n, float* y,
            float beta = 0.0f);
// SimpleRMSNorm, no weight: y = x / sqrt(mean(x²) + 1e-6) over each row (in place allowed).
void srms_norm(const float* x, int64_t rows, int64_t cols, int64_t ld_x, float* y, int64_t ld_y);
// x ← SiLU(x) = x·sigmoid(x) on `cols` columns of each row (row stride ld).
void silu_inplace(float* x, int64_t rows, int64_t cols, int64_t ld);
// LRPE: for each row (token at absolute position pos0 + row), head h, channel c < dh:
//   out[h, c] = x[h, c]·cos(θ[h, c]·p),  out[h, dh + c] = x[h, c]·sin(θ[h, c]·p)
// x rows have stride ld_x with heads packed (H·dh); out rows are (H, 2·dh) contiguous.
// `positions` (rows) gives p per row.
// The angle is computed in T: the fp32 product of the released model when T is float (the
// double instance is training's finite-difference twin).
template <class T>
void lrpe(const T* x, int64_t rows, int64_t heads, int64_t dh, int64_t ld_x, const T* theta,
          const int64_t* positions, T* out);
// y ← a ⊙ b element-wise on `cols` columns (row strides given).
void mul_inplace(float* y, int64_t ld_y, const float* a, int64_t ld_a, int64_t rows, int64_t cols);

}  // namespace tnl::model::cpu
