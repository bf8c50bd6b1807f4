// train_kernels.h: the element-wise and reduction kernels of TransNormerLLM training on the GPU
// (the GPU twins of train/layers_backward.h), internal to src/train/cuda/. Row-major matrices of
// R token rows; ld_* are row strides in elements. Activations that feed a GEMM are bf16 (rounded
// once, to nearest even); norms, SiLU, LRPE angles, the loss and every reduction are fp32 (the
// gradient norm fp64). No atomics: every kernel gives the same bits on every run.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tnl::train::cuda {

using bf16 = __nv_bfloat16;

// y (n) bf16 = x (n) fp32.
void to_bf16(const float* x, int64_t n, bf16* y, cudaStream_t st);
// h (R, d) = scale · E[ids] (E fp32 (V, d): the master weights).
void embed_forward(const float* E, const int32_t* ids, int64_t R, int64_t d, float scale, float* h,
                   cudaStream_t st);
// dE[ids[r]] += scale · dh[r], rows grouped by id on the host: `order` (R) lists the rows id by
// id, seg (U + 1) the start of each of the U distinct ids uid (U) in it. One block per id sums
// its rows in order: deterministic.
void embed_backward(const float* dh, const int32_t* order, const int32_t* seg, const int32_t* uid,
                    int64_t U, int64_t d, float scale, float* dE, cudaStream_t st);

// y (R, cols) bf16 = x·r, r = 1/sqrt(mean(x²) + 1e-6) per row, kept in rstd (R).
void srms_forward(const float* x, int64_t R, int64_t cols, bf16* y, float* rstd, cudaStream_t st);
// dx = r·(dy − y·mean(dy ⊙ y)) (y the forward's bf16 output): written, or added when accumulate.
void srms_backward(const float* dy, const bf16* y, const float* rstd, int64_t R, int64_t cols,
                   float* dx, bool accumulate, cudaStream_t st);

// From pre (R, 4·hid) = [q | k | v | u] bf16: q, k = SiLU, then LRPE when theta (H, dh) is not
// null (angle θ[h, c]·(r mod seqlen) in fp32) -> q, k (R, H, D) bf16, D = 2·dh with LRPE, else dh.
void qk_forward(const bf16* pre, int64_t R, int64_t seqlen, int64_t H, int64_t dh, const float* theta,
                bf16* q, bf16* k, cudaStream_t st);
// The backward of qk_forward into dpre[:, 0:2·hid] (row stride 4·hid): with theta, from
// dq, dk (R, H, 2·dh) bf16 (LRPE backward, then SiLU'); without, in place on dpre's q and k
// columns (what the attention backward wrote there). dθ (H, dh) += Σ over rows of both q and k,
// in a fixed order (per-chunk partials in `partial`, chunks · hid floats, then summed).
void qk_backward(const bf16* pre, int64_t R, int64_t seqlen, int64_t H, int64_t dh, const float* theta,
                 const bf16* dq, const bf16* dk, bf16* dpre, float* partial, int64_t chunks,
                 float* dtheta, cudaStream_t st);

// Gate: on = SRMS(o) over hid (r2 (R) = its 1/rms, written when write_rstd, else read);
// gated (R, hid) bf16 = on ⊙ u, u = pre[:, 3·hid:] (row stride 4·hid).
void gate_forward(const bf16* o, const bf16* pre, int64_t R, int64_t hid, float* r2, bool write_rstd,
                  bf16* gated, cudaStream_t st);
// From dgated (R, hid) fp32: du = dgated ⊙ on -> dpre[:, 3·hid:] (bf16, row stride 4·hid);
// d_o (R, hid) bf16 = SRMS backward of dgated ⊙ u.
void gate_backward(const float* dgated, const bf16* o, const float* r2, const bf16* pre, int64_t R,
                   int64_t hid, bf16* dpre, bf16* d_o, cudaStream_t st);

// p (R, g) bf16 = a ⊙ b, ab (R, 2g) bf16 = [a | b].
void glu_forward(const bf16* ab, int64_t R, int64_t g, bf16* p, cudaStream_t st);
// dab (R, 2g) bf16 = [dp ⊙ b | dp ⊙ a], dp (R, g) fp32.
void glu_backward(const float* dp, const bf16* ab, int64_t R, int64_t g, bf16* dab, cudaStream_t st);

// Per row of logits (n, V) fp32 with target t (−1 = ignored): nll[r] = logsumexp − logit[t]
// (0 when ignored); when dlogits is not null, dlogits (n, V) bf16 = grad_scale·(softmax − onehot)
// (0 on ignored rows).
void cross_entropy(const float* logits, int64_t n, int64_t V, const int32_t* targets, float grad_scale,
                   float* nll, bf16* dlogits, cudaStream_t st);

// partial[b] = Σ g[i]² over i in [b·block, (b+1)·block) in fp64, b < ceil(n / block).
constexpr int64_t kNormBlock = 1 << 14;
void sum_squares(const float* g, int64_t n, double* partial, cudaStream_t st);
// x (n) *= c.
void scale(float* x, int64_t n, float c, cudaStream_t st);

// AdamW on [begin, end) of the flat buffers (train/optimizer.cpp's arithmetic, fp32, no
// contraction into FMAs), and p16 = bf16(p).
struct AdamWArgs {
  float decay = 1;         // 1 − lr·wd, or 1 where the range has no weight decay
  float one_minus_b1 = 0, b2 = 0, one_minus_b2 = 0, step_size = 0, bc2_sqrt = 1, eps = 0;
};
void adamw(float* p, const float* g, float* m, float* v, bf16* p16, int64_t begin, int64_t end,
           const AdamWArgs& a, cudaStream_t st);

}  // namespace tnl::train::cuda
