// gemv_cuda.cu: the decode GEMV of layers_cuda.h, y (M, N) (+)= in (M, K) · Wᵀ for M <= 4 rows,
// with the input row formed in the kernel (SRMS, gate, GLU product) and the optional qkv_prep
// epilogue: a warp per row of W, 16-byte loads into registers, the next step's loads issued
// before this step's arithmetic, the first ones before waiting on the kernel before
// (programmatic dependent launch). After that wait the critical path holds one round of input
// loads (with the value an accumulating row adds to), the norm's block sum (one barrier), the
// barrier before the dot products, the dot products and the store. Variants tried and
// measured slower on the H200 are listed in bench/cuda/NOTES.md (lighter blocks, bulk copies to
// shared memory, L2 prefetch ahead, one persistent kernel for the whole step).
#include <algorithm>

#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/layers_cuda.h"

namespace tnl::model::cuda {
namespace {

// ---- GEMV ----
constexpr int kGemvWarps = kThreads / 32;
constexpr int kGemvGroup = 8;                 // 16-byte loads per lane in flight per step
constexpr int kGemvStep = kGemvGroup * 256;   // elements of a row per warp step
constexpr size_t kGemvMaxSmem = 96 * 1024;
constexpr int kGemvBlocksPerSm = 2;           // 16 warps per SM, 4-8 KB of loads in flight each

// 16-byte input loads per thread in one pass of the input forming: K <= 2048 (the released
// d_model) and K <= 6144 (the GLU's 5632 of the 1b shape) are read in one round of loads.
constexpr int kFormShort = 2;
constexpr int kFormLong = 6;

// Features 4g..4g+3 of input row m before the gate / GLU product: a (rms, glu: the first half)
// or o (rms_gate).
__device__ __forceinline__ float4 load_input4(const GemvArgs& in, int m, int K, int g) {
  if (in.mode == GemvInput::rms_gate) {
    const uint2 raw = *reinterpret_cast<const uint2*>(in.o + (int64_t)m * K + 4 * g);
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&raw.y));
    return make_float4(lo.x, lo.y, hi.x, hi.y);
  }
  return *reinterpret_cast<const float4*>(in.a + m * in.lda + 4 * g);
}

// The gate (rms_gate) or the GLU's second half (glu) of features 4g..4g+3 of row m.
__device__ __forceinline__ float4 load_other4(const GemvArgs& in, int m, int K, int g) {
  if (in.mode == GemvInput::rms_gate) return *reinterpret_cast<const float4*>(in.u + m * in.ldu + 4 * g);
  return *reinterpret_cast<const float4*>(in.a + m * in.lda + K + 4 * g);
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

// Input row m's value from features x (before the norm) and u (the gate, or the GLU's second
// half), inv the row's 1 / rms (1 for glu), rounded to bf16 and stored at dst (4 features).
__device__ __forceinline__ void store_input4(const GemvArgs& in, float4 x, float4 u4, float inv, bf16* dst) {
  float4 r;
  if (in.mode == GemvInput::rms) {
    r = make_float4(x.x * inv, x.y * inv, x.z * inv, x.w * inv);
  } else if (in.mode == GemvInput::rms_gate) {
    r = make_float4(x.x * inv * u4.x, x.y * inv * u4.y, x.z * inv * u4.z, x.w * inv * u4.w);
  } else {
    r = make_float4(x.x * u4.x, x.y * u4.y, x.z * u4.z, x.w * u4.w);
  }
  __nv_bfloat162 lo = __floats2bfloat162_rn(r.x, r.y), hi = __floats2bfloat162_rn(r.z, r.w);
  uint2 packed;
  packed.x = *reinterpret_cast<unsigned*>(&lo);
  packed.y = *reinterpret_cast<unsigned*>(&hi);
  *reinterpret_cast<uint2*>(dst) = packed;
}

__device__ __forceinline__ float sum_sq4(float4 x) { return x.x * x.x + x.y * x.y + x.z * x.z + x.w * x.w; }

// 1 / rms of a row of K features from each thread's part of its sum of squares: the warps'
// sums in part (kGemvWarps floats, this row's own), one barrier, then every thread adds them
// in a fixed order (the same value as cuda_common::block_sum, with one barrier instead of three).
__device__ __forceinline__ float block_inv_rms(float ss, float* part, int K) {
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = ss;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kGemvWarps; ++w) total += part[w];
  return inv_rms(total, K);
}

