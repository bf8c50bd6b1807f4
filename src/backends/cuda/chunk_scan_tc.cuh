// chunk_scan_tc.cuh: the chunked scan kernel (chunk_scan.h) on tensor cores, for fp16/bf16
// inputs: mma.sync m16n8k16 with fp32 accumulation, chunk C = 64, padded key dim
// DK ∈ {64, 128, 256}; a block is 8 warps over one 64-column tile of dv, or 16 warps over two
// (WG = 2, wide_for below: the tiles share X, Y and the scores).
//
// Inputs (X, Y, Z) enter the tensor cores exactly. The three derived operands, the masked
// scores A, the state S and the decay-weighted values Zw, are split into hi + lo 16-bit
// parts (two MMAs each; SPLIT = true, "compensated"), so the result carries fp32-level error
// plus the final rounding of the output; or rounded once to the input dtype (SPLIT = false,
// "rounded": about the error of the same math in PyTorch at that dtype, spec §4, with ~40%
// fewer MMAs). The state itself stays fp32 in registers across chunks either way.
//
// Per chunk (thread-block view):
//   A  = c·(X Yᵀ ⊙ M)                   (C, C)    warp w: rows 16(w%4), cols 32(w/4)
//                                                  (WG = 2: 16 of them, 16·(w/8) further)
//   O  = A Z + α λ^{a+off} X S           (C, ET)   same warp split, tile w/8
//   S  = λ^n S + Yᵀ Zw,  Zw_b = β λ^{n-1-b+off} z_b   (DK, ET) fp32 accumulators
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdexcept>
#include <type_traits>

#include "backends/cuda/chunk_scan.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/env_switch.h"

