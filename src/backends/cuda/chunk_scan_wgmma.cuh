// chunk_scan_wgmma.cuh: the chunked scan (chunk_scan.h) on sm_90a's asynchronous warpgroup MMAs
// (wgmma.mma_async), for fp16/bf16 inputs with rounded intermediates, full passes (not the
// segment pre-pass, not the fused dk/dv scan), key dim dk <= 128 (padded to DK = 64 or 128),
// any dv (blocks of NWG · 64 columns), 16-byte aligned rows. Chunk C = 64. Opt-in
// (TNL_CUDA_WGMMA=1, for the scans the TMA scan does not take, or with TNL_CUDA_TMA=0): passes
// the rounded-mode GPU tests and the sanitizers on an H200 but is 20-50% slower than the
// mma.sync kernel at D = 128 (bench/cuda/NOTES.md says why; chunk_scan_tma.cuh is its successor).
//
// A block is NWG warpgroups (128 threads each) over one (sequence, head, segment) and NWG · 64
// value columns: warpgroup w owns columns 64w..64w+63 of the block, its part of the state S
// (DK, 64) fp32 in registers and of the output. The X, Y, Z tiles of a chunk are shared by the
// warpgroups, copied by all threads with cp.async into NB stages, NB - 1 chunks ahead. Per
// chunk, a warpgroup issues (a = row of the chunk, b = column, d = key, e = value column):
//   group 1: P  = X Yᵀ                  (C, C)   A = X (smem, K-major), B = Y (smem, K-major)
//   group 2: O  = X S                   (C, 64)  B = S rounded (smem, MN-major, this chunk's)
//   group 3: S  = λ^n S + (w ⊙ Y)ᵀ Z     (DK, 64) A = w-weighted Yᵀ in registers (ldmatrix.trans)
//   group 4: O  = α λ^{a+off} O + (c λ^{a-b} M ⊙ P) Z            A = masked P from registers
// Groups 1-3 are issued back to back (the state update does not wait for the outputs), the
// masking of P overlaps groups 2-3, and only the state's store to shared memory (rounded) and
// the barrier after it sit between one chunk's update and the next chunk's X S.
//
// Shared-memory operands are the unswizzled core-matrix layout (8 x 8 blocks of 16-bit elements,
// 8 rows of 16 contiguous bytes each; descriptor LBO = the K step, SBO = the M/N step, as read
// by bench/cuda/wgmma_probe.cu on the branch wip/bwd-concurrent-scans). The copies place each
// warp's 16-byte pieces 128 contiguous bytes at a time (no bank conflicts), reading 64 bytes of
// each of 8 rows from global memory.
#pragma once

#include <algorithm>

#include "backends/cuda/chunk_scan_tc.cuh"
#include "backends/cuda/env_switch.h"

