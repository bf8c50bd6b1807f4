// train_kernels.cu: see train_kernels.h.
#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/cuda_common.cuh"
#include "train/cuda/train_kernels.h"

namespace tnl::train::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n, int64_t cap = 65536) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, cap));
}


__device__ float block_max(float v) {
  __shared__ float part[kThreads / 32];
  __shared__ float total;
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = part[0];
    for (int w = 1; w < kThreads / 32; ++w) s = fmaxf(s, part[w]);
    total = s;
  }
  __syncthreads();
  const float t = total;
  __syncthreads();
  return t;
}

__device__ __forceinline__ float f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 b(float x) { return __float2bfloat16_rn(x); }
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void to_bf16_kernel(const float* x, int64_t n, bf16* y) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = b(x[i]);
}

__global__ void embed_forward_kernel(const float* E, const int32_t* ids, int64_t d, float scale, float* h) {
  const int64_t r = blockIdx.x;
  const float* row = E + (int64_t)ids[r] * d;  // (d)
  for (int64_t c = threadIdx.x; c < d; c += kThreads) h[r * d + c] = scale * row[c];
}

__global__ void embed_backward_kernel(const float* dh, const int32_t* order, const int32_t* seg,
                                      const int32_t* uid, int64_t d, float scale, float* dE) {
  const int64_t u = blockIdx.x;
  const int32_t lo = seg[u], hi = seg[u + 1];
  float* dst = dE + (int64_t)uid[u] * d;  // (d)
  for (int64_t c = blockIdx.y * (int64_t)kThreads + threadIdx.x; c < d; c += (int64_t)gridDim.y * kThreads) {
    float acc = dst[c];
    for (int32_t i = lo; i < hi; ++i) acc += scale * dh[(int64_t)order[i] * d + c];
    dst[c] = acc;
  }
}

__global__ void srms_forward_kernel(const float* x, int64_t cols, bf16* y, float* rstd) {
  const int64_t r = blockIdx.x;
  const float* xr = x + r * cols;  // (cols)
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) ss += xr[c] * xr[c];
  const float inv = 1.0f / sqrtf(cuda_common::block_sum<kThreads>(ss) / (float)cols + 1e-6f);
  if (threadIdx.x == 0) rstd[r] = inv;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) y[r * cols + c] = b(xr[c] * inv);
}

__global__ void srms_backward_kernel(const float* dy, const bf16* y, const float* rstd, int64_t cols,
                                     float* dx, bool accumulate) {
  const int64_t r = blockIdx.x;
  const float* dyr = dy + r * cols;  // (cols)
  const bf16* yr = y + r * cols;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) s += dyr[c] * f(yr[c]);
  const float mean = cuda_common::block_sum<kThreads>(s) / (float)cols, inv = rstd[r];
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) {
    const float v = inv * (dyr[c] - f(yr[c]) * mean);
    dx[r * cols + c] = accumulate ? dx[r * cols + c] + v : v;
  }
}

// One thread per (row, channel c < hid).
__global__ void qk_forward_kernel(const bf16* pre, int64_t seqlen, int64_t H, int64_t dh, const float* theta,
                                  bf16* q, bf16* k) {
  const int64_t r = blockIdx.x, hid = H * dh;
  const bf16* row = pre + r * 4 * hid;  // (4·hid)
  const float pos = (float)(r % seqlen);
  for (int64_t c = blockIdx.y * (int64_t)kThreads + threadIdx.x; c < hid; c += (int64_t)gridDim.y * kThreads) {
    const float pq = f(row[c]), pk = f(row[hid + c]);
    const float qv = pq * sigmoid(pq), kv = pk * sigmoid(pk);
    if (theta) {
      const int64_t h = c / dh, cc = c % dh;
      const float angle = theta[c] * pos;
      const float cs = cosf(angle), sn = sinf(angle);
      bf16* qo = q + (r * H + h) * 2 * dh;  // (2·dh)
      bf16* ko = k + (r * H + h) * 2 * dh;
      qo[cc] = b(qv * cs);
      qo[dh + cc] = b(qv * sn);
      ko[cc] = b(kv * cs);
      ko[dh + cc] = b(kv * sn);
    } else {
      q[r * hid + c] = b(qv);
      k[r * hid + c] = b(kv);
    }
  }
}