// The input rows (M, K) into xs as bf16 (SRMS(a), SRMS(o) ⊙ gate or a ⊙ b, rounded once as
// the GEMM path does), 4 features per thread per load, the U loads (and U gate / second-half
// loads) of a pass issued together. A row of at most kThreads · U · 4 features is read in one
// round of loads and kept in registers across its norm's block sum (ss_part (M, warps)); a
// longer one is read twice (sum of squares, then the values).
template <int M, int U>
__device__ __forceinline__ void form_input_vec(const GemvArgs& in, int K, bf16* xs, float (*ss_part)[kGemvWarps]) {
  const int K4 = K / 4;
  const bool norm = in.mode != GemvInput::glu;
  auto load_pass = [&](int m, int g0, float4* x, float4* u4) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int g = g0 + u * kThreads;
      x[u] = u4[u] = make_float4(0.f, 0.f, 0.f, 0.f);
      if (g < K4) {
        x[u] = load_input4(in, m, K, g);
        if (in.mode != GemvInput::rms) u4[u] = load_other4(in, m, K, g);
      }
    }
  };
  auto store_pass = [&](int m, int g0, const float4* x, const float4* u4, float inv) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int g = g0 + u * kThreads;
      if (g < K4) store_input4(in, x[u], u4[u], inv, xs + (int64_t)m * K + 4 * g);
    }
  };
  for (int m = 0; m < M; ++m) {
    float4 x[U], u4[U];
    if (K4 <= kThreads * U) {
      load_pass(m, threadIdx.x, x, u4);
      float inv = 1.f;
      if (norm) {
        float ss = 0.f;
#pragma unroll
        for (int u = 0; u < U; ++u) ss += sum_sq4(x[u]);  // zero past K4
        inv = block_inv_rms(ss, ss_part[m], K);
      }
      store_pass(m, threadIdx.x, x, u4, inv);
      continue;
    }
    float inv = 1.f;
    if (norm) {
      float ss = 0.f;
      for (int g0 = threadIdx.x; g0 < K4; g0 += kThreads * U) {
#pragma unroll
        for (int u = 0; u < U; ++u)
          x[u] = g0 + u * kThreads < K4 ? load_input4(in, m, K, g0 + u * kThreads) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int u = 0; u < U; ++u) ss += sum_sq4(x[u]);
      }
      inv = block_inv_rms(ss, ss_part[m], K);
    }
    for (int g0 = threadIdx.x; g0 < K4; g0 += kThreads * U) {
      load_pass(m, g0, x, u4);
      store_pass(m, g0, x, u4, inv);
    }
  }
}

// The same, one feature per load (inputs not 16-byte aligned).
template <int M>
__device__ __forceinline__ void form_input_scalar(const GemvArgs& in, int K, bf16* xs, float (*ss_part)[kGemvWarps]) {
  for (int m = 0; m < M; ++m) {
    float inv = 1.f;
    if (in.mode != GemvInput::glu) {
      float ss = 0.f;
      for (int k = threadIdx.x; k < K; k += kThreads) {
        const float x = in.mode == GemvInput::rms ? in.a[m * in.lda + k] : __bfloat162float(in.o[(int64_t)m * K + k]);
        ss += x * x;
      }
      inv = block_inv_rms(ss, ss_part[m], K);
    }
    for (int k = threadIdx.x; k < K; k += kThreads) {
      float x;
      if (in.mode == GemvInput::rms) x = in.a[m * in.lda + k] * inv;
      else if (in.mode == GemvInput::rms_gate) x = __bfloat162float(in.o[(int64_t)m * K + k]) * inv * in.u[m * in.ldu + k];
      else x = in.a[m * in.lda + k] * in.a[m * in.lda + K + k];
      xs[(int64_t)m * K + k] = __float2bfloat16_rn(x);
    }
  }
}

