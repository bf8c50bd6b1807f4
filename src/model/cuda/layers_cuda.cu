// layers_cuda.cu: see layers_cuda.h.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/layers_cuda.h"

namespace tnl::model::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n, int64_t cap = 65536) {
  return (unsigned)std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, cap));
}

// Sum over the block (kThreads threads); every thread gets the total.
__device__ float block_sum(float v) {
  __shared__ float part[kThreads / 32];
  __shared__ float total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float s = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) s += part[w];
    total = s;
  }
  __syncthreads();
  const float t = total;
  __syncthreads();  // part/total may be reused by the next call
  return t;
}

__device__ __forceinline__ float inv_rms(float sum_sq, int64_t cols) {
  return 1.0f / sqrtf(sum_sq / (float)cols + 1e-6f);
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
  const float inv = inv_rms(block_sum(ss), cols);
  for (int64_t c = threadIdx.x; c < cols; c += kThreads) y[i * cols + c] = __float2bfloat16_rn(xr[c] * inv);
}

__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

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
  const float inv = inv_rms(block_sum(ss), hid);
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

// ---- GEMV ----
constexpr int kGemvWarps = kThreads / 32;
constexpr int kGemvGroup = 8;                 // 16-byte loads per lane in flight per step
constexpr int kGemvStep = kGemvGroup * 256;   // elements of a row per warp step
constexpr size_t kGemvMaxSmem = 96 * 1024;
constexpr int kGemvBlocksPerSm = 2;           // 16 warps per SM, 4-8 KB of loads in flight each

// Programmatic dependent launch (sm_90): a GEMV launched with the attribute starts while the
// kernel before it finishes, issues its first weight loads (weights never depend on earlier
// kernels), then waits for that kernel's completion before it reads its input or writes.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// A row of `bytes` bytes (a multiple of 16, 16-byte aligned) into L2, by the lanes of a warp:
// one bulk prefetch on sm_90, one 128-byte line per lane per request before.
__device__ __forceinline__ void prefetch_row_l2(const void* row, int bytes, int lane) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (lane == 0)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(row), "r"(bytes) : "memory");
#else
  for (int off = lane * 128; off < bytes; off += 32 * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(static_cast<const char*>(row) + off));
#endif
}

constexpr int kFormUnroll = 2;  // input loads per thread in flight (K = 2048 in one round)

// Features 4g..4g+3 of input row m before the norm / gate / GLU product: a (rms, glu: the
// first half) or o (rms_gate).
__device__ __forceinline__ float4 load_input4(const GemvArgs& in, int m, int K, int g) {
  if (in.mode == GemvInput::rms_gate) {
    const uint2 raw = *reinterpret_cast<const uint2*>(in.o + (int64_t)m * K + 4 * g);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    return make_float4(lo.x, lo.y, hi.x, hi.y);
  }
  return *reinterpret_cast<const float4*>(in.a + m * in.lda + 4 * g);
}

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  const __nv_bfloat162* wp = reinterpret_cast<const __nv_bfloat162*>(&w);
  const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&x);
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float2 a = __bfloat1622float2(wp[j]), b = __bfloat1622float2(xp[j]);
    s = fmaf(a.x, b.x, s);
    s = fmaf(a.y, b.y, s);
  }
  return s;
}

// The qkv_prep epilogue for output n of row m (see GemvArgs): same arithmetic as qkv_prep_kernel.
__device__ __forceinline__ void store_qkvu(const GemvArgs& in, int m, int n, float s, float* y_row) {
  const int hid = in.heads * in.dh, sec = n / hid, c = n - sec * hid;
  if (sec == 3) {
    y_row[n] = s;  // u, read by the gate
  } else if (sec == 2) {
    in.v[(int64_t)m * hid + c] = __float2bfloat16_rn(s);
  } else {
    const float x = silu(s);
    bf16* dst = sec == 0 ? in.q : in.k;
    if (in.theta) {
      const int h = c / in.dh, cc = c - h * in.dh;
      const float angle = in.theta[c] * (float)in.pos[m];
      bf16* head = dst + ((int64_t)m * in.heads + h) * 2 * in.dh;  // (2·dh)
      head[cc] = __float2bfloat16_rn(x * cosf(angle));
      head[in.dh + cc] = __float2bfloat16_rn(x * sinf(angle));
    } else {
      dst[(int64_t)m * hid + c] = __float2bfloat16_rn(x);
    }
  }
}