// Block (kThreads channels of hid) × row chunk: each thread walks the chunk's rows for its
// channel and writes its dθ partial (theta only).
__global__ void qk_backward_kernel(const bf16* pre, int64_t R, int64_t seqlen, int64_t H, int64_t dh,
                                   const float* theta, const bf16* dq, const bf16* dk, bf16* dpre,
                                   float* partial, int64_t rows_per_chunk) {
  const int64_t hid = H * dh;
  const int64_t c = blockIdx.x * (int64_t)kThreads + threadIdx.x;
  if (c >= hid) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = std::min(R, r0 + rows_per_chunk);
  const int64_t h = c / dh, cc = c % dh;
  const float th = theta ? theta[c] : 0.f;
  float dth = 0.f;
  for (int64_t r = r0; r < r1; ++r) {
    const bf16* row = pre + r * 4 * hid;
    bf16* drow = dpre + r * 4 * hid;
    for (int which = 0; which < 2; ++which) {
      const float x = f(row[which * hid + c]);
      const float s = sigmoid(x);
      const float dsilu = s * (1.0f + x * (1.0f - s));
      float dx;
      if (theta) {
        const float pos = (float)(r % seqlen);
        const float angle = th * pos;
        const float cs = cosf(angle), sn = sinf(angle);
        const bf16* dsrc = (which == 0 ? dq : dk) + (r * H + h) * 2 * dh;  // (2·dh)
        const float d0 = f(dsrc[cc]), d1 = f(dsrc[dh + cc]);
        dx = d0 * cs + d1 * sn;
        dth += pos * (x * s) * (-d0 * sn + d1 * cs);
      } else {
        dx = f(drow[which * hid + c]);
      }
      drow[which * hid + c] = b(dx * dsilu);
    }
  }
  if (theta) partial[blockIdx.y * hid + c] = dth;
}

__global__ void sum_partials_kernel(const float* partial, int64_t chunks, int64_t n, float* dst) {
  const int64_t c = blockIdx.x * (int64_t)kThreads + threadIdx.x;
  if (c >= n) return;
  float s = 0.f;
  for (int64_t i = 0; i < chunks; ++i) s += partial[i * n + c];
  dst[c] += s;
}

__global__ void gate_forward_kernel(const bf16* o, const bf16* pre, int64_t hid, float* r2, bool write_rstd,
                                    bf16* gated) {
  const int64_t r = blockIdx.x;
  const bf16* orow = o + r * hid;             // (hid)
  const bf16* u = pre + r * 4 * hid + 3 * hid;  // (hid)
  float inv;
  if (write_rstd) {
    float ss = 0.f;
    for (int64_t c = threadIdx.x; c < hid; c += kThreads) ss += f(orow[c]) * f(orow[c]);
    inv = 1.0f / sqrtf(cuda_common::block_sum<kThreads>(ss) / (float)hid + 1e-6f);
    if (threadIdx.x == 0) r2[r] = inv;
  } else {
    inv = r2[r];
  }
  for (int64_t c = threadIdx.x; c < hid; c += kThreads) gated[r * hid + c] = b((f(orow[c]) * inv) * f(u[c]));
}

__global__ void gate_backward_kernel(const float* dgated, const bf16* o, const float* r2, const bf16* pre,
                                     int64_t hid, bf16* dpre, bf16* d_o) {
  const int64_t r = blockIdx.x;
  const float* dg = dgated + r * hid;           // (hid)
  const bf16* orow = o + r * hid;               // (hid)
  const bf16* u = pre + r * 4 * hid + 3 * hid;  // (hid)
  bf16* du = dpre + r * 4 * hid + 3 * hid;
  const float inv = r2[r];
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < hid; c += kThreads) {
    const float on = f(orow[c]) * inv;
    du[c] = b(dg[c] * on);
    s += dg[c] * f(u[c]) * on;
  }
  const float mean = cuda_common::block_sum<kThreads>(s) / (float)hid;
  for (int64_t c = threadIdx.x; c < hid; c += kThreads) {
    const float on = f(orow[c]) * inv;
    d_o[r * hid + c] = b(inv * (dg[c] * f(u[c]) - on * mean));
  }
}

__global__ void glu_forward_kernel(const bf16* ab, int64_t R, int64_t g, bf16* p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < R * g; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / g, c = i % g;
    p[i] = b(f(ab[r * 2 * g + c]) * f(ab[r * 2 * g + g + c]));
  }
}

