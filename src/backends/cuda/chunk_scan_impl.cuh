// chunk_scan_impl.cuh: the chunked scan kernel (see chunk_scan.h for what it computes), fp32
// FMA on tiles in shared memory, templated on the input dtype, the padded key dim DK and the
// chunk C. Included once per dtype by chunk_scan_{f32,f16,bf16}.cu.
//
// One block = one (sequence, head, segment, 64-wide column tile of dv). Per chunk of C rows:
//   load   X, Y (C, DK), Z (C, ET) into shared memory as fp32, zero padded
//   A      = c·(X Yᵀ ⊙ M)                      (C, C), M_ab = λ^{a-b} for a ≥ b
//   out    = A Z + α·λ^{a+off_out} X S          (C, ET)
//   S      = λ^n S + β Σ_b λ^{n-1-b+off_upd} Y_bᵀ Z_b   (DK, ET), fp32 registers + a shared copy
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backends/cuda/chunk_scan.h"
#include "backends/cuda/cuda_check.h"

namespace tnl::cuda {
namespace scan {

constexpr int kThreads = 256;  // 16 x 16
constexpr int kET = 64;        // columns of dv per block

template <class T>
__device__ __forceinline__ float to_f32(T x);
template <>
__device__ __forceinline__ float to_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ float to_f32<__half>(__half x) { return __half2float(x); }
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <class T>
__device__ __forceinline__ T from_f32(float x);
template <>
__device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

template <int DK, int C>
struct Smem {
  static constexpr int kLdK = DK + 1;  // padded row of X, Y: conflict-free column reads
  static constexpr int kX = 0;                       // (C, DK+1)
  static constexpr int kY = kX + C * kLdK;           // (C, DK+1)
  static constexpr int kZ = kY + C * kLdK;           // (C, ET)
  static constexpr int kA = kZ + C * kET;            // (C, C)
  static constexpr int kS = kA + C * C;              // (DK, ET)
  static constexpr int kDec = kS + DK * kET;         // (C + 2) decay table λ^Δ
  static constexpr int kFloats = kDec + C + 2;
  static constexpr size_t kBytes = sizeof(float) * kFloats;
};

// Where a sequence lives: its batch row and first token, and its length.
struct SeqLoc {
  int64_t batch, begin, len;
};
__device__ __forceinline__ SeqLoc seq_loc(const ScanParams& p, int64_t s) {
  if (p.cu_seqlens) {
    const int64_t b = p.cu_seqlens[s], e = p.cu_seqlens[s + 1];
    return {0, b, e > b ? e - b : 0};  // a non-monotone pair reads as an empty sequence
  }
  return {s, 0, p.seqlen};
}

// Loads rows [tau0, tau0 + C) of scan time (valid below tau_end) of a (., ., ., dim) tensor,
// columns [col0, col0 + W) clipped to dim, into dst (C, ld) as fp32; zero elsewhere.
template <class T, int C, int W>
__device__ __forceinline__ void load_tile(float* dst, int ld, const Rows& r, const SeqLoc& sq,
                                          int h, bool reverse, int64_t tau0, int64_t tau_end,
                                          int col0, int dim) {
  const T* base = static_cast<const T*>(r.data);
  for (int i = threadIdx.x; i < C * W; i += kThreads) {
    const int row = i / W, col = i % W;
    const int64_t tau = tau0 + row;
    float val = 0.f;
    if (tau < tau_end && col0 + col < dim) {
      const int64_t tok = reverse ? sq.len - 1 - tau : tau;
      val = to_f32(base[sq.batch * r.sb + (sq.begin + tok) * r.sn + h * r.sh + col0 + col]);
    }
    dst[row * ld + col] = val;
  }
}

// The scan kernel. kLocal: segment pre-pass (state update only, from zero, into seg_states).
// LIST: varlen with segments (scan_block, prepass_block).
template <class T, int DK, int C, bool kLocal, bool LIST = false>
__global__ void __launch_bounds__(kThreads) chunk_scan_kernel(const ScanParams p,
                                                              const Slopes sl) {
  using L = Smem<DK, C>;
  extern __shared__ float smem[];
  float* Xs = smem + L::kX;   // (C, DK+1)
  float* Ys = smem + L::kY;   // (C, DK+1)
  float* Zs = smem + L::kZ;   // (C, ET)
  float* As = smem + L::kA;   // (C, C)
  float* Ss = smem + L::kS;   // (DK, ET)
  float* dec = smem + L::kDec;  // (C + 2)

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  int64_t sh;  // s·H + h
  int g;
  if constexpr (kLocal && LIST) prepass_block<true>(p, blockIdx.x, sh, g);  // the pre-pass's grid
  else scan_block<LIST>(p, blockIdx.x, sh, g);
  const int h = (int)(sh % p.heads);
  const int64_t s = sh / p.heads;
  const int e0 = blockIdx.y * kET;
  const SeqLoc sq = seq_loc(p, s);
  if (kLocal ? !segment_state_needed(p, g, sq.len) : !segment_runs(p, g, sq.len)) return;
  const int64_t seg_begin = (int64_t)g * p.seg_len;
  const int64_t seg_end = p.num_segs == 1 ? sq.len : min(sq.len, seg_begin + p.seg_len);
  const float slope = sl.s[h];
  for (int i = threadIdx.x; i < C + 2; i += kThreads) dec[i] = expf(-slope * (float)i);

  // The state: thread owns rows d = ty + 16 i, columns e = tx + 16 j of the (DK, ET) tile.
  constexpr int kSR = DK / 16;
  float st[kSR][4];
  const int64_t state_off = sh * (int64_t)p.dk * p.dv;
#pragma unroll
  for (int i = 0; i < kSR; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) st[i][j] = 0.f;
  if (!kLocal) {  // X at the segment start: the initial state's, or the segment prefix's
    const StartState start = segment_start(p, sh, g);
#pragma unroll
    for (int i = 0; i < kSR; ++i) {
      const int d = ty + 16 * i;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int e = e0 + tx + 16 * j;
        if (d < p.dk && e < p.dv) st[i][j] = start.at(p, d, e);
      }
    }
  }

