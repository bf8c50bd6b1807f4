// layers_cuda.cu: see layers_cuda.h.
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/layers_cuda.h"

namespace tnl::model::cuda {
namespace {

unsigned grid_for(int64_t n, int64_t cap = 65536) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, cap));
}


__global__ void convert_kernel(const void* src, int dtype, int64_t n, bf16* dst) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (dtype == 0) dst[i] = __float2bfloat16_rn(static_cast<const float*>(src)[i]);
    else if (dtype == 1) dst[i] = __float2bfloat16_rn(__half2float(static_cast<const __half*>(src)[i]));
    else dst[i] = static_cast<const bf16*>(src)[i];
  }
}

__device__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The CPU model's normal() of transnormer.cpp, element by element (double math, then fp32).
__global__ void fill_normal_kernel(bf16* dst, int64_t n, uint64_t key, double stddev) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const double u1 = ((double)(mix64(key ^ mix64(2 * i)) >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = (double)(mix64(key ^ mix64(2 * i + 1)) >> 11) * 0x1.0p-53;
    const float x = (float)(stddev * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    dst[i] = __float2bfloat16_rn(x);
  }
}

__global__ void embed_kernel(const bf16* embed, const int32_t* ids, int64_t d, float scale,
                             float* h, uint32_t* seen, int64_t words) {
  pdl_launch_dependents();  // the first GEMV may start loading its weights
  const int64_t r = blockIdx.x;
  const int32_t id = ids[r];
  if (seen && threadIdx.x == 0) atomicOr(seen + r * words + (id >> 5), 1u << (id & 31));
  const bf16* row = embed + (int64_t)id * d;  // (d)
  for (int64_t c = threadIdx.x; c < d; c += kThreads) h[r * d + c] = scale * __bfloat162float(row[c]);
}

__global__ void srms_kernel(const float* x, int64_t ld_x, const int32_t* rows, int64_t cols, bf16* y) {
  const int64_t i = blockIdx.x;
  const float* xr = x + (rows ? (int64_t)rows[i] : i) * ld_x;  // (cols)
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) ss += xr[c] * xr[c];
  const float inv = inv_rms(cuda_common::block_sum<kThreads>(ss), cols);
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) y[i * cols + c] = __float2bfloat16_rn(xr[c] * inv);
}

__global__ void qkv_prep_kernel(const float* qkvu, int64_t H, int64_t dh, const float* theta,
                                const int64_t* pos, bf16* q, bf16* k, bf16* v) {
  const int64_t r = blockIdx.x, hid = H * dh;
  const float* row = qkvu + r * 4 * hid;  // (4·hid) = [q | k | v | u]
  const float p = theta ? (float)pos[r] : 0.f;
  for (int64_t c = blockIdx.y * (int64_t)kThreads + threadIdx.x; c < hid; c += (int64_t)gridDim.y * kThreads) {
    const float qv = silu(row[c]), kv = silu(row[hid + c]);
    v[r * hid + c] = __float2bfloat16_rn(row[2 * hid + c]);
    if (theta) {
      const int64_t h = c / dh, cc = c % dh;
      const float angle = theta[c] * p;  // fp32, as the released model computes it
      const float cs = cosf(angle), sn = sinf(angle);
      bf16* qo = q + (r * H + h) * 2 * dh;  // (2·dh)
      bf16* ko = k + (r * H + h) * 2 * dh;
      qo[cc] = __float2bfloat16_rn(qv * cs);
      qo[dh + cc] = __float2bfloat16_rn(qv * sn);
      ko[cc] = __float2bfloat16_rn(kv * cs);
      ko[dh + cc] = __float2bfloat16_rn(kv * sn);
    } else {
      q[r * hid + c] = __float2bfloat16_rn(qv);
      k[r * hid + c] = __float2bfloat16_rn(kv);
    }
  }
}

__global__ void norm_gate_kernel(const bf16* o, const float* u, int64_t ld_u, int64_t hid, bf16* g) {
  const int64_t r = blockIdx.x;
  const bf16* orow = o + r * hid;  // (hid)
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < hid; c += kThreads) {
    const float x = __bfloat162float(orow[c]);
    ss += x * x;
  }
  const float inv = inv_rms(cuda_common::block_sum<kThreads>(ss), hid);
  for (int64_t c = threadIdx.x; c < hid; c += kThreads)
    g[r * hid + c] = __float2bfloat16_rn(__bfloat162float(orow[c]) * inv * u[r * ld_u + c]);
}

