// decode.cu: the decode step on the GPU, S ← λS + kᵀv; o = c·qS, in place on the fp32 state.
// Memory bound: each (sequence, head) block streams its (D, E) state once in and once out,
// 16 bytes per thread per access when E is a multiple of 4.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backends/cuda/chunk_scan.h"
#include "backends/cuda/cuda_check.h"

namespace tnl::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__device__ __forceinline__ float ld(const void* base, int64_t i) {
  if constexpr (sizeof(T) == 4) {
    return static_cast<const float*>(base)[i];
  } else {
    return static_cast<float>(static_cast<const T*>(base)[i]);
  }
}

template <class T, int VEC>
__global__ void __launch_bounds__(kThreads) decode_kernel(const DecodeParams p, const Slopes sl) {
  __shared__ float qs[256], ks[256], vs[256];  // (D), (D), (E)
  __shared__ float red[kThreads * VEC];        // (row groups, E) partial sums of q S
  const int64_t bh = blockIdx.x;
  const int h = (int)(bh % p.heads);
  const int64_t b = bh / p.heads;
  const int ncg = (p.dv + VEC - 1) / VEC;  // column groups of VEC
  const int nrg = kThreads / ncg;          // row groups (>= 1: dv <= 256)
  const int cg = threadIdx.x % ncg, rg = threadIdx.x / ncg;
  float* S = p.state + bh * (int64_t)p.dk * p.dv;  // (D, E)
  const int e = cg * VEC;
  // VEC = 4: eight rows per step, all loads issued before any store (streaming: read once,
  // write once); the first step's loads go out before q, k, v arrive.
  constexpr int kRows = 8;
  float4 sv[kRows];
  auto load_rows = [&](int d0) {
#pragma unroll
    for (int u = 0; u < kRows; ++u) {
      const int d = d0 + u * nrg;
      if (d < p.dk) sv[u] = __ldcs(reinterpret_cast<const float4*>(S + (int64_t)d * p.dv + e));
    }
  };
  if (VEC == 4 && rg < nrg) load_rows(rg);

  for (int i = threadIdx.x; i < p.dk; i += kThreads) {
    qs[i] = ld<T>(p.q.data, b * p.q.sb + h * p.q.sh + i);
    ks[i] = ld<T>(p.k.data, b * p.k.sb + h * p.k.sh + i);
  }
  for (int i = threadIdx.x; i < p.dv; i += kThreads) vs[i] = ld<T>(p.v.data, b * p.v.sb + h * p.v.sh + i);
  __syncthreads();

  const float lambda = expf(-sl.s[h]);
  float acc[VEC];
#pragma unroll
  for (int j = 0; j < VEC; ++j) acc[j] = 0.f;
  if (rg < nrg) {
    if constexpr (VEC == 4) {
      for (int d0 = rg; d0 < p.dk; d0 += kRows * nrg) {
        if (d0 != rg) load_rows(d0);
#pragma unroll
        for (int u = 0; u < kRows; ++u) {
          const int d = d0 + u * nrg;
          if (d >= p.dk) continue;
          float4 s = sv[u];
          const float kd = ks[d], qd = qs[d];
          s.x = fmaf(lambda, s.x, kd * vs[e + 0]);
          s.y = fmaf(lambda, s.y, kd * vs[e + 1]);
          s.z = fmaf(lambda, s.z, kd * vs[e + 2]);
          s.w = fmaf(lambda, s.w, kd * vs[e + 3]);
          __stcs(reinterpret_cast<float4*>(S + (int64_t)d * p.dv + e), s);
          acc[0] = fmaf(qd, s.x, acc[0]);
          acc[1] = fmaf(qd, s.y, acc[1]);
          acc[2] = fmaf(qd, s.z, acc[2]);
          acc[3] = fmaf(qd, s.w, acc[3]);
        }
      }
    } else {
#pragma unroll 4
      for (int d = rg; d < p.dk; d += nrg) {
        float* ptr = S + (int64_t)d * p.dv + e;
        const float s = fmaf(lambda, *ptr, ks[d] * vs[e]);
        *ptr = s;
        acc[0] = fmaf(qs[d], s, acc[0]);
      }
    }
#pragma unroll
    for (int j = 0; j < VEC; ++j) red[rg * ncg * VEC + cg * VEC + j] = acc[j];
  }
  __syncthreads();
  T* out = static_cast<T*>(p.out);
  for (int col = threadIdx.x; col < p.dv; col += kThreads) {
    float sum = 0.f;
    for (int r = 0; r < nrg; ++r) sum += red[r * ncg * VEC + col];
    out[b * p.out_sb + h * p.out_sh + col] = static_cast<T>(p.scale * sum);
  }
}

template <class T>
void launch_t(const DecodeParams& p, const Slopes& sl, cudaStream_t stream) {
  const unsigned grid = (unsigned)(p.batch * p.heads);
  const bool vec4 = p.dv % 4 == 0 && reinterpret_cast<uintptr_t>(p.state) % 16 == 0;
  if (vec4) {
    decode_kernel<T, 4><<<grid, kThreads, 0, stream>>>(p, sl);
  } else {
    decode_kernel<T, 1><<<grid, kThreads, 0, stream>>>(p, sl);
  }
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_decode(DType dt, const DecodeParams& p, const Slopes& sl, cudaStream_t stream) {
  switch (dt) {
    case DType::f32: return launch_t<float>(p, sl, stream);
    case DType::f16: return launch_t<__half>(p, sl, stream);
    case DType::bf16: return launch_t<__nv_bfloat16>(p, sl, stream);
    default: throw Error("tnl::cuda::launch_decode: unsupported dtype");
  }
}

}  // namespace tnl::cuda
