// gemv_cuda.cu: the decode GEMV of layers_cuda.h, y (M, N) (+)= in (M, K) · Wᵀ for M <= 4 rows,
// with the input row formed in the kernel (SRMS, gate, GLU product) and optional epilogues
// (qkv_prep, GLU product): a warp per work item (a row of W, or a pair with the GLU epilogue),
// 16-byte loads into registers, the next step's loads issued before this step's arithmetic,
// the first ones before waiting on the kernel before (programmatic dependent launch).
#include <algorithm>
#include <cstdlib>

#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/layers_cuda.h"

namespace tnl::model::cuda {
namespace {

constexpr int kGemvWarps = kThreads / 32;
constexpr int kGemvGroup = 8;                // registers kernel: 16-byte loads per lane in flight per step
constexpr int kGemvStep = kGemvGroup * 256;  // elements of a row per warp step
constexpr size_t kGemvMaxSmem = 96 * 1024;   // the input rows (M, K) bf16
constexpr int kGemvBlocksPerSm = 2;          // registers kernel: 16 warps per SM, 4-8 KB of loads in flight each
constexpr int kFormUnroll = 2;               // input loads per thread in flight (K = 2048 in one round)

// ---- forming the input row ----

// Features 4g..4g+3 of input row m before the norm / gate / GLU product: a (rms, glu: the
// first half) or o (rms_gate, plain).
__device__ __forceinline__ float4 load_input4(const GemvArgs& in, int m, int K, int g) {
  if (in.mode == GemvInput::rms_gate || in.mode == GemvInput::plain) {
    const uint2 raw = *reinterpret_cast<const uint2*>(in.o + (int64_t)m * K + 4 * g);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    return make_float4(lo.x, lo.y, hi.x, hi.y);
  }
  return *reinterpret_cast<const float4*>(in.a + m * in.lda + 4 * g);
}

// The input rows into xs (M, K) bf16, 4 features per thread per load, each pass's loads
// issued together: the same values as the scalar form.
template <int M>
__device__ __forceinline__ void form_input_vec(const GemvArgs& in, int K, bf16* xs) {
  const int K4 = K / 4;
  for (int m = 0; m < M; ++m) {
    float inv = 1.f;
    if (in.mode == GemvInput::rms || in.mode == GemvInput::rms_gate) {
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
      inv = inv_rms(cuda_common::block_sum<kThreads>(ss), K);
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
        } else if (in.mode == GemvInput::glu) {
          r = make_float4(x[u].x * u4[u].x, x[u].y * u4[u].y, x[u].z * u4[u].z, x[u].w * u4[u].w);
        } else {
          r = x[u];  // plain: bf16 already, rounds to itself
        }
        __nv_bfloat162 lo = __floats2bfloat162_rn(r.x, r.y), hi = __floats2bfloat162_rn(r.z, r.w);
        uint2 packed;
        packed.x = *reinterpret_cast<unsigned*>(&lo);
        packed.y = *reinterpret_cast<unsigned*>(&hi);
        *reinterpret_cast<uint2*>(xs + (int64_t)m * K + 4 * g) = packed;
      }
    }
  }
}

// The same, one feature per load (GemvArgs::vec_input off).
template <int M>
__device__ __forceinline__ void form_input_scalar(const GemvArgs& in, int K, bf16* xs) {
  __shared__ float scale[M];
  if (in.mode == GemvInput::rms || in.mode == GemvInput::rms_gate) {
    for (int m = 0; m < M; ++m) {
      float ss = 0.f;
      for (int k = threadIdx.x; k < K; k += kThreads) {
        const float x = in.mode == GemvInput::rms ? in.a[m * in.lda + k] : __bfloat162float(in.o[(int64_t)m * K + k]);
        ss += x * x;
      }
      ss = cuda_common::block_sum<kThreads>(ss);
      if (threadIdx.x == 0) scale[m] = inv_rms(ss, K);
    }
    __syncthreads();
  }
  for (int m = 0; m < M; ++m)
    for (int k = threadIdx.x; k < K; k += kThreads) {
      float x;
      if (in.mode == GemvInput::rms) x = in.a[m * in.lda + k] * scale[m];
      else if (in.mode == GemvInput::rms_gate) x = __bfloat162float(in.o[(int64_t)m * K + k]) * scale[m] * in.u[m * in.ldu + k];
      else if (in.mode == GemvInput::glu) x = in.a[m * in.lda + k] * in.a[m * in.lda + K + k];
      else x = __bfloat162float(in.o[(int64_t)m * K + k]);
      xs[(int64_t)m * K + k] = __float2bfloat16_rn(x);
    }
}

// Forms xs (M, K) and makes it visible to the whole block.
template <int M, bool VEC>
__device__ __forceinline__ void form_input(const GemvArgs& in, int K, bf16* xs) {
  if constexpr (VEC) form_input_vec<M>(in, K, xs);
  else form_input_scalar<M>(in, K, xs);
  __syncthreads();
}

// ---- dot products and outputs ----

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