__global__ void glu_kernel(const float* ab, int64_t T, int64_t g, bf16* p) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * g;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / g, c = i % g;
    p[i] = __float2bfloat16_rn(ab[r * 2 * g + c] * ab[r * 2 * g + g + c]);
  }
}

__global__ void advance_kernel(int64_t* pos, int64_t B) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (b < B) pos[b] += 1;
}

// ---- decode attention split over blocks ----
constexpr int kAttnMaxItems = 8;  // 16-byte state pieces per thread

// Block (c, b·H + h): columns [c·4cv, (c+1)·4cv) of head (b, h), all D rows, so that no other
// block adds to its outputs. Thread t owns pieces i = t + u·kThreads: row i / cv, columns
// 4·(i % cv).. (the same column group t % cv for all its pieces). The state's loads go out
// before the wait on the input projection: the state was last written by the previous decode
// step, complete before this step's first kernel started.
__global__ void __launch_bounds__(kThreads) attn_split_kernel(const bf16* q, const bf16* k, const bf16* v,
                                                              const float* slopes, int H, int D, int E, int cv,
                                                              float* state, bf16* o) {
  __shared__ float qs[256], ks[256], vs[32];        // (D), (D), (4cv)
  __shared__ float4 red[kThreads / 32][8];          // (warps, cv) partial sums of q S
  const int64_t bh = blockIdx.y;
  const int h = (int)(bh % H), C = 4 * cv, e0 = blockIdx.x * C;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, j = threadIdx.x % cv;
  const int items = D * cv;
  float* S = state + bh * (int64_t)D * E;  // (D, E)
  float4 sv[kAttnMaxItems];
#pragma unroll
  for (int u = 0; u < kAttnMaxItems; ++u) {
    const int i = threadIdx.x + u * kThreads;
    if (i < items) sv[u] = __ldcs(reinterpret_cast<const float4*>(S + (int64_t)(i / cv) * E + e0 + 4 * j));
  }
  pdl_launch_dependents();
  pdl_wait();
  for (int i = threadIdx.x; i < D; i += kThreads) {
    qs[i] = __bfloat162float(q[bh * D + i]);
    ks[i] = __bfloat162float(k[bh * D + i]);
  }
  if (threadIdx.x < C) vs[threadIdx.x] = __bfloat162float(v[bh * E + e0 + threadIdx.x]);
  __syncthreads();
  const float lambda = expf(-slopes[h]);
  const float v0 = vs[4 * j], v1 = vs[4 * j + 1], v2 = vs[4 * j + 2], v3 = vs[4 * j + 3];
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int u = 0; u < kAttnMaxItems; ++u) {
    const int i = threadIdx.x + u * kThreads;
    if (i < items) {
      const int d = i / cv;
      float4 sn = sv[u];
      const float kd = ks[d], qd = qs[d];
      sn.x = fmaf(lambda, sn.x, kd * v0);
      sn.y = fmaf(lambda, sn.y, kd * v1);
      sn.z = fmaf(lambda, sn.z, kd * v2);
      sn.w = fmaf(lambda, sn.w, kd * v3);
      __stcs(reinterpret_cast<float4*>(S + (int64_t)d * E + e0 + 4 * j), sn);
      acc.x = fmaf(qd, sn.x, acc.x);
      acc.y = fmaf(qd, sn.y, acc.y);
      acc.z = fmaf(qd, sn.z, acc.z);
      acc.w = fmaf(qd, sn.w, acc.w);
    }
  }
  // Sum over the lanes of one column group, then over the warps (fixed order: deterministic).
  for (int off = cv; off < 32; off <<= 1) {
    acc.x += __shfl_xor_sync(0xffffffffu, acc.x, off);
    acc.y += __shfl_xor_sync(0xffffffffu, acc.y, off);
    acc.z += __shfl_xor_sync(0xffffffffu, acc.z, off);
    acc.w += __shfl_xor_sync(0xffffffffu, acc.w, off);
  }
  if (lane < cv) red[warp][lane] = acc;
  __syncthreads();
  if (threadIdx.x < C) {
    float sum = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) sum += reinterpret_cast<const float*>(&red[w][threadIdx.x / 4])[threadIdx.x % 4];
    o[bh * E + e0 + threadIdx.x] = __float2bfloat16_rn(sum);
  }
}

}  // namespace