// One warp per output row n (rows strided over the grid). The input rows (M, K) are formed
// once per block in shared memory as bf16; the warp's first rows are prefetched into L2 before
// that (and before waiting on the previous kernel), and each step's loads go out before the
// previous step's arithmetic. At M = 1, registers are capped for kGemvBlocksPerSm + 1 blocks
// per multiprocessor, so that a block of the next GEMV fits beside this one's two (programmatic
// dependent launch); more rows need more registers.
template <int M>
__global__ void __launch_bounds__(kThreads, M == 1 ? kGemvBlocksPerSm + 1 : kGemvBlocksPerSm)
    gemv_kernel(const GemvArgs in, int K, const bf16* W, int N, float* y, int64_t ldy, bool accumulate) {
  extern __shared__ __align__(16) unsigned char gemv_smem[];
  bf16* xs = reinterpret_cast<bf16*>(gemv_smem);  // (M, K)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int stride = gridDim.x * kGemvWarps;
  int n = blockIdx.x * kGemvWarps + warp;
  uint4 wv[kGemvGroup];
  auto load = [&](int row, int k0) {
#pragma unroll
    for (int u = 0; u < kGemvGroup; ++u) {
      const int k = k0 + u * 256 + lane * 8;
      if (k < K) wv[u] = __ldcs(reinterpret_cast<const uint4*>(W + (int64_t)row * K + k));
    }
  };
  // This warp's first rows into L2 before the wait (no registers held: the input is formed
  // meanwhile); the main loop's loads then find them there.
  for (int r = 0; r < in.prefetch_rows; ++r) {
    const int row = n + r * stride;
    if (row >= N) break;
    prefetch_row_l2(W + (int64_t)row * K, 2 * K, lane);
  }
  pdl_launch_dependents();  // the next GEMV may start loading its weights
  pdl_wait();               // the previous kernel's outputs (our input, y) are complete

  // The input rows, 4 features per thread per load, each pass's loads issued together.
  const int K4 = K / 4;
  for (int m = 0; m < M; ++m) {
    float inv = 1.f;
    if (in.mode != GemvInput::glu) {
      float ss = 0.f;
      for (int g0 = threadIdx.x; g0 < K4; g0 += kThreads * kFormUnroll) {
        float4 x[kFormUnroll];
#pragma unroll
        for (int u = 0; u < kFormUnroll; ++u)
          if (g0 + u * kThreads < K4) x[u] = load_input4(in, m, K, g0 + u * kThreads);
#pragma unroll
        for (int u = 0; u < kFormUnroll; ++u)
          if (g0 + u * kThreads < K4) ss += x[u].x * x[u].x + x[u].y * x[u].y + x[u].z * x[u].z + x[u].w * x[u].w;
      }
      inv = inv_rms(block_sum(ss), K);
    }
    for (int g0 = threadIdx.x; g0 < K4; g0 += kThreads * kFormUnroll) {
      float4 x[kFormUnroll], u4[kFormUnroll];
#pragma unroll
      for (int u = 0; u < kFormUnroll; ++u) {
        const int g = g0 + u * kThreads;
        if (g < K4) {
          x[u] = load_input4(in, m, K, g);
          if (in.mode == GemvInput::rms_gate) u4[u] = *reinterpret_cast<const float4*>(in.u + m * in.ldu + 4 * g);
          else if (in.mode == GemvInput::glu) u4[u] = *reinterpret_cast<const float4*>(in.a + m * in.lda + K + 4 * g);
        }
      }
#pragma unroll
      for (int u = 0; u < kFormUnroll; ++u) {
        const int g = g0 + u * kThreads;
        if (g >= K4) continue;
        float4 r;
        if (in.mode == GemvInput::rms) {
          r = make_float4(x[u].x * inv, x[u].y * inv, x[u].z * inv, x[u].w * inv);
        } else if (in.mode == GemvInput::rms_gate) {
          r = make_float4(x[u].x * inv * u4[u].x, x[u].y * inv * u4[u].y, x[u].z * inv * u4[u].z,
                          x[u].w * inv * u4[u].w);
        } else {
          r = make_float4(x[u].x * u4[u].x, x[u].y * u4[u].y, x[u].z * u4[u].z, x[u].w * u4[u].w);
        }
        __nv_bfloat162 lo = __floats2bfloat162_rn(r.x, r.y), hi = __floats2bfloat162_rn(r.z, r.w);
        uint2 packed;
        packed.x = *reinterpret_cast<unsigned*>(&lo);
        packed.y = *reinterpret_cast<unsigned*>(&hi);
        *reinterpret_cast<uint2*>(xs + (int64_t)m * K + 4 * g) = packed;
      }
    }
  }
  __syncthreads();

  if (n < N) load(n, 0);
  for (; n < N; n += stride) {
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; ++m) acc[m] = 0.f;
    for (int k0 = 0; k0 < K; k0 += kGemvStep) {
      uint4 cur[kGemvGroup];
#pragma unroll
      for (int u = 0; u < kGemvGroup; ++u) cur[u] = wv[u];
      if (k0 + kGemvStep < K) load(n, k0 + kGemvStep);  // next step of this row
      else if (n + stride < N) load(n + stride, 0);     // or the first of the next row
#pragma unroll
      for (int u = 0; u < kGemvGroup; ++u) {
        const int k = k0 + u * 256 + lane * 8;
        if (k < K) {
#pragma unroll
          for (int m = 0; m < M; ++m)
            acc[m] += dot8(cur[u], *reinterpret_cast<const uint4*>(xs + (int64_t)m * K + k));
        }
      }
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float s = acc[m];
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (lane == 0) {
        if (in.q) {
          store_qkvu(in, m, n, s, y + m * ldy);
        } else {
          float* dst = y + m * ldy + n;
          *dst = accumulate ? *dst + s : s;
        }
      }
    }
  }
}