  for (int64_t tau0 = seg_begin; tau0 < seg_end; tau0 += C) {
    const int n = (int)min((int64_t)C, seg_end - tau0);  // valid rows of this chunk
    if (!kLocal) load_tile<T, C, DK>(Xs, L::kLdK, p.x, sq, h, p.reverse, tau0, seg_end, 0, p.dk);
    load_tile<T, C, DK>(Ys, L::kLdK, p.y, sq, h, p.reverse, tau0, seg_end, 0, p.dk);
    load_tile<T, C, kET>(Zs, kET, p.z, sq, h, p.reverse, tau0, seg_end, e0, p.dv);
    if (!kLocal) {
#pragma unroll
      for (int i = 0; i < kSR; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) Ss[(ty + 16 * i) * kET + tx + 16 * j] = st[i][j];
    }
    __syncthreads();

    if (!kLocal) {
      // A = c (X Yᵀ ⊙ M): thread owns rows a = ty + 16 i, columns b = tx + 16 j.
      constexpr int kR = C / 16;
      float acc[kR][kR];
#pragma unroll
      for (int i = 0; i < kR; ++i)
#pragma unroll
        for (int j = 0; j < kR; ++j) acc[i][j] = 0.f;
#pragma unroll 8
      for (int d = 0; d < DK; ++d) {
        float xa[kR], yb[kR];
#pragma unroll
        for (int i = 0; i < kR; ++i) xa[i] = Xs[(ty + 16 * i) * L::kLdK + d];
#pragma unroll
        for (int j = 0; j < kR; ++j) yb[j] = Ys[(tx + 16 * j) * L::kLdK + d];
#pragma unroll
        for (int i = 0; i < kR; ++i)
#pragma unroll
          for (int j = 0; j < kR; ++j) acc[i][j] = fmaf(xa[i], yb[j], acc[i][j]);
      }
#pragma unroll
      for (int i = 0; i < kR; ++i)
#pragma unroll
        for (int j = 0; j < kR; ++j) {
          const int a = ty + 16 * i, b = tx + 16 * j;
          As[a * C + b] = b <= a ? p.scale * dec[a - b] * acc[i][j] : 0.f;
        }
      __syncthreads();

      // out = A Z + α λ^{a+off} X S: thread owns rows a = ty + 16 i, columns e = tx + 16 j.
      float o1[kR][4], o2[kR][4];
#pragma unroll
      for (int i = 0; i < kR; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) o1[i][j] = o2[i][j] = 0.f;
#pragma unroll 8
      for (int b = 0; b < C; ++b) {
        float ab[kR], zb[4];
#pragma unroll
        for (int i = 0; i < kR; ++i) ab[i] = As[(ty + 16 * i) * C + b];
#pragma unroll
        for (int j = 0; j < 4; ++j) zb[j] = Zs[b * kET + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < kR; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) o1[i][j] = fmaf(ab[i], zb[j], o1[i][j]);
      }
#pragma unroll 8
      for (int d = 0; d < DK; ++d) {
        float xa[kR], sd[4];
#pragma unroll
        for (int i = 0; i < kR; ++i) xa[i] = Xs[(ty + 16 * i) * L::kLdK + d];
#pragma unroll
        for (int j = 0; j < 4; ++j) sd[j] = Ss[d * kET + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < kR; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) o2[i][j] = fmaf(xa[i], sd[j], o2[i][j]);
      }
      T* out = static_cast<T*>(p.out);
#pragma unroll
      for (int i = 0; i < kR; ++i) {
        const int a = ty + 16 * i;
        if (a >= n) continue;
        const int64_t tok = p.reverse ? sq.len - 1 - (tau0 + a) : tau0 + a;
        const float coef = p.alpha * dec[a + p.off_out];
        const int64_t row = sq.batch * p.out_sb + (sq.begin + tok) * p.out_sn + h * p.out_sh;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int e = e0 + tx + 16 * j;
          if (e < p.dv) out[row + e] = from_f32<T>(o1[i][j] + coef * o2[i][j]);
        }
      }
    }