namespace tnl::cuda {
namespace wg {

using tc::kC;
using tc::Ops;
using tc::SeqLoc;

// Core-matrix layout of an operand tile (MN x K, 16-bit): element (mn, k) at byte
//   (mn / 8) · kMnBlock + (k / 8) · 128 + in-core,
// in-core = (mn % 8) · 16 + (k % 8) · 2 (K-major: K contiguous) or
//           (k % 8) · 16 + (mn % 8) · 2 (MN-major: M/N contiguous).
template <bool MN_MAJOR, int MN, int K>
struct CoreTile {
  static constexpr int kKBlock = 128;
  static constexpr int kMnBlock = (K / 8) * kKBlock;
  static constexpr int kBytes = MN * K * 2;
  static __device__ __forceinline__ int offset(int mn, int k) {
    const int in_core = MN_MAJOR ? (k % 8) * 16 + (mn % 8) * 2 : (mn % 8) * 16 + (k % 8) * 2;
    return (mn / 8) * kMnBlock + (k / 8) * kKBlock + in_core;
  }
  // The wgmma descriptor of the sub-tile at M/N index mn0 (a multiple of 8), K index k0 (of 8).
  static __device__ __forceinline__ uint64_t desc(const void* tile, int mn0, int k0) {
    const uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(tile)) + (mn0 / 8) * kMnBlock +
                       (k0 / 8) * kKBlock;
    return (uint64_t)((a >> 4) & 0x3FFF) | ((uint64_t)((kKBlock >> 4) & 0x3FFF) << 16) |
           ((uint64_t)((kMnBlock >> 4) & 0x3FFF) << 32);
  }
};

template <int DK, int NWG, int NB>
struct Smem {  // byte offsets
  using X = CoreTile<false, kC, DK>;        // (a, d)
  using Y = CoreTile<false, kC, DK>;        // (b, d)
  using Z = CoreTile<true, NWG * 64, kC>;   // (e, b): B of P Z and of the update
  using S = CoreTile<true, 64, DK>;         // (e, d) per warpgroup: B of X S
  using Yw = CoreTile<false, DK, kC>;       // (d, b) = w_b Y(b, d): A of the update
  static constexpr int kXo = 0, kYo = X::kBytes, kZo = X::kBytes + Y::kBytes;
  static constexpr int kStage = X::kBytes + Y::kBytes + Z::kBytes;
  static constexpr int kSo = NB * kStage;                 // NWG state tiles
  static constexpr int kYwo = kSo + NWG * S::kBytes;
  static constexpr int kDec = kYwo + Yw::kBytes;          // λ^Δ, Δ = 0..C+1, fp32
  static constexpr size_t kBytes = kDec + 4 * (kC + 2);
};

__device__ __forceinline__ void fence_async_smem() {  // generic-proxy writes -> wgmma reads
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Pins accumulator registers in program order relative to the wgmma asm around them.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}

#define TNL_WG_D32                                                                              \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),          \
      "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),   \
      "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]),            \
      "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),            \
      "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define TNL_WG_D32_OUT                                                                          \
  "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]),          \
      "=f"(d[7]), "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]),   \
      "=f"(d[14]), "=f"(d[15]), "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]),            \
      "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]), "=f"(d[24]), "=f"(d[25]),            \
      "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
#define TNL_WG_L32                                                                        \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "               \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
// d (+)= A · B, m64n64k16, 32 fp32 accumulators a thread; acc = false overwrites d. TB_ / TA_:
// the shared-memory B / A operand is MN-major (else K-major).
#define TNL_WG_DEFINE(T, TYPE)                                                                   \
  template <>                                                                                    \
  struct Mma<T> {                                                                                \
    template <int TB_, int TA_ = 0>                                                              \
    static __device__ __forceinline__ void ss(float (&d)[32], uint64_t da, uint64_t db, bool acc) { \
      asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                  \
                   "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " " TNL_WG_L32      \
                   ", %32, %33, p, 1, 1, %36, %35;\n}\n"                                           \
                   : TNL_WG_D32                                                                  \
                   : "l"(da), "l"(db), "r"((int)acc), "n"(TB_), "n"(TA_));                       \
    }                                                                                            \
    /* d = A · B: the first K step of a product, d write-only (its old values are dead). */     \
    template <int TB_, int TA_ = 0>                                                              \
    static __device__ __forceinline__ void ss_first(float (&d)[32], uint64_t da, uint64_t db) { \
      asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                  \
                   "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " " TNL_WG_L32      \
                   ", %32, %33, p, 1, 1, %36, %35;\n}\n"                                           \
                   : TNL_WG_D32_OUT                                                              \
                   : "l"(da), "l"(db), "r"(0), "n"(TB_), "n"(TA_));                              \
    }                                                                                            \
    template <int TB_>                                                                           \
    static __device__ __forceinline__ void rs(float (&d)[32], const uint32_t (&a)[4], uint64_t db) { \
      asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                  \
                   "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " " TNL_WG_L32      \
                   ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"                               \
                   : TNL_WG_D32                                                                  \
                   : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1), "n"(TB_));    \
    }                                                                                            \
  };
template <class T>
struct Mma;
TNL_WG_DEFINE(__nv_bfloat16, "bf16")
TNL_WG_DEFINE(__half, "f16")
#undef TNL_WG_DEFINE
#undef TNL_WG_D32
#undef TNL_WG_D32_OUT
#undef TNL_WG_L32