namespace tnl::cuda {
namespace tc {

constexpr int kC = 64;         // chunk
constexpr int kET = 64;        // columns of dv per column tile; a block holds WG tiles
// Threads of a block of WG column tiles: 8 warps per tile.
template <int WG>
constexpr int kThreadsOf = 256 * WG;
constexpr int kPad = 8;        // 16-bit elements of row padding (bank-conflict-free fragments)

// Element (row, col) of a shared-memory tile whose rows are ld elements apart.
__device__ __forceinline__ int at(int row, int col, int ld) { return row * ld + col; }

// FUSED (the backward's dk and dv scans in one, fused_backward in attention_cuda.cu; on sm_90 the
// TMA + wgmma version in chunk_scan_tma_bwd.cuh takes it unless TNL_CUDA_TMA_BWD=0): a fourth input
// tile X2 = V (C, WG·ET) per buffer and a second score tile A2 = c (V dOᵀ ⊙ M) (C, C).
template <int DK, int NB, int WG, bool SPLIT, bool FUSED = false>
struct Smem {  // offsets in 16-bit elements
  static constexpr int kLdK = DK + kPad, kLdE = WG * kET + kPad, kLdC = kC + kPad;
  // Input tiles X, Y (C, DK) and Z (C, WG·ET): NB = 2 buffers (cp.async prefetch of the next
  // chunk), or 1 (two blocks per multiprocessor at DK = 128; DK = 256 fits only one).
  static constexpr int kBuffers = NB;
  static constexpr int kXo = 0, kYo = kC * kLdK, kZo = 2 * kC * kLdK;  // within a buffer
  static constexpr int kX2o = kZo + kC * kLdE;                   // FUSED only
  static constexpr int kTile = 2 * kC * kLdK + (FUSED ? 2 : 1) * kC * kLdE;
  static constexpr int kAHi = kBuffers * kTile;                  // (C, C)
  static constexpr int kALo = kAHi + kC * kLdC;                  // (C, C), SPLIT only
  static constexpr int kA2 = kALo + (SPLIT ? kC * kLdC : 0);     // (C, C), FUSED only
  // State tiles from kSHi on, kSTile elements each: S hi (DK, WG·ET), then lo when SPLIT.
  static constexpr int kSHi = kA2 + (FUSED ? kC * kLdC : 0);
  static constexpr int kSTile = (SPLIT ? 2 : 1) * DK * kLdE;
  // Bytes with sb state tiles: + decay table λ^Δ (C + 2) and sb sets of update weights
  // β λ^{n-1-b+off} (C), fp32.
  static constexpr size_t bytes_with(int sb) {
    return (size_t)(kSHi + sb * kSTile) * 2 + sizeof(float) * (kC + 2 + sb * kC);
  }
  // Blocks per multiprocessor the launch bounds ask for (so registers do not limit them): 2
  // when DK <= 128 and the 228 KB of shared memory of an H100 multiprocessor hold two (1 KB
  // reserved per block); else 1 (DK = 256 keeps its 64-register state plus headroom). A block
  // of two column tiles (512 threads) is one per multiprocessor.
  static constexpr int min_blocks_with(size_t bytes) {
    return WG == 1 && DK <= 128 && 2 * (bytes + 1024) <= 228 * 1024 ? 2 : 1;
  }
  // State tiles (and update weights): two (chunk n's and chunk n + 1's, so a chunk needs no
  // barrier at its end) in the blocks of two column tiles; else one. Measured on the H200
  // (bench/logs/2026-11-30-h200-twostate-{forward,fused}-ab.txt): two were 6% faster in the
  // forward's blocks, 2-7% slower at D = 64 and 4-6% slower in the fused dk/dv scan (223 KB).
  static constexpr int kSBufs = WG == 2 && NB == 2 && !FUSED && bytes_with(2) <= 227 * 1024 ? 2 : 1;
  static constexpr int kEnd = kSHi + kSBufs * kSTile;
  static constexpr size_t kBytes = bytes_with(kSBufs);
  static constexpr int kMinBlocks = min_blocks_with(kBytes);
};

// The role of warp w (0..7) of a one-tile block in phases 1 and 2 (the scores and the
// outputs): row block mt = r % 4 and column half nh = r / 4 of r = nibble w of the table. Warp
// w runs on scheduler w % 4 of the multiprocessor, and the causal work of a role grows with mt
// (the scores right of the diagonal are skipped, the outputs sum 16·(mt + 1) columns of the
// scores), so the table evens the schedulers' shares (the MMAs that vary with the role, a chunk,
// per scheduler at D = 128: 96, 88, 48, 40 with r = w, at most 84 with the table; exhaustive
// search): 2-7% faster at D = 64 and compensated on the H200 (bench/logs/
// 2026-11-30-h200-warp-roles-ab.txt, -twostate-fused-ab.txt). The blocks of two tiles keep r = w:
// the table of the same search (80 MMAs each) was 3-6% slower there.
__device__ __forceinline__ int one_tile_role(int w) {
  constexpr unsigned long long kTable = 0x74625310ull;  // nibble w: the role of warp w
  return (int)((kTable >> (4 * w)) & 15);
}

// Barrier `id` (1..15; 0 is __syncthreads') over the first `threads` threads that reach it.
__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Input buffers for a key dim: DK = 64 double-buffers (two blocks per SM either way), DK = 256
// has room for one; DK = 128 takes 1 (two blocks per SM, each one's copies overlapping the
// other's compute: 7-11% faster on the H200 than 2 buffers and one block) unless the
// environment variable TNL_CUDA_TC_BUFFERS=2 asks for 2 (prefetch, one block per SM): a
// tuning knob.
inline int buffers_for(int dk) {
  if (dk <= 64) return 2;
  if (dk > 128) return 1;
  static const int nb = env_is("TNL_CUDA_TC_BUFFERS", '2') ? 2 : 1;
  return nb;
}

// Blocks of two column tiles (128 columns of dv, 16 warps sharing the X, Y tiles and splitting
// the scores, two input buffers, one block per SM) for rounded intermediates, 64 < dk <= 128
// and dv > 64, unless TNL_CUDA_TC_WIDE=0. On the H200 (bench/RESULTS.md) they were 3-7% faster
// there than two one-tile blocks per SM; not consistently faster with compensated
// intermediates (1-2% at N = 32K, 3% slower at 1K), slower with one input buffer, and within
// noise at dk = 64.
inline bool wide_for(int dk, int dv) {
  static const bool on = !env_is("TNL_CUDA_TC_WIDE", '0');
  return on && dk > 64 && dk <= 128 && dv > kET;
}

// Calls f(padded DK, buffers, column tiles per block) with the kernel configuration of key dim
// dk and value dim dv, each as std::integral_constant<int, ...>: the one table that launching
// and occupancy queries share.
template <bool SPLIT, class F>
decltype(auto) with_config(int dk, int dv, F&& f) {
  using K64 = std::integral_constant<int, 64>;
  using K128 = std::integral_constant<int, 128>;
  using K256 = std::integral_constant<int, 256>;
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  if constexpr (!SPLIT) {
    if (wide_for(dk, dv)) return f(K128{}, Two{}, Two{});
  }
  if (dk <= 64) return f(K64{}, Two{}, One{});
  if (dk <= 128) return buffers_for(dk) == 2 ? f(K128{}, Two{}, One{}) : f(K128{}, One{}, One{});
  return f(K256{}, One{}, One{});
}

template <class T>
struct Ops;
template <>
struct Ops<__nv_bfloat16> {
  static __device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 from_f(float x) { return __float2bfloat16_rn(x); }
  using T2 = __nv_bfloat162;
  static __device__ __forceinline__ T2 from_f2(float a, float b) { return __floats2bfloat162_rn(a, b); }
  static __device__ __forceinline__ float2 to_f2(T2 x) { return __bfloat1622float2(x); }
  static __device__ __forceinline__ void mma(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};
template <>
struct Ops<__half> {
  static __device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half from_f(float x) { return __float2half_rn(x); }
  using T2 = __half2;
  static __device__ __forceinline__ T2 from_f2(float a, float b) { return __floats2half2_rn(a, b); }
  static __device__ __forceinline__ float2 to_f2(T2 x) { return __half22float2(x); }
  static __device__ __forceinline__ void mma(float* c, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// Fragment loads through ldmatrix (each lane gives one 16-byte row address of an 8 x 8 tile).
// A (16 x 16) at (m0, k0): row-major storage A(m, k) = s[m·ld + k], or transposed storage
// A(m, k) = s[k·ld + m]. B for two n-tiles (16 x 8 each) at (k0, n0) and (k0, n0 + 8):
// n-major storage B(k, n) = s[n·ld + k], or k-major B(k, n) = s[k·ld + n].
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}
__device__ __forceinline__ void ldsm4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm4_t(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
template <class T>
__device__ __forceinline__ void frag_a(uint32_t* a, const T* s, int ld, int m0, int k0, int lane) {
  ldsm4(a, s + at(m0 + (lane % 16), k0 + (lane / 16) * 8, ld));
}
template <class T>
__device__ __forceinline__ void frag_a_t(uint32_t* a, const T* s, int ld, int m0, int k0, int lane) {
  ldsm4_t(a, s + at(k0 + (lane % 8) + (lane / 16) * 8, m0 + ((lane / 8) % 2) * 8, ld));
}
template <class T>
__device__ __forceinline__ void frag_b_n2(uint32_t* b0, uint32_t* b1, const T* s, int ld, int k0,
                                          int n0, int lane) {
  uint32_t r[4];
  ldsm4(r, s + at(n0 + (lane % 8) + (lane / 16) * 8, k0 + ((lane / 8) % 2) * 8, ld));
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}
template <class T>
__device__ __forceinline__ void frag_b_k2(uint32_t* b0, uint32_t* b1, const T* s, int ld, int k0,
                                          int n0, int lane) {
  uint32_t r[4];
  ldsm4_t(r, s + at(k0 + (lane % 8) + ((lane / 8) % 2) * 8, n0 + (lane / 16) * 8, ld));
  b0[0] = r[0];
  b0[1] = r[1];
  b1[0] = r[2];
  b1[1] = r[3];
}

// Stores (a, b) at hi[0], hi[1] rounded to T and, when SPLIT, their remainders at lo[0], lo[1].
template <class T, bool SPLIT>
__device__ __forceinline__ void store_split2(T* hi, T* lo, float a, float b) {
  using O = Ops<T>;
  const typename O::T2 h = O::from_f2(a, b);
  *reinterpret_cast<typename O::T2*>(hi) = h;
  if constexpr (SPLIT) {
    const float2 hf = O::to_f2(h);
    *reinterpret_cast<typename O::T2*>(lo) = O::from_f2(a - hf.x, b - hf.y);
  }
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }
__device__ __forceinline__ void cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::); }
template <int N>  // all but the newest N groups of this thread complete
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

struct SeqLoc {
  int64_t batch, begin, len;
};
__device__ __forceinline__ SeqLoc seq_loc(const ScanParams& p, int64_t s) {
  if (p.cu_seqlens) {
    const int64_t b = p.cu_seqlens[s], e = p.cu_seqlens[s + 1];
    return {0, b, e > b ? e - b : 0};
  }
  return {s, 0, p.seqlen};
}

// Rows [tau0, tau0 + C) of scan time (valid below tau_end), columns [col0, col0 + W) clipped to
// dim, raw 16-bit copies into dst (C, ld); zeros elsewhere. Element by element: the path for
// rows that are not 16-byte aligned (TileStream below is the vector path).
template <class T, int W, int NT>
__device__ __forceinline__ void load_tile(T* dst, int ld, const Rows& r, const SeqLoc& sq, int h,
                                          bool reverse, int64_t tau0, int64_t tau_end, int col0,
                                          int dim) {
  const T* base = static_cast<const T*>(r.data);
  for (int i = threadIdx.x; i < kC * W; i += NT) {
    const int row = i / W, col = i % W;
    const int64_t tau = tau0 + row;
    T val = Ops<T>::from_f(0.f);
    if (tau < tau_end && col0 + col < dim) {
      const int64_t tok = reverse ? sq.len - 1 - tau : tau;
      val = base[sq.batch * r.sb + (sq.begin + tok) * r.sn + h * r.sh + col0 + col];
    }
    dst[at(row, col, ld)] = val;
  }
}

// The 16-byte vector loads of one input's tiles, chunk after chunk, through cp.async
// (zero-filled outside the valid rows and columns; complete at the next cp_async_wait_* of
// this thread). The addresses are set up once per block: each chunk then costs a pointer step
// and a bounds test per copy (computing them from (token, head, column) per copy cost ~50
// integer instructions each, a quarter of the kernel's instructions).
template <class T, int W, int NT>
struct TileStream {
  static constexpr int kV = W / 8;                    // 16-byte vectors per row
  static constexpr int kRows = NT / kV;               // rows between one thread's copies
  static constexpr int kIters = kC * kV / NT;         // copies per thread per chunk
  static_assert(kC * kV % NT == 0, "a tile is a whole number of copies per thread");
  const T* next;   // this thread's first element of the next chunk
  int64_t tau;     // scan time of this thread's first row of the next chunk
  int dst0;        // this thread's first element in the tile
  bool col_ok;     // this thread's columns are inside dim