__global__ void glu_backward_kernel(const float* dp, const bf16* ab, int64_t R, int64_t g, bf16* dab) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < R * g; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / g, c = i % g;
    const float a = f(ab[r * 2 * g + c]), bb = f(ab[r * 2 * g + g + c]);
    dab[r * 2 * g + c] = b(dp[i] * bb);
    dab[r * 2 * g + g + c] = b(dp[i] * a);
  }
}

__global__ void cross_entropy_kernel(const float* logits, int64_t V, const int32_t* targets, float grad_scale,
                                     float* nll, bf16* dlogits) {
  const int64_t r = blockIdx.x;
  const float* x = logits + r * V;  // (V)
  const int32_t t = targets[r];
  if (t < 0) {
    if (threadIdx.x == 0) nll[r] = 0.f;
    if (dlogits)
      for (int64_t i = threadIdx.x; i < V; i += kThreads) dlogits[r * V + i] = b(0.f);
    return;
  }
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) mx = fmaxf(mx, x[i]);
  mx = block_max(mx);
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < V; i += kThreads) s += expf(x[i] - mx);
  s = cuda_common::block_sum<kThreads>(s);
  if (threadIdx.x == 0) nll[r] = (mx + logf(s)) - x[t];
  if (dlogits) {
    const float inv = 1.0f / s;
    for (int64_t i = threadIdx.x; i < V; i += kThreads) {
      const float pr = expf(x[i] - mx) * inv;
      dlogits[r * V + i] = b(grad_scale * (pr - (i == t ? 1.0f : 0.0f)));
    }
  }
}

__global__ void sum_squares_kernel(const float* g, int64_t n, double* partial) {
  const int64_t lo = blockIdx.x * kNormBlock, hi = std::min(n, lo + kNormBlock);
  double s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) s += (double)g[i] * (double)g[i];
  s = cuda_common::block_sum<kThreads>(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void scale_kernel(float* x, int64_t n, float c) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] *= c;
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, bf16* p16, int64_t begin, int64_t end,
                             AdamWArgs a) {
  for (int64_t i = begin + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < end;
       i += (int64_t)gridDim.x * blockDim.x) {
    const float gi = g[i];
    const float pi = __fmul_rn(p[i], a.decay);
    const float mi = __fadd_rn(m[i], __fmul_rn(a.one_minus_b1, __fsub_rn(gi, m[i])));
    const float vi = __fadd_rn(__fmul_rn(v[i], a.b2), __fmul_rn(__fmul_rn(a.one_minus_b2, gi), gi));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.bc2_sqrt), a.eps);
    const float pn = __fsub_rn(pi, __fmul_rn(a.step_size, __fdiv_rn(mi, denom)));
    m[i] = mi;
    v[i] = vi;
    p[i] = pn;
    p16[i] = b(pn);
  }
}

}  // namespace

void to_bf16(const float* x, int64_t n, bf16* y, cudaStream_t st) {
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n), kThreads, 0, st>>>(x, n, y);
  TNL_CUDA_CHECK_LAUNCH();
}

void embed_forward(const float* E, const int32_t* ids, int64_t R, int64_t d, float scale, float* h,
                   cudaStream_t st) {
  if (R == 0) return;
  embed_forward_kernel<<<(unsigned)R, kThreads, 0, st>>>(E, ids, d, scale, h);
  TNL_CUDA_CHECK_LAUNCH();
}

void embed_backward(const float* dh, const int32_t* order, const int32_t* seg, const int32_t* uid,
                    int64_t U, int64_t d, float scale, float* dE, cudaStream_t st) {
  if (U == 0) return;
  const dim3 grid((unsigned)U, (unsigned)std::min<int64_t>((d + kThreads - 1) / kThreads, 64));
  embed_backward_kernel<<<grid, kThreads, 0, st>>>(dh, order, seg, uid, d, scale, dE);
  TNL_CUDA_CHECK_LAUNCH();
}

void srms_forward(const float* x, int64_t R, int64_t cols, bf16* y, float* rstd, cudaStream_t st) {
  if (R == 0) return;
  srms_forward_kernel<<<(unsigned)R, kThreads, 0, st>>>(x, cols, y, rstd);
  TNL_CUDA_CHECK_LAUNCH();
}

void srms_backward(const float* dy, const bf16* y, const float* rstd, int64_t R, int64_t cols,
                   float* dx, bool accumulate, cudaStream_t st) {
  if (R == 0) return;
  srms_backward_kernel<<<(unsigned)R, kThreads, 0, st>>>(dy, y, rstd, cols, dx, accumulate);
  TNL_CUDA_CHECK_LAUNCH();
}

