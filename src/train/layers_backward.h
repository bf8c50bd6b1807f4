// layers_backward.h: forward and backward kernels of the TransNormerLLM ops on the CPU, on
// float (training) and double (the finite-difference checks run this same code in fp64).
// Row-major matrices of `rows` tokens; ld_* are row strides in elements. Backward kernels
// either write (`accumulate` false) or add into (true) their outputs, as each says.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace tnl::train::ops {

// e^x in fp32 (x clamped to [−87, 88]), within ~2 ulp; inline and branch-free so that loops
// over it vectorize.
inline float exp_f32(float x) {
  // e^x = 2^n · e^r, n = round(x·log2 e), r = x − n·ln 2 in [−ln2/2, ln2/2] (ln 2 in two parts),
  // e^r by the Cephes expf polynomial.
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float shifter = 12582912.0f;  // 1.5·2^23: (t + shifter) − shifter rounds t to an integer
  const float fn = (x * 1.44269504088896341f + shifter) - shifter;
  const int n = (int)fn;
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (n + 127) << 23;  // 2^n, n in [−126, 127]
  float scale;
  std::memcpy(&scale, &bits, 4);
  return er * scale;
}

// C (m, n) = alpha · op(A) · op(B) + beta · C, row-major; op(X) = Xᵀ when trans_X.
// OpenBLAS sgemm / dgemm.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// y (rows, n) = x (rows, k) · Wᵀ + beta · y, W (n, k) (a PyTorch Linear weight).
template <class T>
void linear_forward(const T* x, int64_t rows, int64_t k, const T* w, int64_t n, T* y, T beta = 0);
// dx (rows, k) = dy · W + dx_beta · dx (skipped when dx is null); dW (n, k) += dyᵀ · x.
template <class T>
void linear_backward(const T* dy, const T* x, int64_t rows, int64_t k, const T* w, int64_t n, T* dx,
                     T dx_beta, T* dw);

// SRMS: y = x·r, r = 1/sqrt(mean(x²) + 1e-6) per row (sums in double); rstd (rows) keeps r.
// In place (y == x) allowed.
template <class T>
void srms_forward(const T* x, int64_t ld_x, int64_t rows, int64_t cols, T* y, int64_t ld_y, T* rstd);
// dx = r·(dy − y·mean(dy ⊙ y)) from the forward's y and r; written, or added when accumulate.
template <class T>
void srms_backward(const T* dy, int64_t ld_dy, const T* y, int64_t ld_y, const T* rstd, int64_t rows,
                   int64_t cols, T* dx, int64_t ld_dx, bool accumulate);

// out = SiLU(pre) = pre·σ(pre) on `cols` columns (in place allowed).
template <class T>
void silu_forward(const T* pre, int64_t ld_pre, int64_t rows, int64_t cols, T* out, int64_t ld_out);
// d ← d · SiLU'(pre), SiLU'(x) = σ(x)·(1 + x·(1 − σ(x))), in place on the gradient.
template <class T>
void silu_backward(const T* pre, int64_t ld_pre, int64_t rows, int64_t cols, T* d, int64_t ld_d);

// LRPE (spec step 3), forward: model::cpu::lrpe (float and double). For row r at position
// positions[r], head h, channel c < dh, a = θ[h, c]·p:
//   out[r, h, c] = x[r, h, c]·cos a,   out[r, h, dh + c] = x[r, h, c]·sin a;   out (rows, H, 2·dh).
// dx[r, h, c] = dout[c]·cos a + dout[dh + c]·sin a  (written, rows of stride ld_dx);
// dθ[h, c] += Σ_r p·x[r, h, c]·(−dout[c]·sin a + dout[dh + c]·cos a).
template <class T>
void lrpe_backward(const T* dout, const T* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t dh,
                   const T* theta, const int64_t* positions, T* dx, int64_t ld_dx, T* dtheta);

// y = a ⊙ b (y may alias a or b).
template <class T>
void mul_forward(const T* a, int64_t ld_a, const T* b, int64_t ld_b, int64_t rows, int64_t cols, T* y,
                 int64_t ld_y);
// da = dy ⊙ b, db = dy ⊙ a (both written; neither may alias dy, a or b).
template <class T>
void mul_backward(const T* dy, int64_t ld_dy, const T* a, int64_t ld_a, const T* b, int64_t ld_b,
                  int64_t rows, int64_t cols, T* da, int64_t ld_da, T* db, int64_t ld_db);

// h (rows, d) = scale · E[ids] (ids checked against vocab: tnl::ArgumentError naming the row).
template <class T>
void embed_forward(const T* embed, int64_t vocab, int64_t d, const int32_t* ids, int64_t rows, T scale, T* h);
// dE[ids[r]] += scale · dh[r] (deterministic: threads own column ranges).
template <class T>
void embed_backward(const T* dh, const int32_t* ids, int64_t rows, int64_t d, T scale, T* dembed);

// Softmax cross-entropy over each row of logits (rows, V), in place: returns Σ over rows with
// target >= 0 of (logsumexp − logit[target]) in double and counts those rows into *count.
// When grad_scale != 0, the logits become the gradient grad_scale·(softmax − onehot) (0 on rows
// with target −1); otherwise they are overwritten with scratch values. Exponentials: exp_f32 on
// float, std::exp on double; sums in double.
template <class T>
double cross_entropy(T* logits, int64_t rows, int64_t vocab, const int32_t* targets, T grad_scale,
                     int64_t* count);

}  // namespace tnl::train::ops