  __device__ __forceinline__ void init(const Rows& r, const SeqLoc& sq, int h, bool reverse,
                                       int64_t tau_begin, int col0, int dim, int ld) {
    const int row0 = threadIdx.x / kV, col = (threadIdx.x % kV) * 8;
    col_ok = col0 + col < dim;
    tau = tau_begin + row0;
    const int64_t tok = reverse ? sq.len - 1 - tau : tau;  // may be out of range: not read then
    next = static_cast<const T*>(r.data) + sq.batch * r.sb + (sq.begin + tok) * r.sn + h * r.sh +
           col0 + col;
    dst0 = row0 * ld + col;
  }
  // Copies the next chunk (rows at or past tau_end zero-filled) into the tile dst, rows ld apart.
  __device__ __forceinline__ void load(T* dst, int ld, const Rows& r, bool reverse, int64_t tau_end) {
    const int64_t row_step = reverse ? -r.sn : r.sn;
    const T* src = next;
    if (col_ok && tau + (kIters - 1) * kRows < tau_end) {  // all of this thread's rows valid
#pragma unroll
      for (int it = 0; it < kIters; ++it) {
        cp_async16(dst + dst0 + it * kRows * ld, src, true);
        src += kRows * row_step;
      }
    } else {
#pragma unroll
      for (int it = 0; it < kIters; ++it) {
        const bool valid = col_ok && tau + it * kRows < tau_end;
        cp_async16(dst + dst0 + it * kRows * ld, valid ? src : static_cast<const T*>(r.data), valid);
        src += kRows * row_step;
      }
    }
    next += kC * row_step;
    tau += kC;
  }
};

// oa = A B for one warp's output fragment, rows 16 mt, columns col + 8 j (j = 0..3): A the
// masked scores (C, C), rows lda apart (hi, and lo when SPLIT), zero right of the diagonal block
// so only k0 <= 16 mt is summed; B (C, ·) k-major, rows ldb apart.
template <class T, bool SPLIT>
__device__ __forceinline__ void causal_times(float (&oa)[4][4], const T* AHi, const T* ALo, int lda,
                                             const T* B, int ldb, int col, int mt, int lane) {
  using O = Ops<T>;
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) oa[j][r] = 0.f;
#pragma unroll
  for (int k0 = 0; k0 < kC; k0 += 16) {
    if (k0 > 16 * mt) break;  // warp-uniform
    uint32_t ah[4], al[4];
    frag_a(ah, AHi, lda, 16 * mt, k0, lane);
    if constexpr (SPLIT) frag_a(al, ALo, lda, 16 * mt, k0, lane);
#pragma unroll
    for (int j = 0; j < 4; j += 2) {
      uint32_t b0[2], b1[2];
      frag_b_k2(b0, b1, B, ldb, k0, col + 8 * j, lane);
      O::mma(oa[j], ah, b0);
      if constexpr (SPLIT) O::mma(oa[j], al, b0);
      O::mma(oa[j + 1], ah, b1);
      if constexpr (SPLIT) O::mma(oa[j + 1], al, b1);
    }
  }
}

// Writes one warp's output fragments of a chunk: rows row0 and row0 + 8 (of the n valid rows of
// the chunk at scan time tau0), columns col0 + 8 j, +1 (j = 0..3; col0 even) of a (B, N, H, dim)
// tensor, each value oa + coef[row] · os rounded once; columns at or past dim are skipped.
// vec2: every column pair is 4-byte aligned (one paired store).
template <class T>
__device__ __forceinline__ void store_rows(T* out, int64_t sb, int64_t sn, int64_t sh, int dim,
                                           int col0, int row0, const float (&oa)[4][4],
                                           const float (&os)[4][4], const float (&coef)[2],
                                           const SeqLoc& sq, int h, bool reverse, int64_t tau0,
                                           int n, bool vec2) {
  using O = Ops<T>;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int a = row0 + 8 * half;
    if (a >= n) continue;
    const int64_t tok = reverse ? sq.len - 1 - (tau0 + a) : tau0 + a;
    T* row = out + sq.batch * sb + (sq.begin + tok) * sn + h * sh;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = col0 + 8 * j;
      const float v0 = oa[j][2 * half] + coef[half] * os[j][2 * half];
      const float v1 = oa[j][2 * half + 1] + coef[half] * os[j][2 * half + 1];
      if (vec2) {
        if (c < dim) *reinterpret_cast<typename O::T2*>(row + c) = O::from_f2(v0, v1);
      } else {
        if (c < dim) row[c] = O::from_f(v0);
        if (c + 1 < dim) row[c + 1] = O::from_f(v1);
      }
    }
  }
}