// The cp.async copies of one input's tiles into a core-matrix tile, chunk after chunk (zero
// outside the valid rows and columns). Copy i of a chunk: row r = i % 8 + 8 · (i / (8 V)),
// 16-byte piece c = (i / 8) % V (V pieces a row): 8 rows of one piece lie 128 contiguous bytes
// apart in shared memory. K-major tiles (X, Y): mn = r, k = 8c; MN-major (Z): k = r, mn = 8c.
template <class T, int W, bool MN_MAJOR, int MN_BLOCK, int NT>
struct CoreStream {
  static constexpr int kV = W / 8;
  static constexpr int kRG = NT / (8 * kV);  // 8-row groups per round of copies
  static constexpr int kIters = 8 / kRG;     // rounds per chunk
  static_assert(NT % (8 * kV) == 0 && kRG <= 8, "whole rounds of copies");
  const T* next;  // this thread's first element of the next chunk
  int64_t tau;    // scan time of this thread's first row of the next chunk
  int dst0, dst_step;
  bool col_ok;

  __device__ __forceinline__ void init(const Rows& r, const SeqLoc& sq, int h, bool reverse,
                                       int64_t tau_begin, int col0, int dim) {
    const int i = threadIdx.x, row0 = i % 8 + 8 * (i / (8 * kV)), c = (i / 8) % kV;
    col_ok = col0 + 8 * c < dim;
    tau = tau_begin + row0;
    const int64_t tok = reverse ? sq.len - 1 - tau : tau;  // may be out of range: not read then
    next = static_cast<const T*>(r.data) + sq.batch * r.sb + (sq.begin + tok) * r.sn + h * r.sh +
           col0 + 8 * c;
    if (MN_MAJOR) {
      dst0 = c * MN_BLOCK + (row0 / 8) * 128 + (row0 % 8) * 16;
      dst_step = kRG * 128;
    } else {
      dst0 = (row0 / 8) * MN_BLOCK + c * 128 + (row0 % 8) * 16;
      dst_step = kRG * MN_BLOCK;
    }
  }
  __device__ __forceinline__ void load(unsigned char* tile, const Rows& r, bool reverse, int64_t tau_end) {
    const int64_t row_step = reverse ? -r.sn : r.sn;
    const T* src = next;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      const bool valid = col_ok && tau + it * 8 * kRG < tau_end;
      tc::cp_async16(tile + dst0 + it * dst_step, valid ? src : static_cast<const T*>(r.data), valid);
      src += 8 * kRG * row_step;
    }
    next += kC * row_step;
    tau += kC;
  }
};

// Accumulator fragments of an m64n64 product (32 floats a thread): warp w of the warpgroup holds
// rows 16w + g and 16w + g + 8 (g = lane / 4); for 8-column block j, columns 8j + 2t, + 1
// (t = lane % 4): d[4j + 0..3] = (row, c), (row, c + 1), (row + 8, c), (row + 8, c + 1).
// The A fragment (registers) of a 16-wide K slice s has the same rows: a[0] = (g, 16s + 2t..),
// a[1] = (g + 8, 16s + 2t..), a[2] = (g, 16s + 2t + 8..), a[3] = (g + 8, 16s + 2t + 8..).
// (v0, v1) rounded into the 16-bit pair `hi`, and when SPLIT the rounded remainders into `*lo`.
template <class T, bool SPLIT>
__device__ __forceinline__ void pack_pair(float v0, float v1, uint32_t& hi, uint32_t* lo) {
  using O = Ops<T>;
  const typename O::T2 v = O::from_f2(v0, v1);
  hi = *reinterpret_cast<const uint32_t*>(&v);
  if constexpr (SPLIT) {
    const float2 h = O::to_f2(v);
    const typename O::T2 l = O::from_f2(v0 - h.x, v1 - h.y);
    *lo = *reinterpret_cast<const uint32_t*>(&l);
  }
}