__device__ __forceinline__ float warp_sum(float s) {
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
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

// Output of work item n for input row m: s = its dot product (with glu_out: a = the first
// row's, s = the second's).
__device__ __forceinline__ void store_output(const GemvArgs& in, int m, int n, int N, float a, float s, float* y,
                                             int64_t ldy, bool accumulate) {
  if (in.glu_out) {
    in.glu_out[(int64_t)m * N + n] = __float2bfloat16_rn(a * s);  // a·b, as glu_product
  } else if (in.q) {
    store_qkvu(in, m, n, s, y + m * ldy);
  } else {
    float* dst = y + m * ldy + n;
    *dst = accumulate ? *dst + s : s;
  }
}

// ---- the kernel ----

// One warp per work item n (rows n, and N + n with glu_out; items strided over the grid). The
// weight loads of the warp's first step are issued before the input is formed (and before
// waiting on the previous kernel), and each step's loads before the previous step's arithmetic.
template <int M, bool VEC>
__global__ void __launch_bounds__(kThreads, kGemvBlocksPerSm) gemv_kernel(const GemvArgs in, int K, const bf16* W,
                                                                          int N, float* y, int64_t ldy,
                                                                          bool accumulate) {
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
  const int P = in.glu_out ? 2 : 1;
  if (n < N) load(n, 0);
  pdl_launch_dependents();  // the next GEMV may start loading its weights
  pdl_wait();               // the previous kernel's outputs (our input, y) are complete
  form_input<M, VEC>(in, K, xs);

  for (; n < N; n += stride) {
    float first[M];
#pragma unroll
    for (int m = 0; m < M; ++m) first[m] = 0.f;
    for (int p = 0; p < P; ++p) {
      const int row = n + p * N;
      float acc[M];
#pragma unroll
      for (int m = 0; m < M; ++m) acc[m] = 0.f;
      for (int k0 = 0; k0 < K; k0 += kGemvStep) {
        uint4 cur[kGemvGroup];
#pragma unroll
        for (int u = 0; u < kGemvGroup; ++u) cur[u] = wv[u];
        if (k0 + kGemvStep < K) load(row, k0 + kGemvStep);  // next step of this row
        else if (p + 1 < P) load(row + N, 0);               // or the first of b's row
        else if (n + stride < N) load(n + stride, 0);       // or the first of the next item
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
        const float s = warp_sum(acc[m]);
        if (p + 1 < P) first[m] = s;
        else if (lane == 0) store_output(in, m, n, N, first[m], s, y, ldy, accumulate);
      }
    }
  }
}

// ---- launches ----

cudaLaunchAttribute pdl_attribute() {
  cudaLaunchAttribute a;
  a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a.val.programmaticStreamSerializationAllowed = 1;
  return a;
}

template <int M, bool VEC>
void launch_gemv(const GemvArgs& in, int64_t K, const bf16* W, int64_t N, float* y, int64_t ldy, bool accumulate,
                 cudaStream_t st) {
  static bool ready = false;
  if (!ready) {
    TNL_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<M, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kGemvMaxSmem));
    ready = true;
  }
  cudaLaunchAttribute attr[1] = {pdl_attribute()};
  cudaLaunchConfig_t cfg = {};
  cfg.blockDim = dim3(kThreads);
  cfg.stream = st;
  cfg.attrs = attr;
  cfg.numAttrs = device_info().pdl ? 1 : 0;
  // A fixed grid of kGemvBlocksPerSm blocks per multiprocessor: items per warp stay balanced
  // (one round more at most) and each block forms its input rows once.
  const int64_t want = (N + kGemvWarps - 1) / kGemvWarps;
  cfg.gridDim = dim3((unsigned)std::max<int64_t>(1, std::min<int64_t>(want, (int64_t)device_info().sms * kGemvBlocksPerSm)));
  cfg.dynamicSmemBytes = sizeof(bf16) * M * (size_t)K;
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, gemv_kernel<M, VEC>, in, (int)K, W, (int)N, y, ldy, accumulate));
}

}  // namespace

bool gemv_supported(int64_t M, int64_t K) {
  return M >= 1 && M <= kGemvMaxRows && K % 8 == 0 && K <= INT32_MAX &&
         sizeof(bf16) * (size_t)(M * K) <= kGemvMaxSmem;
}

void gemv(const GemvArgs& in, int64_t M, int64_t K, const bf16* W, int64_t N, float* y,
          int64_t ldy, bool accumulate, cudaStream_t st) {
  const bool aligned = in.mode == GemvInput::plain ? reinterpret_cast<uintptr_t>(in.o) % 8 == 0
                       : in.mode == GemvInput::rms_gate
                           ? reinterpret_cast<uintptr_t>(in.o) % 8 == 0 && reinterpret_cast<uintptr_t>(in.u) % 16 == 0 && in.ldu % 4 == 0
                           : reinterpret_cast<uintptr_t>(in.a) % 16 == 0 && in.lda % 4 == 0;
  TNL_CHECK(gemv_supported(M, K), "tnl::model::cuda::gemv: unsupported shape M ", M, ", K ", K);
  TNL_CHECK(aligned || !in.vec_input, "tnl::model::cuda::gemv: vec_input needs 16-byte aligned rows and strides "
            "that are multiples of 4");
  TNL_CHECK(reinterpret_cast<uintptr_t>(W) % 16 == 0, "tnl::model::cuda::gemv: W must be 16-byte aligned");
  TNL_CHECK((N * (in.glu_out ? 2 : 1)) * K <= INT64_MAX / 2 && N <= INT32_MAX, "tnl::model::cuda::gemv: N too large");
  switch (M) {
    case 1: return in.vec_input ? launch_gemv<1, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<1, false>(in, K, W, N, y, ldy, accumulate, st);
    case 2: return in.vec_input ? launch_gemv<2, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<2, false>(in, K, W, N, y, ldy, accumulate, st);
    case 3: return in.vec_input ? launch_gemv<3, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<3, false>(in, K, W, N, y, ldy, accumulate, st);
    case 4: return in.vec_input ? launch_gemv<4, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<4, false>(in, K, W, N, y, ldy, accumulate, st);
    default: throw Error("tnl::model::cuda::gemv: M outside 1..4");
  }
}

}  // namespace tnl::model::cuda