// Whether every row of r starts 16-byte aligned (16-bit elements): TileStream's vector copies.
inline bool rows_aligned16(const Rows& r) {
  return reinterpret_cast<uintptr_t>(r.data) % 16 == 0 && r.sb % 8 == 0 && r.sn % 8 == 0 &&
         r.sh % 8 == 0;
}
// Whether the 16-byte copies serve p: dk and dv whole vectors and the rows of Y, Z (and of X
// when with_x) 16-byte aligned.
inline bool vec_rows(const ScanParams& p, bool with_x) {
  return p.dk % 8 == 0 && p.dv % 8 == 0 && rows_aligned16(p.y) && rows_aligned16(p.z) &&
         (!with_x || rows_aligned16(p.x));
}
// Whether every column pair of a (B, N, H, dim) 16-bit output is 4-byte aligned (paired stores).
inline bool pairs_aligned4(const void* out, int64_t sb, int64_t sn, int64_t sh, int dim) {
  return dim % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 4 == 0 && sb % 2 == 0 && sn % 2 == 0 &&
         sh % 2 == 0;
}

// WG column tiles of 64 per block (1 or 2): with two, warps 8-15 own columns 64-127 in phases
// 2 and 3 and the 16 warps share the input tiles and split the scores of phase 1.
//
// FUSED (rounded, DK = 128, WG = 2, two buffers; the backward's dv scan with X = K, Y = Q,
// Z = dO, plus p.x2 = V and p.out2 = dk): the dk scan's state is the transpose of the dv scan's
// R and its Y, Z are the dv scan's Z, Y, so one pass computes both outputs with one state
// update: warps 0-7 build A = c (K Qᵀ ⊙ M) and warps 8-15 A2 = c (V dOᵀ ⊙ M) in phase 1,
// phase 2 writes dv = A dO + α K R and then dk = A2 Q + α V Rᵀ, phase 3 updates R once.
// LIST: varlen with segments (scan_block, prepass_block).
template <class T, int DK, int NB, int WG, bool SPLIT, bool kLocal, bool FUSED = false, bool LIST = false>
__global__ void __launch_bounds__(kThreadsOf<WG>, (Smem<DK, NB, WG, SPLIT, FUSED>::kMinBlocks))
    chunk_scan_tc_kernel(const ScanParams p, const Slopes sl, bool vec, bool out_vec2) {
  static_assert(!FUSED || (!SPLIT && WG == 2 && DK == WG * kET),
                "the fused dk/dv scan: rounded, 128 x 128 state, two column tiles");
  using L = Smem<DK, NB, WG, SPLIT, FUSED>;
  constexpr int kThreads = kThreadsOf<WG>;
  using O = Ops<T>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sm = reinterpret_cast<T*>(smem_raw);
  T* AHi = sm + L::kAHi;   // (C, C)
  T* ALo = sm + L::kALo;
  T* A2 = sm + L::kA2;     // (C, C), FUSED only
  float* dec = reinterpret_cast<float*>(sm + L::kEnd);  // (C + 2)
  // Two state tiles and update-weight sets (kTwoS): chunk n uses set n % 2 (= buf), so a warp
  // may store chunk n + 1's state while another still reads chunk n's, and the one barrier of
  // a chunk is the one before its scores; the next chunk's copies are issued after it.
  constexpr bool kTwoS = L::kSBufs == 2;

  // warp: within its column tile; ec: the tile's first column within the block.
  const int warp = (threadIdx.x / 32) % 8, grp = threadIdx.x / 256, ec = kET * grp;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  int64_t shd;  // s·H + h
  int seg;
  if constexpr (kLocal && LIST) prepass_block<true>(p, blockIdx.x, shd, seg);  // the pre-pass's grid
  else scan_block<LIST>(p, blockIdx.x, shd, seg);
  const int h = (int)(shd % p.heads);
  const int64_t s = shd / p.heads;
  const int e0 = blockIdx.y * WG * kET;
  const SeqLoc sq = seq_loc(p, s);
  if (kLocal ? !segment_state_needed(p, seg, sq.len) : !segment_runs(p, seg, sq.len)) return;
  const int64_t seg_begin = (int64_t)seg * p.seg_len;
  const int64_t seg_end = p.num_segs == 1 ? sq.len : min(sq.len, seg_begin + p.seg_len);
  const float slope = sl.s[h];
  for (int i = threadIdx.x; i < kC + 2; i += kThreads) dec[i] = expf(-slope * (float)i);
  __syncthreads();  // dec is read before the first in-loop barrier (update weights)

  // State tiles of this warp: DK >= 128: m-tiles MT·warp + i, n-tiles 0..7;
  // DK = 64: m-tile warp % 4, n-tiles 4·(warp / 4) + j.
  constexpr int kMT = DK >= 128 ? DK / 128 : 1;
  constexpr int kNT = DK >= 128 ? 8 : 4;
  const int m_base = DK >= 128 ? warp * kMT : warp % 4;
  const int n_base = DK >= 128 ? 0 : 4 * (warp / 4);
  float st[kMT][kNT][4];  // (DK, ET) fp32 state fragments
  const int64_t state_off = shd * (int64_t)p.dk * p.dv;
  const StartState start = segment_start(p, shd, seg);
#pragma unroll
  for (int i = 0; i < kMT; ++i)
#pragma unroll
    for (int j = 0; j < kNT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        st[i][j][r] = 0.f;
        if (kLocal) continue;
        const int d = 16 * (m_base + i) + g + 8 * (r / 2);
        const int e = e0 + ec + 8 * (n_base + j) + 2 * t + (r % 2);
        if (d < p.dk && e < p.dv) st[i][j][r] = start.at(p, d, e);
      }

  // Phases 1-2: rows 16·mt, columns 32·nh (one column tile: one_tile_role's).
  int mt = warp % 4, nh = warp / 4;
  if constexpr (WG == 1 && !kLocal) {
    const int role = one_tile_role(warp);
    mt = role % 4;
    nh = role / 4;
  }
  // The mask and decay factors of this thread's score fragments, c·λ^{a-b} (zero above the
  // diagonal), the same for every chunk: row a - column b takes 10 values per thread,
  // d0 + 8(q - 3) - o for q = r/2 - j + 3 in 0..4 and o in {0, 1} (phase 1 below).
  float mask_decay[5][2];
  {
    const int d0 = 16 * mt - 32 * nh + g - 2 * t;
#pragma unroll
    for (int q = 0; q < 5; ++q)
#pragma unroll
      for (int o = 0; o < 2; ++o) {
        const int d = d0 + 8 * (q - 3) - o;
        mask_decay[q][o] = d >= 0 ? p.scale * dec[d] : 0.f;
      }
  }
  // The inter-chunk output coefficients α λ^{a+off} of this thread's two output rows.
  const float out_coef[2] = {p.alpha * dec[16 * mt + g + p.off_out], p.alpha * dec[16 * mt + g + 8 + p.off_out]};
  // Vector loads through cp.async: with two buffers the next chunk's copies are in flight
  // while this one is computed; with one, a chunk's copies are waited for at once.
  TileStream<T, DK, kThreads> xs, ys;
  TileStream<T, WG * kET, kThreads> zs, x2s;
  constexpr bool kX2 = FUSED && !kLocal;
  if (vec) {
    if (!kLocal) xs.init(p.x, sq, h, p.reverse, seg_begin, 0, p.dk, L::kLdK);
    ys.init(p.y, sq, h, p.reverse, seg_begin, 0, p.dk, L::kLdK);
    zs.init(p.z, sq, h, p.reverse, seg_begin, e0, p.dv, L::kLdE);
    if (kX2) x2s.init(p.x2, sq, h, p.reverse, seg_begin, 0, p.dv, L::kLdE);
  }
  auto load_async = [&](int buf) {
    T* base = sm + buf * L::kTile;
    if (!kLocal) xs.load(base + L::kXo, L::kLdK, p.x, p.reverse, seg_end);
    ys.load(base + L::kYo, L::kLdK, p.y, p.reverse, seg_end);
    zs.load(base + L::kZo, L::kLdE, p.z, p.reverse, seg_end);
    if (kX2) x2s.load(base + L::kX2o, L::kLdE, p.x2, p.reverse, seg_end);
    cp_async_commit();
  };
  constexpr bool kPrefetch = L::kBuffers == 2;
  if (vec && kPrefetch && seg_begin < seg_end) load_async(0);
  int buf = 0;
  for (int64_t tau0 = seg_begin; tau0 < seg_end; tau0 += kC, buf ^= (L::kBuffers - 1)) {
    const int n = (int)min((int64_t)kC, seg_end - tau0);
    T* Xs = sm + buf * L::kTile + L::kXo;  // (C, DK)
    T* Ys = sm + buf * L::kTile + L::kYo;  // (C, DK)
    T* Zs = sm + buf * L::kTile + L::kZo;  // (C, WG·ET)
    T* X2s = sm + buf * L::kTile + L::kX2o;  // (C, WG·ET), FUSED only
    const int sb = kTwoS ? buf : 0;
    T* SHi = sm + L::kSHi + sb * L::kSTile;  // (DK, WG·ET)
    T* SLo = SHi + DK * L::kLdE;             // (DK, WG·ET), SPLIT only
    float* wt = dec + kC + 2 + sb * kC;      // (C) update weights of this chunk
    if (vec && kPrefetch && kTwoS) {
      cp_async_wait_all();  // this chunk's copies: the next chunk's are issued after the barrier
    } else if (vec && kPrefetch) {
      if (tau0 + kC < seg_end) {  // prefetch the next chunk into the other buffer
        load_async(buf ^ 1);
        cp_async_wait_one();
      } else {
        cp_async_wait_all();
      }
    } else if (vec) {
      load_async(buf);
      cp_async_wait_all();
    } else {
      if (!kLocal) load_tile<T, DK, kThreads>(Xs, L::kLdK, p.x, sq, h, p.reverse, tau0, seg_end, 0, p.dk);
      load_tile<T, DK, kThreads>(Ys, L::kLdK, p.y, sq, h, p.reverse, tau0, seg_end, 0, p.dk);
      load_tile<T, WG * kET, kThreads>(Zs, L::kLdE, p.z, sq, h, p.reverse, tau0, seg_end, e0, p.dv);
      if (kX2) load_tile<T, WG * kET, kThreads>(X2s, L::kLdE, p.x2, sq, h, p.reverse, tau0, seg_end, 0, p.dv);
    }
    if (!kLocal) {  // S (hi, and lo when SPLIT) for this chunk's X S
#pragma unroll
      for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 4; r += 2) {
            const int d = 16 * (m_base + i) + g + 8 * (r / 2);
            const int e = ec + 8 * (n_base + j) + 2 * t;
            store_split2<T, SPLIT>(SHi + at(d, e, L::kLdE), SLo + at(d, e, L::kLdE), st[i][j][r], st[i][j][r + 1]);
          }
    }
    if (threadIdx.x < kC) {
      const int b = threadIdx.x;
      wt[b] = b < n ? p.beta * dec[n - 1 - b + p.off_upd] : 0.f;
    }
    __syncthreads();
    // kTwoS: every warp is past the chunk that used the other buffer.
    if (vec && kPrefetch && kTwoS && tau0 + kC < seg_end) load_async(buf ^ 1);

    if (!kLocal) {
      // Phase 1: A = c (X Yᵀ ⊙ M), rows 16 mt, columns 32 nh + 8 j for this warp's n-tiles
      // j0 .. j0 + kJ1 - 1 (all four, or with two column tiles two: 16 grp + 32 nh + ...);
      // hi (+ lo) into shared memory.
      // FUSED: all four n-tiles, warps 8-15 building A2 = c (V dOᵀ ⊙ M) from X2 and Z instead.
      constexpr int kJ1 = FUSED ? 4 : 4 / WG;
      const int j0 = FUSED ? 0 : kJ1 * grp;
      const bool second = FUSED && grp == 1;
      const T* P1a = second ? X2s : Xs;  // (C, K1) A operand rows
      const T* P1b = second ? Zs : Ys;   // (C, K1) B operand rows (Bᵀ)
      const int ld1 = second ? L::kLdE : L::kLdK;
      T* P1out = second ? A2 : AHi;
      float acc[kJ1][4];
#pragma unroll
      for (int j = 0; j < kJ1; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[j][r] = 0.f;
      // Blocks right of the diagonal are all zero: columns from 32 nh + 8 j0 past row 16 mt + 15.
      const bool live = 32 * nh + 8 * j0 <= 16 * mt + 15;
      if (live) {
#pragma unroll 4
        for (int k0 = 0; k0 < DK; k0 += 16) {
          uint32_t a[4];
          frag_a(a, P1a, ld1, 16 * mt, k0, lane);
#pragma unroll
          for (int j = 0; j < kJ1; j += 2) {
            uint32_t b0[2], b1[2];
            frag_b_n2(b0, b1, P1b, ld1, k0, 32 * nh + 8 * (j0 + j), lane);
            O::mma(acc[j], a, b0);
            O::mma(acc[j + 1], a, b1);
          }
        }
      }
#pragma unroll
      for (int jj = 0; jj < kJ1; ++jj)
#pragma unroll
        for (int r = 0; r < 4; r += 2) {
          const int j = j0 + jj;
          const int a_ = 16 * mt + g + 8 * (r / 2);
          const int b_ = 32 * nh + 8 * j + 2 * t;
          const float v0 = mask_decay[r / 2 - j + 3][0] * acc[jj][r];      // c λ^{a-b}, 0 if b > a
          const float v1 = mask_decay[r / 2 - j + 3][1] * acc[jj][r + 1];  // c λ^{a-b-1}
          store_split2<T, SPLIT>(P1out + at(a_, b_, L::kLdC), ALo + at(a_, b_, L::kLdC), v0, v1);
        }
    }
    // Rows 16 mt of the scores are complete: phase 2 reads only the rows that the warps of its
    // own mt wrote (WG·2 warps; the pre-pass has no scores).
    if constexpr (!kLocal) named_sync(1 + mt, 64 * WG);

    if (!kLocal) {
      // Phase 2: O = A Z + α λ^{a+off} X S, rows 16 mt, columns ec + 32 nh.
      float oa[4][4], os[4][4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) os[j][r] = 0.f;
      causal_times<T, SPLIT>(oa, AHi, ALo, L::kLdC, Zs, L::kLdE, ec + 32 * nh, mt, lane);
#pragma unroll 4
      for (int k0 = 0; k0 < DK; k0 += 16) {
        uint32_t a[4];
        frag_a(a, Xs, L::kLdK, 16 * mt, k0, lane);
#pragma unroll
        for (int j = 0; j < 4; j += 2) {
          uint32_t h0[2], h1[2];
          frag_b_k2(h0, h1, SHi, L::kLdE, k0, ec + 32 * nh + 8 * j, lane);
          O::mma(os[j], a, h0);
          O::mma(os[j + 1], a, h1);
          if constexpr (SPLIT) {
            uint32_t l0[2], l1[2];
            frag_b_k2(l0, l1, SLo, L::kLdE, k0, ec + 32 * nh + 8 * j, lane);
            O::mma(os[j], a, l0);
            O::mma(os[j + 1], a, l1);
          }
        }
      }
      store_rows<T>(static_cast<T*>(p.out), p.out_sb, p.out_sn, p.out_sh, p.dv,
                    e0 + ec + 32 * nh + 2 * t, 16 * mt + g, oa, os, out_coef, sq, h, p.reverse,
                    tau0, n, out_vec2);
    }

    if constexpr (FUSED && !kLocal) {
      // Phase 2b: dk = A2 Q + α λ^{a+off} V Rᵀ, rows 16 mt, columns (of D) ec + 32 nh: Q is the
      // Y tile (C, DK); V the X2 tile (C, E); Rᵀ the B operand read from the rounded R tile
      // (d rows, e contiguous: n = d, k = e).
      float oa[4][4], os[4][4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) os[j][r] = 0.f;
      causal_times<T, false>(oa, A2, A2, L::kLdC, Ys, L::kLdK, ec + 32 * nh, mt, lane);
#pragma unroll 4
      for (int k0 = 0; k0 < WG * kET; k0 += 16) {
        uint32_t a[4];
        frag_a(a, X2s, L::kLdE, 16 * mt, k0, lane);
#pragma unroll
        for (int j = 0; j < 4; j += 2) {
          uint32_t b0[2], b1[2];
          frag_b_n2(b0, b1, SHi, L::kLdE, k0, ec + 32 * nh + 8 * j, lane);
          O::mma(os[j], a, b0);
          O::mma(os[j + 1], a, b1);
        }
      }
      store_rows<T>(static_cast<T*>(p.out2), p.out2_sb, p.out2_sn, p.out2_sh, p.dk,
                    ec + 32 * nh + 2 * t, 16 * mt + g, oa, os, out_coef, sq, h, p.reverse, tau0,
                    n, out_vec2);
    }

    // Phase 3: S = λ^n S + (W Y)ᵀ Z, W = diag(β λ^{n-1-b+off}) applied to the Yᵀ fragments in
    // registers and split hi + lo there when SPLIT (Y and Z enter exactly), this warp's state
    // fragments.
    {
      const float dn = dec[n];
#pragma unroll
      for (int i = 0; i < kMT; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int r = 0; r < 4; ++r) st[i][j][r] *= dn;
#pragma unroll
      for (int k0 = 0; k0 < kC; k0 += 16) {
        // a[0], a[1] hold k = k0 + 2t, +1; a[2], a[3] hold k = k0 + 2t + 8, +9.
        const float w0 = wt[k0 + 2 * t], w1 = wt[k0 + 2 * t + 1];
        const float w8 = wt[k0 + 2 * t + 8], w9 = wt[k0 + 2 * t + 9];
        uint32_t bz[kNT][2];
#pragma unroll
        for (int j = 0; j < kNT; j += 2)
          frag_b_k2(bz[j], bz[j + 1], Zs, L::kLdE, k0, ec + 8 * (n_base + j), lane);
#pragma unroll
        for (int i = 0; i < kMT; ++i) {
          uint32_t a[4], ah[4], al[4];
          frag_a_t(a, Ys, L::kLdK, 16 * (m_base + i), k0, lane);
#pragma unroll
          for (int q = 0; q < 4; ++q) {
            const float2 y = O::to_f2(*reinterpret_cast<const typename O::T2*>(&a[q]));
            const float x0 = y.x * (q < 2 ? w0 : w8), x1 = y.y * (q < 2 ? w1 : w9);
            const typename O::T2 hi = O::from_f2(x0, x1);
            ah[q] = *reinterpret_cast<const uint32_t*>(&hi);
            if constexpr (SPLIT) {
              const float2 hf = O::to_f2(hi);
              const typename O::T2 lo = O::from_f2(x0 - hf.x, x1 - hf.y);
              al[q] = *reinterpret_cast<const uint32_t*>(&lo);
            }
          }
#pragma unroll
          for (int j = 0; j < kNT; ++j) {
            O::mma(st[i][j], ah, bz[j]);
            if constexpr (SPLIT) O::mma(st[i][j], al, bz[j]);
          }
        }
      }
    }
    if constexpr (!kTwoS) __syncthreads();  // one state tile, weights, and input buffer reused
  }

  float* dst = nullptr;
  if (kLocal) {
    dst = segment_local_state(p, shd, seg);
  } else if (p.final_state && segment_ends_sequence(p, seg, sq.len)) {
    dst = p.final_state + state_off;
  }
  if (dst) {
#pragma unroll
    for (int i = 0; i < kMT; ++i)
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int d = 16 * (m_base + i) + g + 8 * (r / 2);
          const int e = e0 + ec + 8 * (n_base + j) + 2 * t + (r % 2);
          if (d < p.dk && e < p.dv) dst[(int64_t)d * p.dv + e] = st[i][j][r];
        }
  }
}