// The masked scores c λ^Δ P as the A fragments (4 K slices of 16) of the P·Z wgmma: Δ = a - b
// kept where b <= a; REVERSE (tile rows in reversed scan order): Δ = b - a kept where b >= a.
// a_b0 = a - b of pr[0] (16·warp + g - 2t); pr[4j + r]: + 8(r/2) - 8j - r%2.
// SPLIT: the remainders, rounded, in pl (compensated).
template <class T, bool REVERSE, bool SPLIT = false>
__device__ __forceinline__ void mask_scores(uint32_t (&pa)[4][4], const float (&pr)[32], const float* dec,
                                            float scale, int a_b0, uint32_t (*pl)[4] = nullptr) {
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
#pragma unroll
    for (int q = 0; q < 4; ++q) {  // q: row g / g + 8 (q % 2), columns 2t / 2t + 8 (q / 2)
      const int j = 2 * ks + q / 2, r = 2 * (q % 2);
      const int dd = a_b0 + 8 * (r / 2) - 8 * j;  // a - b of pr[4j + r]; of pr[4j + r + 1]: - 1
      float v0, v1;
      if constexpr (REVERSE) {
        v0 = -dd >= 0 ? scale * dec[-dd] * pr[4 * j + r] : 0.f;
        v1 = -dd >= -1 ? scale * dec[1 - dd] * pr[4 * j + r + 1] : 0.f;
      } else {
        v0 = dd >= 0 ? scale * dec[dd] * pr[4 * j + r] : 0.f;
        v1 = dd >= 1 ? scale * dec[dd - 1] * pr[4 * j + r + 1] : 0.f;
      }
      pack_pair<T, SPLIT>(v0, v1, pa[ks][q], SPLIT ? &pl[ks][q] : nullptr);
    }
}

// The factors mask_scores applies to this thread's scores, c λ^Δ or 0 (f[i] for pr[i]; they do
// not depend on the chunk), for kernels that keep them in registers (mask_scores_by).
template <bool REVERSE>
__device__ __forceinline__ void mask_factors(float (&f)[32], const float* dec, float scale, int a_b0) {
#pragma unroll
  for (int i = 0; i < 32; ++i) {
    const int j = i / 4, r = i % 4;
    const int dd = a_b0 + 8 * (r / 2) - 8 * j - r % 2;  // a - b of pr[i]
    const int delta = REVERSE ? -dd : dd;
    f[i] = delta >= 0 ? scale * dec[delta] : 0.f;
  }
}

// An m64n64 wgmma accumulator (this thread's rows 16·warp + g and + 8) times the rows' factors
// coef[0] and coef[1].
__device__ __forceinline__ void scale_acc_rows(float (&acc)[32], const float (&coef)[2]) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    acc[4 * j] *= coef[0];
    acc[4 * j + 1] *= coef[0];
    acc[4 * j + 2] *= coef[1];
    acc[4 * j + 3] *= coef[1];
  }
}

// mask_scores with the factors from mask_factors: pa (and pl when SPLIT) = f ⊙ pr.
template <class T, bool SPLIT = false>
__device__ __forceinline__ void mask_scores_by(uint32_t (&pa)[4][4], const float (&pr)[32], const float (&f)[32],
                                               uint32_t (*pl)[4] = nullptr) {
#pragma unroll
  for (int ks = 0; ks < 4; ++ks)
#pragma unroll
    for (int q = 0; q < 4; ++q) {  // q: row g / g + 8 (q % 2), columns 2t / 2t + 8 (q / 2)
      const int i = 4 * (2 * ks + q / 2) + 2 * (q % 2);
      pack_pair<T, SPLIT>(f[i] * pr[i], f[i + 1] * pr[i + 1], pa[ks][q], SPLIT ? &pl[ks][q] : nullptr);
    }
}

