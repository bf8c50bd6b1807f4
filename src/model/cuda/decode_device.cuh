// decode_device.cuh: the decode step's two kinds of work as device functions (internal to
// src/model/cuda/), each in two parts: a prologue that issues the loads that do not depend on
// the kernel before (weights; the attention state, last written by the previous step) into
// registers, and a body that reads its inputs and computes. The kernels of gemv_cuda.cu and
// layers_cuda.cu run prologue, wait (programmatic dependent launch), body. (Bodies run back to
// back in one kernel between grid-wide barriers would have to read activations through L2,
// ld.global.cg; that was tried and was slower, see bench/cuda/NOTES.md.)
#pragma once

#include <cuda_bf16.h>

#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/layers_cuda.h"

namespace tnl::model::cuda {
namespace {

// ==== GEMV (y (M, N) (+)= in (M, K) · Wᵀ, see layers_cuda.h) ====

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

// ---- the GEMV's work ----

// A warp's 16-byte weight loads in flight: kGemvGroup per lane.
struct GemvLoads {
  uint4 wv[kGemvGroup];
};

// Loads step k0 of row `row` of W (columns k0 + 256·u + 8·lane).
__device__ __forceinline__ void gemv_load(const GemvWork& g, int row, int k0, GemvLoads& l) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int u = 0; u < kGemvGroup; ++u) {
    const int k = k0 + u * 256 + lane * 8;
    if (k < g.K) l.wv[u] = __ldcs(reinterpret_cast<const uint4*>(g.W + (int64_t)row * g.K + k));
  }
}

// Work items n = block·8 + warp + i·(blocks·8): a row of W (rows n and N + n with glu_out).
// Prologue: the first step of the warp's first item.
__device__ __forceinline__ void gemv_prologue(const GemvWork& g, int block, GemvLoads& l) {
  const int n = block * kGemvWarps + threadIdx.x / 32;
  if (n < g.N) gemv_load(g, n, 0, l);
}

// Body: forms the input rows in xs (M, K) (shared), then every item of the warp, each step's
// loads issued before the previous step's arithmetic. Ends without a block barrier.
template <int M, bool VEC>
__device__ __forceinline__ void gemv_body(const GemvWork& g, int block, int blocks, GemvLoads& l, bf16* xs) {
  const GemvArgs& in = g.in;
  const int K = g.K, N = g.N;
  const int lane = threadIdx.x % 32;
  const int stride = blocks * kGemvWarps;
  const int P = in.glu_out ? 2 : 1;
  form_input<M, VEC>(in, K, xs);
  for (int n = block * kGemvWarps + threadIdx.x / 32; n < N; n += stride) {
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
        for (int u = 0; u < kGemvGroup; ++u) cur[u] = l.wv[u];
        if (k0 + kGemvStep < K) gemv_load(g, row, k0 + kGemvStep, l);  // next step of this row
        else if (p + 1 < P) gemv_load(g, row + N, 0, l);               // or the first of b's row
        else if (n + stride < N) gemv_load(g, n + stride, 0, l);       // or the first of the next item
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
        else if (lane == 0) store_output(in, m, n, N, first[m], s, g.y, g.ldy, g.accumulate);
      }
    }
  }
}

// ==== decode attention split over blocks (see attn_decode_split in layers_cuda.h) ====

constexpr int kAttnMaxItems = 8;  // 16-byte state pieces per thread

struct AttnLoads {
  float4 sv[kAttnMaxItems];
};

// Block c + (E / 4cv)·(b·H + h): columns [c·4cv, (c+1)·4cv) of head (b, h), all D rows, so that
// no other block adds to its outputs. Thread t owns pieces i = t + u·kThreads: row i / cv,
// columns 4·(i % cv).. (the same column group t % cv for all its pieces).
// Prologue: the state's pieces (last written by the previous decode step).
__device__ __forceinline__ void attn_prologue(const AttnWork& a, int block, AttnLoads& l) {
  const int groups = a.E / (4 * a.cv);
  const int64_t bh = block / groups;
  const int e0 = (block % groups) * 4 * a.cv, j = threadIdx.x % a.cv, items = a.D * a.cv;
  const float* S = a.state + bh * (int64_t)a.D * a.E;  // (D, E)
#pragma unroll
  for (int u = 0; u < kAttnMaxItems; ++u) {
    const int i = threadIdx.x + u * kThreads;
    if (i < items) l.sv[u] = __ldcs(reinterpret_cast<const float4*>(S + (int64_t)(i / a.cv) * a.E + e0 + 4 * j));
  }
}

// Body: q, k, v of the head, the state update (written back) and o for the block's columns.
// Ends with a block barrier.
__device__ __forceinline__ void attn_body(const AttnWork& a, int block, const AttnLoads& l) {
  __shared__ float qs[256], ks[256], vs[32];  // (D), (D), (4cv)
  __shared__ float4 red[kThreads / 32][8];    // (warps, cv) partial sums of q S
  const int groups = a.E / (4 * a.cv);
  const int64_t bh = block / groups;
  const int D = a.D, E = a.E, cv = a.cv, h = (int)(bh % a.H), C = 4 * cv, e0 = (block % groups) * C;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, j = threadIdx.x % cv;
  const int items = D * cv;
  float* S = a.state + bh * (int64_t)D * E;  // (D, E)
  for (int i = threadIdx.x; i < D; i += kThreads) {
    qs[i] = __bfloat162float(a.q[bh * D + i]);
    ks[i] = __bfloat162float(a.k[bh * D + i]);
  }
  if (threadIdx.x < C) vs[threadIdx.x] = __bfloat162float(a.v[bh * E + e0 + threadIdx.x]);
  __syncthreads();
  const float lambda = expf(-a.slopes[h]);
  const float v0 = vs[4 * j], v1 = vs[4 * j + 1], v2 = vs[4 * j + 2], v3 = vs[4 * j + 3];
  float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
  for (int u = 0; u < kAttnMaxItems; ++u) {
    const int i = threadIdx.x + u * kThreads;
    if (i < items) {
      const int d = i / cv;
      float4 sn = l.sv[u];
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
    a.o[bh * E + e0 + threadIdx.x] = __float2bfloat16_rn(sum);
  }
  __syncthreads();  // qs, ks, vs, red are free for the next block's work
}

}  // namespace
}  // namespace tnl::model::cuda