// One warp per output row n (rows strided over the grid). The input rows (M, K) are formed
// once per block in shared memory as bf16; the weight loads of the warp's first step are issued
// before that (and before waiting on the previous kernel), and each step's loads before the
// previous step's arithmetic. VEC: the input is read 4 features per load, each pass's loads
// issued together (more registers: 2 blocks per multiprocessor); else one feature per load.
template <int M, bool VEC>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const GemvArgs in, int K, const bf16* W,
                                                        int N, float* y, int64_t ldy, bool accumulate) {
  extern __shared__ __align__(16) unsigned char gemv_smem[];
  bf16* xs = reinterpret_cast<bf16*>(gemv_smem);  // (M, K)
  __shared__ float ss_part[M][kGemvWarps];  // per warp: part of each row's sum of squares
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
  if (n < N) load(n, 0);
  pdl_launch_dependents();  // the next GEMV may start loading its weights
  pdl_wait();               // the previous kernel's outputs (our input, y) are complete

  // The value this warp's first row adds to (out, GLU down projections), loaded beside the
  // input so that the store at the end waits on no load.
  float base[M];
#pragma unroll
  for (int m = 0; m < M; ++m) base[m] = accumulate && n < N ? y[m * ldy + n] : 0.f;
  if constexpr (VEC) {
    if (K / 4 <= kThreads * kFormShort) form_input_vec<M, kFormShort>(in, K, xs, ss_part);
    else form_input_vec<M, kFormLong>(in, K, xs, ss_part);
  } else {
    form_input_scalar<M>(in, K, xs, ss_part);
  }
  __syncthreads();

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
        if (in.q) store_qkvu(in, m, n, s, y + m * ldy);
        else y[m * ldy + n] = base[m] + s;
      }
      if (accumulate && n + stride < N) base[m] = y[m * ldy + n + stride];  // the next row's
    }
  }
}

template <int M, bool VEC>
void launch_gemv(const GemvArgs& in, int64_t K, const bf16* W, int64_t N, float* y, int64_t ldy,
                 bool accumulate, cudaStream_t st) {
  static bool ready = false;
  if (!ready) {
    TNL_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<M, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)kGemvMaxSmem));
    ready = true;
  }
  // A fixed grid of kGemvBlocksPerSm blocks per multiprocessor: rows per warp stay balanced
  // (one round more at most) and each block forms its input rows once.
  const int64_t want = (N + kGemvWarps - 1) / kGemvWarps;
  const unsigned grid = (unsigned)std::max<int64_t>(1, std::min<int64_t>(want, (int64_t)device_info().sms * kGemvBlocksPerSm));
  launch_pdl(gemv_kernel<M, VEC>, dim3(grid), dim3(kThreads), sizeof(bf16) * M * (size_t)K, st, true, in, (int)K, W,
             (int)N, y, ldy, accumulate);
}


}  // namespace

bool gemv_supported(int64_t M, int64_t K) {
  return M >= 1 && M <= kGemvMaxRows && K % 8 == 0 && K <= INT32_MAX &&
         sizeof(bf16) * (size_t)(M * K) <= kGemvMaxSmem;
}

void gemv(const GemvArgs& in, int64_t M, int64_t K, const bf16* W, int64_t N, float* y,
          int64_t ldy, bool accumulate, cudaStream_t st) {
  const bool aligned = in.mode == GemvInput::rms_gate
                           ? reinterpret_cast<uintptr_t>(in.o) % 8 == 0 && reinterpret_cast<uintptr_t>(in.u) % 16 == 0 && in.ldu % 4 == 0
                           : reinterpret_cast<uintptr_t>(in.a) % 16 == 0 && in.lda % 4 == 0;
  TNL_CHECK(gemv_supported(M, K), "tnl::model::cuda::gemv: unsupported shape M ", M, ", K ", K);
  TNL_CHECK(aligned || !in.vec_input, "tnl::model::cuda::gemv: vec_input needs 16-byte aligned rows and strides "
            "that are multiples of 4");
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