template <class T, int DK, int NWG, int NB>
__global__ void __launch_bounds__(128 * NWG, 1)
    chunk_scan_wgmma_kernel(const ScanParams p, const Slopes sl, bool out_vec2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = Smem<DK, NWG, NB>;
  using O = Ops<T>;
  using W = Mma<T>;
  constexpr int kThreads = 128 * NWG;
  constexpr int kMH = DK / 64;  // 64-row halves of the state
  extern __shared__ __align__(128) unsigned char smem_raw[];
  float* dec = reinterpret_cast<float*>(smem_raw + L::kDec);  // (C + 2)

  const int wgi = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  unsigned char* Ss = smem_raw + L::kSo + wgi * L::S::kBytes;  // this warpgroup's state tile
  unsigned char* Yws = smem_raw + L::kYwo;                      // the update's weighted Yᵀ
  const int64_t bid = blockIdx.x;
  const int seg = (int)(bid % p.num_segs);
  const int64_t shd = bid / p.num_segs;  // s·H + h
  const int h = (int)(shd % p.heads);
  const int64_t s = shd / p.heads;
  const int e0 = blockIdx.y * NWG * 64 + 64 * wgi;  // this warpgroup's first column

  const SeqLoc sq = tc::seq_loc(p, s);
  if (!segment_runs(p, seg, sq.len)) return;
  const int64_t seg_begin = (int64_t)seg * p.seg_len;
  const int64_t seg_end = p.num_segs == 1 ? sq.len : min(sq.len, seg_begin + p.seg_len);
  const float slope = sl.s[h];
  for (int i = threadIdx.x; i < kC + 2; i += kThreads) dec[i] = expf(-slope * (float)i);
  __syncthreads();

  // The state S (DK, 64) fp32: half m, rows d = 64m + 16·warp + g (+8), columns e0 + 8j + 2t (+1).
  float st[kMH][32];
  const int64_t state_off = shd * (int64_t)p.dk * p.dv;
  const StartState start = segment_start(p, shd, seg);
#pragma unroll
  for (int m = 0; m < kMH; ++m)
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      st[m][i] = 0.f;
      const int j = i / 4, r = i % 4;
      const int d = 64 * m + 16 * warp + g + 8 * (r / 2);
      const int e = e0 + 8 * j + 2 * t + (r % 2);
      if (d < p.dk && e < p.dv) st[m][i] = start.at(p, d, e);
    }

  // This thread's two output rows' α λ^{a+off}; the mask factors c·λ^{a-b} (zero for b > a) are
  // read from dec per chunk (fewer live registers).
  const float out_coef[2] = {p.alpha * dec[16 * warp + g + p.off_out],
                             p.alpha * dec[16 * warp + g + 8 + p.off_out]};
  const int a_b0 = 16 * warp + g - 2 * t;  // a - b of score pr[0]; pr[4j + r]: + 8(r/2) - 8j - r%2

  CoreStream<T, DK, false, L::X::kMnBlock, kThreads> xs, ys;
  CoreStream<T, NWG * 64, true, L::Z::kMnBlock, kThreads> zs;
  xs.init(p.x, sq, h, p.reverse, seg_begin, 0, p.dk);
  ys.init(p.y, sq, h, p.reverse, seg_begin, 0, p.dk);
  zs.init(p.z, sq, h, p.reverse, seg_begin, blockIdx.y * NWG * 64, p.dv);
  int64_t next_tau = seg_begin;  // scan time of the next chunk to copy
  auto load_async = [&](int stage) {
    if (next_tau < seg_end) {
      unsigned char* base = smem_raw + stage * L::kStage;
      xs.load(base + L::kXo, p.x, p.reverse, seg_end);
      ys.load(base + L::kYo, p.y, p.reverse, seg_end);
      zs.load(base + L::kZo, p.z, p.reverse, seg_end);
      next_tau += kC;
    }
    tc::cp_async_commit();  // one group per call, empty or not: the waits count groups
  };
#pragma unroll
  for (int i = 0; i < NB - 1; ++i) load_async(i);

  float pr[32], o_acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) pr[i] = o_acc[i] = 0.f;
  int stage = 0;
  for (int64_t tau0 = seg_begin; tau0 < seg_end; tau0 += kC) {
    const int n = (int)min((int64_t)kC, seg_end - tau0);
    unsigned char* Xs = smem_raw + stage * L::kStage + L::kXo;
    unsigned char* Ys = smem_raw + stage * L::kStage + L::kYo;
    unsigned char* Zs = smem_raw + stage * L::kStage + L::kZo;
    tc::cp_async_wait<NB - 2>();  // this chunk's copies (this thread's)
    // S rounded, as the B operand of X S (MN-major: e contiguous).
#pragma unroll
    for (int m = 0; m < kMH; ++m)
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int r = 0; r < 4; r += 2) {
          const int d = 64 * m + 16 * warp + g + 8 * (r / 2), e = 8 * j + 2 * t;
          *reinterpret_cast<typename O::T2*>(Ss + L::S::offset(e, d)) =
              O::from_f2(st[m][4 * j + r], st[m][4 * j + r + 1]);
        }
    const float dn = dec[n];  // S = λ^n S before the update (group 3) accumulates onto it