template <int M>
void launch_gemv(const GemvArgs& in, int64_t K, const bf16* W, int64_t N, float* y, int64_t ldy,
                 bool accumulate, cudaStream_t st) {
  static int sms = 0;        // multiprocessors
  static bool pdl = false;   // sm_90 or later, and not turned off by TNL_NO_PDL=1
  const size_t smem = sizeof(bf16) * M * (size_t)K;
  if (sms == 0) {
    TNL_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<M>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)kGemvMaxSmem));
    int dev = 0, major = 0;
    TNL_CUDA_CHECK(cudaGetDevice(&dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const char* off = std::getenv("TNL_NO_PDL");
    pdl = major >= 9 && !(off && off[0] == '1');
  }
  // A fixed grid of kGemvBlocksPerSm blocks per multiprocessor: rows per warp stay balanced
  // (one round more at most) and each block forms its input rows once.
  const int64_t want = (N + kGemvWarps - 1) / kGemvWarps;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)std::max<int64_t>(1, std::min<int64_t>(want, (int64_t)sms * kGemvBlocksPerSm)));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, gemv_kernel<M>, in, (int)K, W, (int)N, y, ldy, accumulate));
}


// ---- decode attention split over blocks ----
constexpr int kSplitMaxRowsPerThread = 8;