bool attn_split_supported(int64_t D, int64_t E) {
  return E % 4 == 0 && E >= 4 && E <= 256 && D >= 1 && D <= 256;
}

bool attn_split_pays(int64_t B, int64_t H) { return B * H < 2 * (int64_t)device_info().sms; }

int attn_split_groups(int64_t B, int64_t H, int64_t D, int64_t E) {
  int cv = E % 8 == 0 ? 2 : 1;  // two 16-byte pieces: whole 32-byte sectors of each row
  const int64_t want = 2 * (int64_t)device_info().sms;
  while (2 * cv <= 8 && (E / 4) % (2 * cv) == 0 && D * 2 * cv <= (int64_t)kAttnMaxItems * kThreads &&
         E / (8 * cv) * B * H >= want)
    cv *= 2;
  return cv;
}

void attn_decode_split(const bf16* q, const bf16* k, const bf16* v, const float* slopes, int64_t B,
                       int64_t H, int64_t D, int64_t E, float* state, bf16* o, bool pdl, cudaStream_t st) {
  TNL_CHECK(attn_split_supported(D, E) && B * H <= 65535 && reinterpret_cast<uintptr_t>(state) % 16 == 0,
            "tnl::model::cuda::attn_decode_split: unsupported shape D ", D, " E ", E, " (or unaligned state)");
  const int cv = attn_split_groups(B, H, D, E);
  launch_pdl(attn_split_kernel, dim3((unsigned)(E / (4 * cv)), (unsigned)(B * H)), dim3(kThreads), 0, st, pdl, q, k,
             v, slopes, (int)H, (int)D, (int)E, cv, state, o);
}

void convert_to_bf16(const void* src, int src_dtype, int64_t n, bf16* dst, cudaStream_t st) {
  if (n == 0) return;
  convert_kernel<<<grid_for(n), kThreads, 0, st>>>(src, src_dtype, n, dst);
  TNL_CUDA_CHECK_LAUNCH();
}

void fill_normal_bf16(bf16* dst, int64_t n, uint64_t key, double std, cudaStream_t st) {
  if (n == 0) return;
  fill_normal_kernel<<<grid_for(n), kThreads, 0, st>>>(dst, n, key, std);
  TNL_CUDA_CHECK_LAUNCH();
}

void embed_rows(const bf16* embed, const int32_t* ids, int64_t T, int64_t d, float scale, float* h,
                uint32_t* seen, int64_t words, cudaStream_t st) {
  if (T == 0) return;
  embed_kernel<<<(unsigned)T, kThreads, 0, st>>>(embed, ids, d, scale, h, seen, words);
  TNL_CUDA_CHECK_LAUNCH();
}

void srms_to_bf16(const float* x, int64_t ld_x, const int32_t* rows, int64_t R, int64_t cols,
                  bf16* y, cudaStream_t st) {
  if (R == 0) return;
  srms_kernel<<<(unsigned)R, kThreads, 0, st>>>(x, ld_x, rows, cols, y);
  TNL_CUDA_CHECK_LAUNCH();
}

void qkv_prep(const float* qkvu, int64_t T, int64_t H, int64_t dh, const float* theta,
              const int64_t* pos, bf16* q, bf16* k, bf16* v, cudaStream_t st) {
  if (T == 0) return;
  const dim3 grid((unsigned)T, (unsigned)std::min<int64_t>((H * dh + kThreads - 1) / kThreads, 64));
  qkv_prep_kernel<<<grid, kThreads, 0, st>>>(qkvu, H, dh, theta, pos, q, k, v);
  TNL_CUDA_CHECK_LAUNCH();
}

void norm_gate(const bf16* o, const float* u, int64_t ld_u, int64_t T, int64_t hid, bf16* g,
               cudaStream_t st) {
  if (T == 0) return;
  norm_gate_kernel<<<(unsigned)T, kThreads, 0, st>>>(o, u, ld_u, hid, g);
  TNL_CUDA_CHECK_LAUNCH();
}

void glu_product(const float* ab, int64_t T, int64_t g, bf16* p, cudaStream_t st) {
  if (T == 0) return;
  glu_kernel<<<grid_for(T * g), kThreads, 0, st>>>(ab, T, g, p);
  TNL_CUDA_CHECK_LAUNCH();
}

void advance_positions(int64_t* pos, int64_t B, cudaStream_t st) {
  advance_kernel<<<grid_for(B), kThreads, 0, st>>>(pos, B);
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace tnl::model::cuda