void qk_forward(const bf16* pre, int64_t R, int64_t seqlen, int64_t H, int64_t dh, const float* theta,
                bf16* q, bf16* k, cudaStream_t st) {
  if (R == 0) return;
  const dim3 grid((unsigned)R, (unsigned)std::min<int64_t>((H * dh + kThreads - 1) / kThreads, 64));
  qk_forward_kernel<<<grid, kThreads, 0, st>>>(pre, seqlen, H, dh, theta, q, k);
  TNL_CUDA_CHECK_LAUNCH();
}

void qk_backward(const bf16* pre, int64_t R, int64_t seqlen, int64_t H, int64_t dh, const float* theta,
                 const bf16* dq, const bf16* dk, bf16* dpre, float* partial, int64_t chunks,
                 float* dtheta, cudaStream_t st) {
  if (R == 0) return;
  const int64_t hid = H * dh;
  chunks = std::max<int64_t>(1, std::min(chunks, R));
  const int64_t rows_per_chunk = (R + chunks - 1) / chunks;
  chunks = (R + rows_per_chunk - 1) / rows_per_chunk;
  const dim3 grid((unsigned)((hid + kThreads - 1) / kThreads), (unsigned)chunks);
  qk_backward_kernel<<<grid, kThreads, 0, st>>>(pre, R, seqlen, H, dh, theta, dq, dk, dpre, partial,
                                                rows_per_chunk);
  TNL_CUDA_CHECK_LAUNCH();
  if (theta) {
    sum_partials_kernel<<<grid_for(hid), kThreads, 0, st>>>(partial, chunks, hid, dtheta);
    TNL_CUDA_CHECK_LAUNCH();
  }
}

void gate_forward(const bf16* o, const bf16* pre, int64_t R, int64_t hid, float* r2, bool write_rstd,
                  bf16* gated, cudaStream_t st) {
  if (R == 0) return;
  gate_forward_kernel<<<(unsigned)R, kThreads, 0, st>>>(o, pre, hid, r2, write_rstd, gated);
  TNL_CUDA_CHECK_LAUNCH();
}

void gate_backward(const float* dgated, const bf16* o, const float* r2, const bf16* pre, int64_t R,
                   int64_t hid, bf16* dpre, bf16* d_o, cudaStream_t st) {
  if (R == 0) return;
  gate_backward_kernel<<<(unsigned)R, kThreads, 0, st>>>(dgated, o, r2, pre, hid, dpre, d_o);
  TNL_CUDA_CHECK_LAUNCH();
}

void glu_forward(const bf16* ab, int64_t R, int64_t g, bf16* p, cudaStream_t st) {
  if (R == 0) return;
  glu_forward_kernel<<<grid_for(R * g), kThreads, 0, st>>>(ab, R, g, p);
  TNL_CUDA_CHECK_LAUNCH();
}

void glu_backward(const float* dp, const bf16* ab, int64_t R, int64_t g, bf16* dab, cudaStream_t st) {
  if (R == 0) return;
  glu_backward_kernel<<<grid_for(R * g), kThreads, 0, st>>>(dp, ab, R, g, dab);
  TNL_CUDA_CHECK_LAUNCH();
}

void cross_entropy(const float* logits, int64_t n, int64_t V, const int32_t* targets, float grad_scale,
                   float* nll, bf16* dlogits, cudaStream_t st) {
  if (n == 0) return;
  cross_entropy_kernel<<<(unsigned)n, kThreads, 0, st>>>(logits, V, targets, grad_scale, nll, dlogits);
  TNL_CUDA_CHECK_LAUNCH();
}

void sum_squares(const float* g, int64_t n, double* partial, cudaStream_t st) {
  if (n == 0) return;
  sum_squares_kernel<<<(unsigned)((n + kNormBlock - 1) / kNormBlock), kThreads, 0, st>>>(g, n, partial);
  TNL_CUDA_CHECK_LAUNCH();
}

void scale(float* x, int64_t n, float c, cudaStream_t st) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, st>>>(x, n, c);
  TNL_CUDA_CHECK_LAUNCH();
}

void adamw(float* p, const float* g, float* m, float* v, bf16* p16, int64_t begin, int64_t end,
           const AdamWArgs& a, cudaStream_t st) {
  if (end <= begin) return;
  adamw_kernel<<<grid_for(end - begin), kThreads, 0, st>>>(p, g, m, v, p16, begin, end, a);
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace tnl::train::cuda