    // S = λ^n S + β Σ_{b<n} λ^{n-1-b+off} Y_bᵀ Z_b (rows b ≥ n are zero in Y and Z).
    {
      float upd[kSR][4];
#pragma unroll
      for (int i = 0; i < kSR; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) upd[i][j] = 0.f;
      for (int b = 0; b < n; ++b) {
        const float w = p.beta * dec[n - 1 - b + p.off_upd];
        float zb[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) zb[j] = w * Zs[b * kET + tx + 16 * j];
#pragma unroll
        for (int i = 0; i < kSR; ++i) {
          const float yd = Ys[b * L::kLdK + ty + 16 * i];
#pragma unroll
          for (int j = 0; j < 4; ++j) upd[i][j] = fmaf(yd, zb[j], upd[i][j]);
        }
      }
      const float dn = dec[n];
#pragma unroll
      for (int i = 0; i < kSR; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) st[i][j] = fmaf(dn, st[i][j], upd[i][j]);
    }
    __syncthreads();
  }

  // Write the end state: the final state (last segment), or this segment's local state.
  float* dst = nullptr;
  if (kLocal) {
    dst = segment_local_state(p, sh, g);
  } else if (p.final_state && segment_ends_sequence(p, g, sq.len)) {
    dst = p.final_state + state_off;
  }
  if (dst) {
#pragma unroll
    for (int i = 0; i < kSR; ++i) {
      const int d = ty + 16 * i;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int e = e0 + tx + 16 * j;
        if (d < p.dk && e < p.dv) dst[(int64_t)d * p.dv + e] = st[i][j];
      }
    }
  }
}

template <class T, int DK, int C>
void launch_dk(const ScanParams& p, const Slopes& sl, bool local_pass, cudaStream_t stream) {
  using L = Smem<DK, C>;
  const dim3 grid((unsigned)(local_pass && p.split_segs ? prepass_grid(p) : scan_grid(p)), (unsigned)((p.dv + kET - 1) / kET));
  if (local_pass) {
    auto kern = p.split_segs ? chunk_scan_kernel<T, DK, C, true, true> : chunk_scan_kernel<T, DK, C, true>;
    TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)L::kBytes));
    kern<<<grid, kThreads, L::kBytes, stream>>>(p, sl);
    TNL_CUDA_CHECK_LAUNCH();
  } else {
    auto kern = p.split_segs ? chunk_scan_kernel<T, DK, C, false, true> : chunk_scan_kernel<T, DK, C, false>;
    TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)L::kBytes));
    kern<<<grid, kThreads, L::kBytes, stream>>>(p, sl);
    TNL_CUDA_CHECK_LAUNCH();
  }
}

// Padded key dim and chunk for a key dim (the same table as chunk_scan_tiles_per_sm).
template <class T>
void launch(const ScanParams& p, const Slopes& sl, bool local_pass, cudaStream_t stream) {
  if (p.dk <= 32) return launch_dk<T, 32, 64>(p, sl, local_pass, stream);
  if (p.dk <= 64) return launch_dk<T, 64, 64>(p, sl, local_pass, stream);
  if (p.dk <= 128) return launch_dk<T, 128, 64>(p, sl, local_pass, stream);
  return launch_dk<T, 256, 32>(p, sl, local_pass, stream);
}

inline size_t smem_bytes_for(int dk) {
  if (dk <= 32) return Smem<32, 64>::kBytes;
  if (dk <= 64) return Smem<64, 64>::kBytes;
  if (dk <= 128) return Smem<128, 64>::kBytes;
  return Smem<256, 32>::kBytes;
}

}  // namespace scan
}  // namespace tnl::cuda