// Block (s, b·H + h): rows [s·rps, (s+1)·rps) of head (b, h); thread (rg, cg) owns columns
// 4cg..4cg+3 of rows s·rps + rg + i·nrg. The state's loads go out before the wait on the
// input projection (the state was last written by the previous decode step, complete before
// this step's first kernel started).
__global__ void __launch_bounds__(kThreads) attn_split_kernel(const bf16* q, const bf16* k, const bf16* v,
                                                              const float* slopes, int H, int D, int E,
                                                              int rps, int splits, float* state,
                                                              float* part, int32_t* counters, bf16* o) {
  __shared__ float qs[256], ks[256], vs[256];  // rows of this block (rps), (rps), (E)
  __shared__ float red[kThreads * 4];          // (row groups, E) partial sums of q S
  __shared__ bool last;
  const int split = blockIdx.x;
  const int64_t bh = blockIdx.y;
  const int h = (int)(bh % H);
  const int ncg = E / 4, nrg = kThreads / ncg;
  const int cg = threadIdx.x % ncg, rg = threadIdx.x / ncg, e = 4 * cg;
  const bool active = rg < nrg;
  const int d0 = split * rps, rows = min(rps, D - d0), rpt = (rps + nrg - 1) / nrg;
  float* S = state + bh * (int64_t)D * E;  // (D, E)
  float4 sv[kSplitMaxRowsPerThread];
#pragma unroll
  for (int i = 0; i < kSplitMaxRowsPerThread; ++i) {
    const int r = rg + i * nrg;
    if (active && i < rpt && r < rows) sv[i] = __ldcs(reinterpret_cast<const float4*>(S + (int64_t)(d0 + r) * E + e));
  }
  pdl_launch_dependents();
  pdl_wait();
  for (int i = threadIdx.x; i < rows; i += kThreads) {
    qs[i] = __bfloat162float(q[bh * D + d0 + i]);
    ks[i] = __bfloat162float(k[bh * D + d0 + i]);
  }
  for (int i = threadIdx.x; i < E; i += kThreads) vs[i] = __bfloat162float(v[bh * E + i]);
  __syncthreads();
  const float lambda = expf(-slopes[h]);
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int i = 0; i < kSplitMaxRowsPerThread; ++i) {
    const int r = rg + i * nrg;
    if (active && i < rpt && r < rows) {
      float4 sn = sv[i];
      const float kd = ks[r], qd = qs[r];
      sn.x = fmaf(lambda, sn.x, kd * vs[e + 0]);
      sn.y = fmaf(lambda, sn.y, kd * vs[e + 1]);
      sn.z = fmaf(lambda, sn.z, kd * vs[e + 2]);
      sn.w = fmaf(lambda, sn.w, kd * vs[e + 3]);
      __stcs(reinterpret_cast<float4*>(S + (int64_t)(d0 + r) * E + e), sn);
      acc.x = fmaf(qd, sn.x, acc.x);
      acc.y = fmaf(qd, sn.y, acc.y);
      acc.z = fmaf(qd, sn.z, acc.z);
      acc.w = fmaf(qd, sn.w, acc.w);
    }
  }
  if (active) *reinterpret_cast<float4*>(red + rg * E + e) = acc;
  __syncthreads();
  float* mine = part + (bh * splits + split) * (int64_t)E;  // (E)
  for (int col = threadIdx.x; col < E; col += kThreads) {
    float sum = 0.f;
    for (int r = 0; r < nrg; ++r) sum += red[r * E + col];
    if (splits == 1) o[bh * E + col] = __float2bfloat16_rn(sum);
    else mine[col] = sum;
  }
  if (splits == 1) return;
  __threadfence();  // this block's part is visible before its count
  __syncthreads();
  if (threadIdx.x == 0) last = atomicAdd(&counters[bh], 1) == splits - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float* all = part + bh * splits * (int64_t)E;  // (splits, E)
  for (int col = threadIdx.x; col < E; col += kThreads) {
    float sum = 0.f;
    for (int j = 0; j < splits; ++j) sum += __ldcg(all + (int64_t)j * E + col);
    o[bh * E + col] = __float2bfloat16_rn(sum);
  }
  if (threadIdx.x == 0) counters[bh] = 0;  // ready for the next call
}