template <class T, int DK, int NB, int WG, bool SPLIT, bool FUSED = false>
void launch_dk(const ScanParams& p, const Slopes& sl, bool local_pass, cudaStream_t stream) {
  using L = Smem<DK, NB, WG, SPLIT, FUSED>;
  const dim3 grid((unsigned)(local_pass && p.split_segs ? prepass_grid(p) : scan_grid(p)),
                  (unsigned)((p.dv + WG * kET - 1) / (WG * kET)));
  // 16-byte loads when every row of X, Y, Z starts 16-byte aligned and the dims are full vectors.
  const bool vec = vec_rows(p, !local_pass) && (local_pass || !FUSED || rows_aligned16(p.x2));
  // 4-byte output stores of column pairs when every pair is aligned (both outputs when FUSED).
  const bool out_vec2 = pairs_aligned4(p.out, p.out_sb, p.out_sn, p.out_sh, p.dv) &&
                        (!FUSED || pairs_aligned4(p.out2, p.out2_sb, p.out2_sn, p.out2_sh, p.dk));
  auto kern = p.split_segs ? (local_pass ? chunk_scan_tc_kernel<T, DK, NB, WG, SPLIT, true, FUSED, true>
                                        : chunk_scan_tc_kernel<T, DK, NB, WG, SPLIT, false, FUSED, true>)
                           : (local_pass ? chunk_scan_tc_kernel<T, DK, NB, WG, SPLIT, true, FUSED>
                                        : chunk_scan_tc_kernel<T, DK, NB, WG, SPLIT, false, FUSED>);
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)L::kBytes));
  kern<<<grid, kThreadsOf<WG>, L::kBytes, stream>>>(p, sl, vec, out_vec2);
  TNL_CUDA_CHECK_LAUNCH();
}