#pragma unroll
    for (int m = 0; m < kMH; ++m) {
#pragma unroll
      for (int i = 0; i < 32; ++i) st[m][i] *= dn;
      fence_regs(st[m]);
    }
    fence_async_smem();  // this thread's copies and state stores, for the async proxy
    __syncthreads();     // every thread's; and every read of the stage refilled below is done
    load_async((stage + NB - 1) % NB);

    // Groups 1 and 2: P = X Yᵀ, O = X S.
    fence_regs(pr);
    fence_regs(o_acc);
    wg_fence();
#pragma unroll
    for (int k0 = 0; k0 < DK; k0 += 16)
      W::template ss<0>(pr, L::X::desc(Xs, 0, k0), L::Y::desc(Ys, 0, k0), k0 > 0);
    wg_commit();
#pragma unroll
    for (int k0 = 0; k0 < DK; k0 += 16)
      W::template ss<1>(o_acc, L::X::desc(Xs, 0, k0), L::S::desc(Ss, 0, k0), k0 > 0);
    wg_commit();

    // Group 3: S = λ^n S + (w ⊙ Y)ᵀ Z, w_b = β λ^{n-1-b+off} (0 past n). The warpgroups
    // write the weighted Yᵀ tile together (16 x 16 pieces (m, ks): rows d = 64m + 16·warp..,
    // columns b = 16ks..), through ldmatrix.trans: a[q] of rows d (+8), columns b = 16ks + 2t
    // (+1) (+8) as in an A fragment, stored as pairs of columns.
#pragma unroll
    for (int u = 0; u < kMH * 4 / NWG; ++u) {
      const int it = wgi + u * NWG, m = it / 4, ks = it % 4;
      const int b = 16 * ks + (lane % 8) + (lane / 16) * 8;
      const int d = 64 * m + 16 * warp + ((lane / 8) % 2) * 8;
      uint32_t a[4];
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                   : "r"(tc::smem_addr(Ys + L::Y::offset(b, d))));
#pragma unroll
      for (int q = 0; q < 4; ++q) {  // rows d0 + g (+8 for q odd), columns bq, bq + 1
        const int bq = 16 * ks + 2 * t + 8 * (q / 2), dq = 64 * m + 16 * warp + g + 8 * (q % 2);
        const float w0 = bq < n ? p.beta * dec[n - 1 - bq + p.off_upd] : 0.f;
        const float w1 = bq + 1 < n ? p.beta * dec[n - 2 - bq + p.off_upd] : 0.f;
        const float2 y = O::to_f2(*reinterpret_cast<const typename O::T2*>(&a[q]));
        *reinterpret_cast<typename O::T2*>(Yws + L::Yw::offset(dq, bq)) = O::from_f2(y.x * w0, y.y * w1);
      }
    }
    fence_async_smem();
    __syncthreads();  // the whole weighted tile
    wg_fence();
#pragma unroll
    for (int m = 0; m < kMH; ++m)
#pragma unroll
      for (int k0 = 0; k0 < kC; k0 += 16)
        W::template ss<1>(st[m], L::Yw::desc(Yws, 64 * m, k0), L::Z::desc(Zs, 64 * wgi, k0), true);
    wg_commit();

    // The masked scores as the A operand of group 4, while groups 2 and 3 run.
    wg_wait<2>();
    fence_regs(pr);
    uint32_t pa[4][4];
    mask_scores<T, false>(pa, pr, dec, p.scale, a_b0);
    wg_wait<1>();
    fence_regs(o_acc);
    scale_acc_rows(o_acc, out_coef);
    fence_regs(o_acc);
    wg_fence();
    // Group 4: O += (mask ⊙ P) Z over the causal K slices (zero above the diagonal block).
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) W::template rs<1>(o_acc, pa[ks], L::Z::desc(Zs, 64 * wgi, 16 * ks));
    wg_commit();
    wg_wait<0>();
    fence_regs(o_acc);
