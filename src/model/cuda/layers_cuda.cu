// layers_cuda.cu: see layers_cuda.h.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/cuda_common.cuh"
#include "model/cuda/decode_device.cuh"
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
                             float* h) {
  const int64_t r = blockIdx.x;
  const bf16* row = embed + (int64_t)ids[r] * d;  // (d)
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

__global__ void argmax_kernel(const float* logits, int64_t V, int32_t* next) {
  const float* row = logits + blockIdx.x * V;
  float best = -INFINITY;
  int64_t arg = 0;
  for (int64_t i = threadIdx.x; i < V; i += kThreads)
    if (row[i] > best) best = row[i], arg = i;
  __shared__ float bv[kThreads];
  __shared__ int64_t bi[kThreads];
  bv[threadIdx.x] = best;
  bi[threadIdx.x] = arg;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float ov = bv[threadIdx.x + s];
      const int64_t oi = bi[threadIdx.x + s];
      if (ov > bv[threadIdx.x] || (ov == bv[threadIdx.x] && oi < bi[threadIdx.x])) {
        bv[threadIdx.x] = ov;
        bi[threadIdx.x] = oi;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) next[blockIdx.x] = (int32_t)bi[0];
}

__global__ void advance_kernel(int64_t* pos, int64_t B) {
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (b < B) pos[b] += 1;
}

// ---- decode attention split over blocks ----

// Block (c, b·H + h) of attn_body's blocks (decode_device.cuh). The state's loads go out before
// the wait on the input projection: the state was last written by the previous decode step,
// complete before this step's first kernel started.
__global__ void __launch_bounds__(kThreads) attn_split_kernel(const AttnWork a) {
  AttnLoads l;
  const int block = blockIdx.y * gridDim.x + blockIdx.x;
  attn_prologue(a, block, l);
  pdl_launch_dependents();
  pdl_wait();
  attn_body(a, block, l);
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
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)(E / (4 * cv)), (unsigned)(B * H));
  cfg.blockDim = dim3(kThreads);
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl && device_info().pdl ? 1 : 0;
  const AttnWork a{q, k, v, slopes, (int)H, (int)D, (int)E, cv, B * H, state, o};
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, attn_split_kernel, a));
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
                cudaStream_t st) {
  if (T == 0) return;
  embed_kernel<<<(unsigned)T, kThreads, 0, st>>>(embed, ids, d, scale, h);
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

void argmax_rows(const float* logits, int64_t B, int64_t V, int32_t* next, cudaStream_t st) {
  argmax_kernel<<<(unsigned)B, kThreads, 0, st>>>(logits, V, next);
  TNL_CUDA_CHECK_LAUNCH();
}

void advance_positions(int64_t* pos, int64_t B, cudaStream_t st) {
  advance_kernel<<<grid_for(B), kThreads, 0, st>>>(pos, B);
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace tnl::model::cuda