template <class T, bool SPLIT>
void launch_split(const ScanParams& p, const Slopes& sl, bool local_pass, cudaStream_t stream) {
  if constexpr (!SPLIT) {
    if (p.fused) return launch_dk<T, 128, 2, 2, false, true>(p, sl, local_pass, stream);
  }
  with_config<SPLIT>(p.dk, p.dv, [&](auto dk, auto nb, auto wg) {
    launch_dk<T, decltype(dk)::value, decltype(nb)::value, decltype(wg)::value, SPLIT>(
        p, sl, local_pass, stream);
  });
}

#include "backends/cuda/prepass_tc.cuh"

template <class T>
void launch(const ScanParams& p, const Slopes& sl, bool local_pass, cudaStream_t stream) {
  if (local_pass && prepass_gemm_serves<T>(p)) {  // the pre-pass as one GEMM per segment
    if (p.compensated) return launch_prepass_gemm<T, true>(p, sl, stream);
    return launch_prepass_gemm<T, false>(p, sl, stream);
  }
  if (local_pass && p.pre_split != 1)
    throw std::logic_error("chunk scan: the chain pre-pass writes one state per segment (pre_split 1)");
  if (p.compensated) return launch_split<T, true>(p, sl, local_pass, stream);
  return launch_split<T, false>(p, sl, local_pass, stream);
}