struct DeviceInfo {
  int sms = 0;
  bool pdl = false;  // sm_90 or later, and not turned off by TNL_NO_PDL=1
};
const DeviceInfo& device_info() {
  static DeviceInfo info = [] {
    DeviceInfo i;
    int dev = 0, major = 0;
    TNL_CUDA_CHECK(cudaGetDevice(&dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&i.sms, cudaDevAttrMultiProcessorCount, dev));
    const char* off = std::getenv("TNL_NO_PDL");
    i.pdl = major >= 9 && !(off && off[0] == '1');
    return i;
  }();
  return info;
}

}  // namespace

bool attn_split_supported(int64_t D, int64_t E) {
  return E % 4 == 0 && E >= 4 && E <= 256 && D >= 1 && D <= 256;
}

int attn_split_count(int64_t B, int64_t H, int64_t D, int64_t E) {
  const int64_t nrg = kThreads / (E / 4);
  const int64_t groups = (D + nrg - 1) / nrg;  // row groups of nrg rows
  const int64_t want = (2 * (int64_t)device_info().sms + B * H - 1) / (B * H);
  int64_t splits = std::max<int64_t>(1, std::min(groups, want));
  splits = std::max(splits, (groups + kSplitMaxRowsPerThread - 1) / kSplitMaxRowsPerThread);
  const int64_t rps = (groups + splits - 1) / splits * nrg;
  return (int)((D + rps - 1) / rps);
}

void attn_decode_split(const bf16* q, const bf16* k, const bf16* v, const float* slopes, int64_t B,
                       int64_t H, int64_t D, int64_t E, int splits, float* state, float* part,
                       int32_t* counters, bf16* o, cudaStream_t st) {
  TNL_CHECK(attn_split_supported(D, E) && splits >= 1 && B * H <= 65535,
            "tnl::model::cuda::attn_decode_split: unsupported shape D ", D, " E ", E, " splits ", splits);
  const int64_t nrg = kThreads / (E / 4);
  const int64_t rps = ((D + splits - 1) / splits + nrg - 1) / nrg * nrg;
  TNL_CHECK(rps <= kSplitMaxRowsPerThread * nrg,
            "tnl::model::cuda::attn_decode_split: ", splits, " splits of D ", D, " is too few (use attn_split_count)");
  splits = (int)((D + rps - 1) / rps);  // blocks with rows (at most the given count)
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)splits, (unsigned)(B * H));
  cfg.blockDim = dim3(kThreads);
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = device_info().pdl ? 1 : 0;
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, attn_split_kernel, q, k, v, slopes, (int)H, (int)D, (int)E, (int)rps,
                                    splits, state, part, counters, o));
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

bool gemv_supported(int64_t M, int64_t K) {
  return M >= 1 && M <= kGemvMaxRows && K % 8 == 0 && K <= INT32_MAX &&
         sizeof(bf16) * (size_t)(M * K) <= kGemvMaxSmem;
}

void gemv(const GemvArgs& in, int64_t M, int64_t K, const bf16* W, int64_t N, float* y,
          int64_t ldy, bool accumulate, cudaStream_t st) {
  const bool aligned = in.mode == GemvInput::rms_gate
                           ? reinterpret_cast<uintptr_t>(in.o) % 8 == 0 && reinterpret_cast<uintptr_t>(in.u) % 16 == 0 && in.ldu % 4 == 0
                           : reinterpret_cast<uintptr_t>(in.a) % 16 == 0 && in.lda % 4 == 0;
  TNL_CHECK(aligned && gemv_supported(M, K), "tnl::model::cuda::gemv: unsupported input (M ", M, ", K ", K,
            "; rows 16-byte aligned, strides multiples of 4 expected)");
  switch (M) {
    case 1: return launch_gemv<1>(in, K, W, N, y, ldy, accumulate, st);
    case 2: return launch_gemv<2>(in, K, W, N, y, ldy, accumulate, st);
    case 3: return launch_gemv<3>(in, K, W, N, y, ldy, accumulate, st);
    case 4: return launch_gemv<4>(in, K, W, N, y, ldy, accumulate, st);
    default: throw Error("tnl::model::cuda::gemv: M outside 1..4");
  }
}

}  // namespace tnl::model::cuda