#pragma unroll
    for (int m = 0; m < kMH; ++m) fence_regs(st[m]);

    T* out = static_cast<T*>(p.out);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int a_ = 16 * warp + g + 8 * half;
      if (a_ >= n) continue;
      const int64_t tok = p.reverse ? sq.len - 1 - (tau0 + a_) : tau0 + a_;
      T* row = out + sq.batch * p.out_sb + (sq.begin + tok) * p.out_sn + h * p.out_sh;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int e = e0 + 8 * j + 2 * t;
        const float v0 = o_acc[4 * j + 2 * half], v1 = o_acc[4 * j + 2 * half + 1];
        if (out_vec2) {
          if (e < p.dv) *reinterpret_cast<typename O::T2*>(row + e) = O::from_f2(v0, v1);
        } else {
          if (e < p.dv) row[e] = O::from_f(v0);
          if (e + 1 < p.dv) row[e + 1] = O::from_f(v1);
        }
      }
    }
    stage = (stage + 1) % NB;
  }
  tc::cp_async_wait<0>();  // no copy outlives the block

  if (p.final_state && segment_ends_sequence(p, seg, sq.len)) {
#pragma unroll
    for (int m = 0; m < kMH; ++m)
#pragma unroll
      for (int i = 0; i < 32; ++i) {
        const int j = i / 4, r = i % 4;
        const int d = 64 * m + 16 * warp + g + 8 * (r / 2);
        const int e = e0 + 8 * j + 2 * t + (r % 2);
        if (d < p.dk && e < p.dv) p.final_state[state_off + (int64_t)d * p.dv + e] = st[m][i];
      }
  }
#elif defined(__CUDA_ARCH__)
  __trap();  // built without sm_90a: serves() keeps this kernel from being launched
#endif
}

// Whether TNL_CUDA_WGMMA=1 asks for this kernel (opt-in: it is correct but slower than the
// mma.sync kernel so far, bench/cuda/NOTES.md), this build carries sm_90a code and the current
// device runs it (sm_90). Asked once per process.
inline bool device_ok() {
#if defined(TNL_HAVE_SM90A)
  static const bool ok = [] {
    if (!env_is("TNL_CUDA_WGMMA", '1')) return false;
    int dev = 0, major = 0, minor = 0;
    TNL_CUDA_CHECK(cudaGetDevice(&dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    return major == 9 && minor == 0;
  }();
  return ok;
#else
  return false;
#endif
}

// Whether the wgmma kernel serves this scan: a full pass (not the pre-pass, not the fused dk/dv
// scan) with rounded intermediates, dk <= 128, dk and dv whole 16-byte pieces and 16-byte
// aligned rows of X, Y and Z, on a device that runs it; not varlen batches with segments (their
// grid, split_segs).
inline bool serves(const ScanParams& p, bool local_pass) {
  return !local_pass && !p.fused && !p.compensated && !p.split_segs && p.dk <= 128 && tc::vec_rows(p, true) &&
         device_ok();
}

template <class T, int DK, int NWG, int NB>
void launch_config(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  const dim3 grid((unsigned)(p.num_seqs * p.heads * p.num_segs), (unsigned)((p.dv + NWG * 64 - 1) / (NWG * 64)));
  const size_t bytes = Smem<DK, NWG, NB>::kBytes;
  const bool out_vec2 = tc::pairs_aligned4(p.out, p.out_sb, p.out_sn, p.out_sh, p.dv);
  auto kern = chunk_scan_wgmma_kernel<T, DK, NWG, NB>;
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  kern<<<grid, 128 * NWG, bytes, stream>>>(p, sl, out_vec2);
  TNL_CUDA_CHECK_LAUNCH();
}

// DK = 64 or 128 (dk padded), one warpgroup when dv <= 64, else two; two stages of copies
// (TNL_CUDA_WG_STAGES=3: three, for the two-warpgroup D = 128 blocks).
template <class T>
void launch(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  static const bool three = env_is("TNL_CUDA_WG_STAGES", '3');
  if (p.dk <= 64) {
    if (p.dv <= 64) return launch_config<T, 64, 1, 2>(p, sl, stream);
    return launch_config<T, 64, 2, 2>(p, sl, stream);
  }
  if (p.dv <= 64) return launch_config<T, 128, 1, 2>(p, sl, stream);
  if (three) return launch_config<T, 128, 2, 3>(p, sl, stream);
  return launch_config<T, 128, 2, 2>(p, sl, stream);
}

}  // namespace wg
}  // namespace tnl::cuda