// Blocks of the (full-pass) kernel resident on one multiprocessor, from the occupancy
// calculator (shared memory and registers), asked once per kernel.
template <class T, int DK, int NB, int WG, bool SPLIT>
int blocks_per_sm_dk() {
  static const int blocks = [] {
    auto kern = chunk_scan_tc_kernel<T, DK, NB, WG, SPLIT, false>;
    const int bytes = (int)Smem<DK, NB, WG, SPLIT>::kBytes;
    TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    int n = 0;
    TNL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, kThreadsOf<WG>, bytes));
    return n > 0 ? n : 1;
  }();
  return blocks;
}

// 64-column tiles resident on one multiprocessor (blocks per SM times tiles per block).
template <class T, bool SPLIT>
int tiles_per_sm_split(int dk, int dv) {
  return with_config<SPLIT>(dk, dv, [](auto d, auto nb, auto wg) {
    return decltype(wg)::value * blocks_per_sm_dk<T, decltype(d)::value, decltype(nb)::value,
                                                  decltype(wg)::value, SPLIT>();
  });
}

template <class T>
int tiles_per_sm(int dk, int dv, bool compensated) {
  return compensated ? tiles_per_sm_split<T, true>(dk, dv) : tiles_per_sm_split<T, false>(dk, dv);
}

}  // namespace tc
}  // namespace tnl::cuda
