// chunk_scan_tma.cuh: the chunked scan (chunk_scan.h) as a warp-specialized sm_90a kernel: one
// producer warp copies the X, Y, Z tiles of each chunk with TMA bulk tensor copies into
// 128-byte-swizzled shared memory (NB stages, full/empty mbarriers), two consumer warpgroups run
// every product on wgmma. For fp16/bf16 inputs with rounded or compensated (SPLIT: hi + lo
// parts of the derived operands) intermediates, full passes (not the pre-pass, not the fused
// dk/dv scan), dense or packed (varlen; TNL_CUDA_TMA_VARLEN=0 keeps those on mma.sync) batches,
// 16-byte aligned rows, and dk <= 64 (padded to 64), 64 < dk <= 128 (padded to 128) with
// dv > 64, or 128 < dk <= 256 (padded to 256), in forward time or reversed (REVERSE:
// the backward's dk and dv scans where the fused one does not run). Chunk C = 64. The default
// there on sm_90 (H100/H200): 1.4-1.8x the mma.sync kernel's speed when rounded
// (bench/RESULTS.md); TNL_CUDA_TMA=0 turns it off, TNL_CUDA_TMA_SPLIT=0 for the compensated mode
// only, TNL_CUDA_TMA_D256=0 for the scans D > 128 brings (TNL_CUDA_TMA_D256_SPLIT=0 for their
// compensated mode). The fused dk/dv scan on the same design:
// chunk_scan_tma_bwd.cuh.
//
// A block is 3 warpgroups over one (sequence, head, segment) and 128 value columns:
//   warpgroup 0: the producer (one thread issues the copies; 40 registers a thread);
//   warpgroup 1 + w (w = 0, 1): value columns 64w..64w+63 of the block, its part of the state
//   S (128, 64) fp32 in registers (64 a thread) and of the output.
// (BlockShape: with dk <= 64, X and Y are one 64-column half and the state (64, 64), 32 registers
// a thread; with dv <= 64 too, a block is the producer and one consumer, 64 value columns, two
// blocks a multiprocessor. With dk > 128, X and Y are four halves, the state (256, 64) 128
// registers a thread, and a block the producer and one consumer of 64 value columns, one block a
// multiprocessor.)
// Per chunk a consumer warpgroup (a = row of the chunk, b = column, d = key, e = value column):
//   S rounded -> shared memory (B of X S), Zw = w_b Z(b, e) -> shared memory (B of the update),
//   group 1: P  = X Yᵀ                   (C, C)    A = X, B = Y (swizzled, K-major)
//   group 2: O  = X S                    (C, 64)   B = S (core-matrix layout, MN-major)
//   group 3: S  = λ^n S + Yᵀ Zw           (128, 64) A = Yᵀ (swizzled, M-major), B = Zw
//   group 4: O  = α λ^{a+off} O + (c λ^{a-b} M ⊙ P) Z    A = masked P (registers), B = Z
//                                                  (swizzled, N-major)
// then releases the stage to the producer and writes its outputs to a swizzled tile that one
// TMA bulk tensor store copies out (after the next chunk's first barrier). The two consumer
// warpgroups share the input tiles and nothing else: their only barriers are their own.
//
// Tiles: X, Y, Z are each two 64-column halves (64 rows of 128 bytes, 8 KB), as TMA writes them
// with CU_TENSOR_MAP_SWIZZLE_128B: 16-byte piece c of row r at r·128 + (c ^ r % 8)·16, every
// half 1024-byte aligned. wgmma reads them through 128-byte-swizzle descriptors (SBO = 1024:
// eight 128-byte rows; LBO unused, one 64-element atom across M/N).
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "backends/cuda/chunk_scan_wgmma.cuh"
#include "backends/cuda/env_switch.h"

namespace tnl::cuda {
namespace tma {

using tc::kC;
using tc::Ops;
using tc::SeqLoc;
using wg::mask_scores;
using wg::scale_acc_rows;

constexpr int kHalf = 64 * 128;   // bytes of a 64 x 64 swizzled half tile

// x, opaque to the compiler (an asm move): it cannot see through it to fold or rematerialize
// what is derived from it. Inside the chunk loop (the fused scan's descriptors): computed where
// they are used (hoisted out of the loop, the 40 of a chunk would take 80 registers for the whole
// loop). Before the loop (the LIST scans' per-warpgroup offsets): computed once and kept.
__device__ __forceinline__ uint64_t opaque(uint64_t x) {
  asm volatile("mov.b64 %0, %0;\n" : "+l"(x));
  return x;
}
__device__ __forceinline__ int opaque32(int x) {  // the same for an int
  asm volatile("mov.b32 %0, %0;\n" : "+r"(x));
  return x;
}
constexpr int kThreads = 3 * 128;  // producer warpgroup + two consumer warpgroups

// The scan block's shape: KH 64-column halves of dk (1: dk <= 64, 2: dk <= 128, 4: dk <= 256)
// and NW consumer warpgroups of 64 value columns each (1: a block of 64 columns, 2: of 128),
// after a producer warpgroup. Blocks of one consumer run two to a multiprocessor, except at
// KH = 4: its stages (72 KB each) and its state (128 registers a thread) fit once.
template <int KH, int NW>
struct BlockShape {
  static_assert(KH == 1 || KH == 2 || KH == 4, "dk in 64-column halves: 1, 2 or 4");
  static_assert(KH < 4 || NW == 1, "dk > 128: one consumer (its state is 128 registers a thread)");
  static constexpr int kThreads = 128 * (1 + NW);
  static constexpr int kCols = 64 * NW;  // value columns of a block
  static constexpr int kMinBlocks = NW == 1 && KH < 4 ? 2 : 1;
  // setmaxnreg: what the producer gives up and the consumers take (the block's registers at
  // launch, kMinBlocks blocks on a multiprocessor's 64K, split between the roles). KH = 4: 248,
  // as many as the whole block may have at launch (256 threads, one block).
  static constexpr int kProducerRegs = 40;
  static constexpr int kConsumerRegs = KH == 4 ? 248 : NW == 1 ? 216 : 232;
  // The scores' mask factors: in registers (32 a thread, mask_factors), or at KH = 4, where the
  // state takes those registers, from the λ table in shared memory every chunk (mask_scores).
  static constexpr bool kMaskInRegs = KH < 4;
};

// SPLIT (compensated): the state and the weighted rows as hi + lo tiles (the lo tile right after
// the hi one); 224 KB of tiles then.
// KH, NW: BlockShape's (X, Y of KH halves, Z of NW).
template <int NB, bool SPLIT = false, int KH = 2, int NW = 2>
struct Layout {  // byte offsets from the 1024-aligned base
  static constexpr int kX = 0, kY = KH * kHalf, kZ = 2 * KH * kHalf;  // within a stage
  static constexpr int kStage = (2 * KH + NW) * kHalf;
  static constexpr int kParts = SPLIT ? 2 : 1;
  using S = wg::CoreTile<true, 64, 64 * KH>;  // (e, d) per consumer: B of X S
  using Zw = wg::CoreTile<true, 64, kC>;  // (e, b) = w_b Z(b, e) per consumer: B of the update
  static constexpr int kSo = NB * kStage;                  // consumer w's hi at kSo + w·kParts·S::kBytes
  static constexpr int kZwo = kSo + NW * kParts * S::kBytes;
  static constexpr int kOuto = kZwo + NW * kParts * Zw::kBytes;  // TMA_OUT: 2 swizzled (C, 64) tiles per consumer
  // ... none in the compensated layout of four dk halves (its hi + lo tiles leave no room: the
  // outputs are stored from registers)
  static constexpr int kOutTiles = KH == 4 && SPLIT ? 0 : 2 * NW;
  static constexpr int kDec = kOuto + kOutTiles * kHalf;   // λ^Δ, Δ = 0..C+1, fp32
  static constexpr int kBar = kDec + 4 * (kC + 2 + 2);     // full[NB], empty[NB]: 8 bytes each
  static constexpr size_t kBytes = kBar + 16 * NB + 1024;  // + slack to align the base
};

// 128-byte-swizzle wgmma descriptor of a tile at shared address `addr`.
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  return (uint64_t)((addr >> 4) & 0x3FFF) | ((uint64_t)1 << 16) | ((uint64_t)(1024 >> 4) << 32) |
         ((uint64_t)1 << 62);
}

__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(tc::smem_addr(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(tc::smem_addr(bar)),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(tc::smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(tc::smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// One (64, 64) box of a 4-d tensor map at element coordinates (c0, c1, c2, c3) into `dst`.
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, int c0, int c1, int c2,
                                         int c3, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
      "%3, %4, %5}], [%6];\n" ::"r"(tc::smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(tc::smem_addr(bar))
      : "memory");
}

// The two 64-column halves (64 x 64 boxes, kHalf bytes apart at dst) of columns c0..c0+127.
__device__ __forceinline__ void tma_load_pair(unsigned char* dst, const CUtensorMap* map, int c0, int c1, int c2,
                                              int c3, uint64_t* bar) {
  tma_load(dst, map, c0, c1, c2, c3, bar);
  tma_load(dst + kHalf, map, c0 + 64, c1, c2, c3, bar);
}
// N (1, 2 or 4) such halves: columns c0..c0+64N-1.
template <int N>
__device__ __forceinline__ void tma_load_halves(unsigned char* dst, const CUtensorMap* map, int c0, int c1, int c2,
                                                int c3, uint64_t* bar) {
  static_assert(N == 1 || N == 2 || N == 4, "one, two or four halves");
  if constexpr (N == 4) {
    tma_load_pair(dst, map, c0, c1, c2, c3, bar);
    tma_load_pair(dst + 2 * kHalf, map, c0 + 128, c1, c2, c3, bar);
  } else if constexpr (N == 2) {
    tma_load_pair(dst, map, c0, c1, c2, c3, bar);
  } else {
    tma_load(dst, map, c0, c1, c2, c3, bar);
  }
}

// The block's 1024-byte aligned shared base, as an offset from smem_raw (so that the compiler
// keeps the shared state space: LDS/STS, not generic loads and stores).
__device__ __forceinline__ unsigned char* aligned_base(unsigned char* smem_raw) {
  return smem_raw + ((1024u - (tc::smem_addr(smem_raw) & 1023u)) & 1023u);
}

// The block's sequence s, head h and segment seg (scan_block<LIST>, shd = s·H + h).
template <bool LIST>
struct BlockIndex {
  int seg, h;
  int64_t shd, s;
  __device__ __forceinline__ explicit BlockIndex(const ScanParams& p) {
    scan_block<LIST>(p, blockIdx.x, shd, seg);
    h = (int)(shd % p.heads);
    s = shd / p.heads;
  }
};

// The first token row of the TMA box of the chunk at scan time tau in the (dim, N or T, H, S or
// 1) tensor map: token tau of the sequence, or reversed the box that ends at its token len - 1 -
// tau (starting before the sequence when the chunk is partial: rows of the previous sequence, or
// zeros before row 0; the masks and update weights drop them, and such a chunk is stored from
// registers).
template <bool REVERSE>
__device__ __forceinline__ int box_row(const SeqLoc& sq, int64_t tau) {
  return (int)(sq.begin + (REVERSE ? sq.len - tau - kC : tau));
}

// Varlen, a partial chunk of n rows: zeroes its other tile rows ([n, 64) forward, [0, 64 - n)
// reversed: a neighbouring sequence's rows, which a dense batch's zero fill leaves at zero) in
// `halves` swizzled (64, 64) halves at dst, so that nothing there, not even a NaN, reaches this
// sequence through a product. 16 bytes a step over threads tid of nthreads.
template <bool REVERSE>
__device__ __forceinline__ void zero_foreign_rows(unsigned char* dst, int halves, int n, int tid, int nthreads) {
  const int r0 = REVERSE ? 0 : n, pieces = (kC - n) * 8;
  for (int hf = 0; hf < halves; ++hf)
    for (int q = tid; q < pieces; q += nthreads)
      *reinterpret_cast<uint4*>(dst + hf * kHalf + r0 * 128 + q * 16) = make_uint4(0u, 0u, 0u, 0u);
}

// What every block of a TMA scan does first: the decay table λ^Δ (Δ = 0..C+1) and the mbarriers
// of NB stages (full: the producer's expect_tx, completed by the copies; empty: one arrival per
// consumer warp, `consumer_warps` of them), then a block barrier. Blocks have at least C + 2 threads.
template <int NB, int consumer_warps = 8>
__device__ __forceinline__ void block_setup(float* dec, uint64_t* full, uint64_t* empty, float slope) {
  for (int i = threadIdx.x; i < kC + 2; i += kThreads) dec[i] = expf(-slope * (float)i);
  if (threadIdx.x == 0) {
    for (int i = 0; i < NB; ++i) {
      mbar_init(&full[i], 1);   // the producer's expect_tx; the copies complete it
      mbar_init(&empty[i], consumer_warps);  // one arrival per consumer warp
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
}

// The producer thread: chunk i (scan time tau) waits for its stage (i % NB) to be released,
// expects stage_bytes on the stage's full barrier and issues its copies, load(stage base, tau,
// full barrier).
template <int NB, class Load>
__device__ __forceinline__ void produce(unsigned char* sm, int stage_bytes, uint64_t* full, uint64_t* empty,
                                        int64_t seg_begin, int64_t seg_end, Load load) {
  int i = 0;
  for (int64_t tau = seg_begin; tau < seg_end; tau += kC, ++i) {
    const int stage = i % NB;
    if (i >= NB) mbar_wait(&empty[stage], (uint32_t)((i / NB - 1) & 1));
    unsigned char* base = sm + stage * stage_bytes;
    mbar_expect_tx(&full[stage], stage_bytes);
    load(base, tau, &full[stage]);
  }
}

// A consumer thread's part of the state: columns e0..e0+63 (its warpgroup's), fp32, st[m][i] =
// element (d, e) = (64m + 16·warp + g + 8(i%4 / 2), e0 + 8(i/4) + 2t + i%2), the layout of an
// m64n64 wgmma accumulator per 64-row half m.
struct StatePart {
  int warp, g, t, e0;
  // Element k = 32m + i: its (d, e), and whether they are in range.
  __device__ __forceinline__ bool elem(const ScanParams& p, int k, int& d, int& e) const {
    const int m = k / 32, i = k % 32, j = i / 4, r = i % 4;
    d = 64 * m + 16 * warp + g + 8 * (r / 2);
    e = e0 + 8 * j + 2 * t + (r % 2);
    return d < p.dk && e < p.dv;
  }
};

// st = the state this part starts segment `seg` from: the initial state's (zero when none) or
// the segment prefix's (code run once a block: off the path when the state starts at zero).
template <int KH>
__device__ __forceinline__ void start_state(float (&st)[KH][32], const ScanParams& p, const StatePart& o,
                                            int64_t shd, int seg) {
#pragma unroll
  for (int m = 0; m < KH; ++m)
#pragma unroll
    for (int i = 0; i < 32; ++i) st[m][i] = 0.f;
  if (p.init || seg > 0) {
    const StartState start = segment_start(p, shd, seg);
#pragma unroll
    for (int k = 0; k < 32 * KH; ++k) {
      int d, e;
      if (o.elem(p, k, d, e)) st[k / 32][k % 32] = start.at(p, d, e);
    }
  }
}

// The final state (the blocks of the segment that ends the sequence of `len` scan rows), this
// part of it.
template <int KH>
__device__ __forceinline__ void store_final_state(const float (&st)[KH][32], const ScanParams& p,
                                                  const StatePart& o, int64_t shd, int seg, int64_t len) {
  if (p.final_state && segment_ends_sequence(p, seg, len)) {
    const int64_t state_off = shd * (int64_t)p.dk * p.dv;
#pragma unroll
    for (int m = 0; m < KH; ++m)
#pragma unroll
      for (int q = 0; q < 32; ++q) {
        const int j = q / 4, r = q % 4;
        const int d = 64 * m + 16 * o.warp + o.g + 8 * (r / 2);
        const int e = o.e0 + 8 * j + 2 * o.t + (r % 2);
        if (d < p.dk && e < p.dv) p.final_state[state_off + (int64_t)d * p.dv + e] = st[m][q];
      }
  }
}

// The update's weighted rows, Zw(e, b) = w(b) Z(b, e), from one swizzled (64, 64) half `src` to
// the core-matrix tile `dst` by the 128 threads of a warpgroup (thread tid): 16-byte pieces
// (b, 8c..8c+7), 8 lanes on 8 rows of one piece (conflict-free reads of the swizzled rows, 128
// contiguous bytes of Zw written).
// SPLIT: the rounded products to dst and their remainders, rounded, to dst_lo (compensated).
template <class T, class Zw, class Weight, bool SPLIT = false>
__device__ __forceinline__ void weight_rows(unsigned char* dst, const unsigned char* src, int tid, Weight w_of,
                                            unsigned char* dst_lo = nullptr) {
  using O = Ops<T>;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int q = tid + 128 * k;
    const int b = 8 * (q / 64) + q % 8, c = (q / 8) % 8;
    uint4 v = *reinterpret_cast<const uint4*>(src + b * 128 + ((c ^ (b % 8)) << 4));
    const float w = w_of(b);
    uint4 lo;
    typename O::T2* v2 = reinterpret_cast<typename O::T2*>(&v);
    typename O::T2* lo2 = reinterpret_cast<typename O::T2*>(&lo);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const float2 f = O::to_f2(v2[u]);
      const float x0 = f.x * w, x1 = f.y * w;
      v2[u] = O::from_f2(x0, x1);
      if constexpr (SPLIT) {
        const float2 h = O::to_f2(v2[u]);
        lo2[u] = O::from_f2(x0 - h.x, x1 - h.y);
      }
    }
    *reinterpret_cast<uint4*>(dst + Zw::offset(8 * c, b)) = v;
    if constexpr (SPLIT) *reinterpret_cast<uint4*>(dst_lo + Zw::offset(8 * c, b)) = lo;
  }
}

// The state update's wgmmas, st += Yᵀ Zw (+ Yᵀ Zw_lo when SPLIT), one commit group's worth: A = Yᵀ
// read M-major from the swizzled Y tile at shared address ya (its two 64-column halves give the
// two 64-row halves of st), B = the weighted rows zw (and zw_lo) in the core-matrix layout Zw.
template <class T, class Zw, bool SPLIT, int KH>
__device__ __forceinline__ void update_state(float (&st)[KH][32], uint32_t ya, const unsigned char* zw,
                                             const unsigned char* zw_lo) {
  using W = wg::Mma<T>;
#pragma unroll
  for (int m = 0; m < KH; ++m)
#pragma unroll
    for (int k0 = 0; k0 < kC; k0 += 16)
      W::template ss<1, 1>(st[m], sw128_desc(ya + m * kHalf + k0 * 128), Zw::desc(zw, 0, k0), true);
  if constexpr (SPLIT) {
#pragma unroll
    for (int m = 0; m < KH; ++m)
#pragma unroll
      for (int k0 = 0; k0 < kC; k0 += 16)
        W::template ss<1, 1>(st[m], sw128_desc(ya + m * kHalf + k0 * 128), Zw::desc(zw_lo, 0, k0), true);
  }
}

// This thread's part of the state (StatePart layout, columns e0 + 8j + 2t (+1) of the tile)
// rounded into the core-matrix tile `hi` (element (e, d) at Tile::offset(e, d)), and when SPLIT
// the rounded remainders into the same layout at `lo`.
template <class T, class Tile, bool SPLIT, int KH>
__device__ __forceinline__ void store_state_rounded(const float (&st)[KH][32], unsigned char* hi, unsigned char* lo,
                                                    int warp, int g, int t, int e0) {
  using O = Ops<T>;
#pragma unroll
  for (int m = 0; m < KH; ++m)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int r = 0; r < 4; r += 2) {
        const int d = 64 * m + 16 * warp + g + 8 * (r / 2), e = e0 + 8 * j + 2 * t;
        const typename O::T2 h = O::from_f2(st[m][4 * j + r], st[m][4 * j + r + 1]);
        *reinterpret_cast<typename O::T2*>(hi + Tile::offset(e, d)) = h;
        if constexpr (SPLIT) {
          const float2 hf = O::to_f2(h);
          *reinterpret_cast<typename O::T2*>(lo + Tile::offset(e, d)) =
              O::from_f2(st[m][4 * j + r] - hf.x, st[m][4 * j + r + 1] - hf.y);
        }
      }
}

// TMA_OUT: each chunk's outputs go through a swizzled shared-memory tile (two per consumer, used
// in turn) and one TMA bulk tensor store (map_o), issued after the next chunk's first barrier;
// else st.global from registers (out_vec2: column pairs 4-byte aligned). SPLIT (compensated):
// the state, the weighted rows and the masked scores enter their wgmmas as hi + lo parts, one
// wgmma each (the inputs X, Y, Z enter exactly), as in chunk_scan_tc.cuh.
//
// REVERSE (dk's and dv's scans of the backward, dk <= 64): scan time runs from the last token.
// The copies keep token order: chunk τ0's box starts at token L - τ0 - 64 (rows before token 0
// read as zero) and tile row r is scan row 63 - r, as in chunk_scan_tma_bwd.cuh. So the mask
// keeps r_b >= r_a with decay λ^{r_b - r_a}, output row r takes λ^{63 - r + off_out}, and the
// update weight of tile row r is β λ^{n - 64 + r + off_upd} for r >= 64 - n (zero before). A
// store box may not start before token 0: the partial last chunk is stored from registers.
// Varlen: boxes at the sequence's offset in the packed rows; a partial chunk's box covers rows
// of the neighbouring sequence, which the mask and the update weights drop (as they drop the
// zeros of a dense batch's partial chunk), and it is stored from registers in either direction.
// LIST: varlen with segments (scan_block).
template <class T, int NB, bool TMA_OUT, bool SPLIT, int KH, int NW, bool REVERSE = false, bool LIST = false>
__global__ void __launch_bounds__(BlockShape<KH, NW>::kThreads, BlockShape<KH, NW>::kMinBlocks)
    chunk_scan_tma_kernel(const __grid_constant__ CUtensorMap map_x, const __grid_constant__ CUtensorMap map_y,
                          const __grid_constant__ CUtensorMap map_z, const __grid_constant__ CUtensorMap map_o,
                          const ScanParams p, const Slopes sl, bool out_vec2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = Layout<NB, SPLIT, KH, NW>;
  using B = BlockShape<KH, NW>;
  static_assert(!TMA_OUT || L::kOutTiles > 0, "TMA stores need the output tiles");
  using O = Ops<T>;
  using W = wg::Mma<T>;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* sm = aligned_base(smem_raw);
  float* dec = reinterpret_cast<float*>(sm + L::kDec);  // (C + 2)
  uint64_t* full = reinterpret_cast<uint64_t*>(sm + L::kBar);
  uint64_t* empty = full + NB;

  const BlockIndex<LIST> blk(p);
  const int seg = blk.seg, h = blk.h;
  const int64_t shd = blk.shd, s = blk.s;
  const SeqLoc sq = tc::seq_loc(p, s);
  if (!segment_runs(p, seg, sq.len)) return;  // varlen: past the sequence's end
  const int64_t seg_begin = (int64_t)seg * p.seg_len;
  const int64_t seg_end = p.num_segs == 1 ? sq.len : min(sq.len, seg_begin + p.seg_len);
  const float slope = sl.s[h];
  block_setup<NB, 4 * NW>(dec, full, empty, slope);

  const int role = threadIdx.x / 128;
  if (role == 0) {  // the producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(B::kProducerRegs));
    if (threadIdx.x == 0) {
      const int e_col = blockIdx.y * B::kCols;
      auto load = [&](unsigned char* base, int64_t tau, uint64_t* bar) {
        const int row = box_row<REVERSE>(sq, tau), hh = h, ss = (int)sq.batch;
        tma_load_halves<KH>(base + L::kX, &map_x, 0, row, hh, ss, bar);
        tma_load_halves<KH>(base + L::kY, &map_y, 0, row, hh, ss, bar);
        tma_load_halves<NW>(base + L::kZ, &map_z, e_col, row, hh, ss, bar);
      };
      produce<NB>(sm, L::kStage, full, empty, seg_begin, seg_end, load);
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(B::kConsumerRegs));

  const int wgi = role - 1, tid = threadIdx.x - 128 * role;
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  // This warpgroup's shared memory at `off` + wgi·`per_wg`. LIST: the offset opaque, computed once
  // and kept in a register (seen through, LLVM rematerialized these offsets from tid.x every chunk
  // there, where the dense instantiations fold them into the loads' offsets; opaque made the LIST
  // kernels 1-2% faster and the dense ones 4-5% slower: bench/cuda/NOTES.md, nineteenth session).
  auto wg_smem = [&](unsigned char* at, int off, int per_wg) -> unsigned char* {
    if constexpr (LIST) return at + opaque32(off + wgi * per_wg);
    else return at + off + wgi * per_wg;
  };
  [[maybe_unused]] const int z_off = LIST ? opaque32(L::kZ + wgi * kHalf) : 0;
  auto z_half = [&](unsigned char* stage_base) -> unsigned char* {  // its half of a stage's Z tile
    if constexpr (LIST) return stage_base + z_off;
    else return stage_base + L::kZ + wgi * kHalf;
  };
  unsigned char* Ss = wg_smem(sm, L::kSo, L::kParts * L::S::kBytes);     // this warpgroup's rounded state
  unsigned char* Zws = wg_smem(sm, L::kZwo, L::kParts * L::Zw::kBytes);  // this warpgroup's weighted Z
  unsigned char* Ss_lo = Ss + L::S::kBytes;                             // SPLIT: the remainders
  unsigned char* Zws_lo = Zws + L::Zw::kBytes;
  const int e0 = blockIdx.y * B::kCols + 64 * wgi;           // this warpgroup's first column

  // The state S (64·KH, 64) fp32: half m, rows d = 64m + 16·warp + g (+8), columns e0 + 8j + 2t (+1).
  const StatePart part{warp, g, t, e0};
  float st[KH][32];
  start_state(st, p, part, shd, seg);
  // α λ^{a+off} of this thread's output rows r = 16·warp + g (+8): scan row a = r (63 - r reversed).
  const int r0 = 16 * warp + g;
  const float out_coef[2] = {p.alpha * dec[(REVERSE ? 63 - r0 : r0) + p.off_out],
                             p.alpha * dec[(REVERSE ? 63 - r0 - 8 : r0 + 8) + p.off_out]};
  const int a_b0 = 16 * warp + g - 2 * t;  // r_a - r_b of score pr[0]; pr[4j + r]: + 8(r/2) - 8j - r%2
  float mask_f[B::kMaskInRegs ? 32 : 1];  // the scores' mask and decay factors, the same every chunk
  if constexpr (B::kMaskInRegs) wg::mask_factors<REVERSE>(mask_f, dec, p.scale, a_b0);

  // Rounded outputs of a chunk: rows 16·warp + g + 8·half, columns e0 + 8j + 2t (+1) in ob[8·half + j].
  uint32_t ob[16];
  // Tile row r of the chunk at scan time t0 with n rows in the sequence: token t0 + r for r < n;
  // reversed, token L - t0 - 64 + r for r >= 64 - n.
  auto store_out = [&](int64_t t0, int rows) {
    T* out = static_cast<T*>(p.out);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int a_ = 16 * warp + g + 8 * half;
      if (REVERSE ? a_ < kC - rows : a_ >= rows) continue;
      const int64_t tok = REVERSE ? sq.len - t0 - kC + a_ : t0 + a_;
      T* row = out + sq.batch * p.out_sb + (sq.begin + tok) * p.out_sn + h * p.out_sh;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int e = e0 + 8 * j + 2 * t;
        const typename O::T2 v = *reinterpret_cast<const typename O::T2*>(&ob[8 * half + j]);
        if (out_vec2) {
          if (e < p.dv) *reinterpret_cast<typename O::T2*>(row + e) = v;
        } else {
          if (e < p.dv) row[e] = v.x;
          if (e + 1 < p.dv) row[e + 1] = v.y;
        }
      }
    }
  };
  // TMA_OUT: this warpgroup's two output tiles (chunk i in tile i % 2), and the bulk store of the
  // tile of chunk i0 (after the barrier that follows every thread's writes of it).
  unsigned char* out_tiles = wg_smem(sm, L::kOuto, 2 * kHalf);
  auto issue_store = [&](int i0, int64_t t0) {
    if (tid == 0) {
      asm volatile(
          "cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];\n"
          "cp.async.bulk.commit_group;\n" ::"l"(reinterpret_cast<uint64_t>(&map_o)),
          "r"(e0), "r"(box_row<REVERSE>(sq, t0)), "r"(h), "r"((int)sq.batch),
          "r"(tc::smem_addr(out_tiles + (i0 % 2) * kHalf))
          : "memory");
    }
  };

  float pr[32], o_acc[32];
#pragma unroll
  for (int i = 0; i < 32; ++i) pr[i] = o_acc[i] = 0.f;
  int i = 0;
  for (int64_t tau0 = seg_begin; tau0 < seg_end; tau0 += kC, ++i) {
    const int n = (int)min((int64_t)kC, seg_end - tau0);
    const int stage = i % NB;
    unsigned char* base = sm + (LIST ? opaque32(stage * L::kStage) : stage * L::kStage);  // LIST: as above
    const uint32_t xa = tc::smem_addr(base + L::kX), ya = tc::smem_addr(base + L::kY);
    const uint32_t za = tc::smem_addr(z_half(base));

    // S rounded, as the B operand of X S (MN-major: e contiguous); the last chunk's wgmmas are done.
    store_state_rounded<T, typename L::S, SPLIT>(st, Ss, Ss_lo, warp, g, t, 0);
    const float dn = dec[n];  // S = λ^n S before the update (group 3) accumulates onto it
#pragma unroll
    for (int m = 0; m < KH; ++m) {
#pragma unroll
      for (int q = 0; q < 32; ++q) st[m][q] *= dn;
      wg::fence_regs(st[m]);
    }

    mbar_wait(&full[stage], (uint32_t)((i / NB) & 1));
    if (p.cu_seqlens && n < kC) {  // varlen: the neighbouring sequence's rows of Y (shared) and Z
      zero_foreign_rows<REVERSE>(base + L::kY, KH, n, tid + 128 * wgi, 128 * NW);
      zero_foreign_rows<REVERSE>(z_half(base), 1, n, tid, 128);
      wg::fence_async_smem();
      tc::named_sync(3, 128 * NW);  // all consumers: Y and Z zeroed before any read
    }
    // Zw = w_b Z(b, e0 + e), w_b = β λ^{n-1-b+off} (0 past n); reversed, tile row b is scan row
    // 63 - b: β λ^{n-64+b+off} for b >= 64 - n.
    auto w_of = [&](int b) {
      if constexpr (REVERSE) return b >= kC - n ? p.beta * dec[n - kC + b + p.off_upd] : 0.f;
      else return b < n ? p.beta * dec[n - 1 - b + p.off_upd] : 0.f;
    };
    weight_rows<T, typename L::Zw, decltype(w_of), SPLIT>(Zws, z_half(base), tid, w_of, Zws_lo);
    if constexpr (TMA_OUT) {  // the store of chunk i - 2 is done reading tile i % 2 (issued a chunk ago)
      if (tid == 0 && i > 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
    }
    wg::fence_async_smem();  // this thread's state, Zw (and output tile) stores, for the async proxy
    tc::named_sync(1 + wgi, 128);
    if constexpr (TMA_OUT) {
      if (i > 0) issue_store(i - 1, tau0 - kC);
    }

    // Groups 1-3: P = X Yᵀ, O = X S, S += Yᵀ Zw.
    wg::fence_regs(pr);
    wg::fence_regs(o_acc);
    wg::wg_fence();
#pragma unroll
    for (int k0 = 0; k0 < 64 * KH; k0 += 16) {
      const uint32_t koff = (k0 / 64) * kHalf + (k0 % 64) * 2;
      W::template ss<0>(pr, sw128_desc(xa + koff), sw128_desc(ya + koff), k0 > 0);
    }
    wg::wg_commit();
#pragma unroll
    for (int k0 = 0; k0 < 64 * KH; k0 += 16) {
      const uint32_t koff = (k0 / 64) * kHalf + (k0 % 64) * 2;
      W::template ss<1>(o_acc, sw128_desc(xa + koff), L::S::desc(Ss, 0, k0), k0 > 0);
    }
    if constexpr (SPLIT) {
#pragma unroll
      for (int k0 = 0; k0 < 64 * KH; k0 += 16) {
        const uint32_t koff = (k0 / 64) * kHalf + (k0 % 64) * 2;
        W::template ss<1>(o_acc, sw128_desc(xa + koff), L::S::desc(Ss_lo, 0, k0), true);
      }
    }
    wg::wg_commit();
    update_state<T, typename L::Zw, SPLIT>(st, ya, Zws, Zws_lo);
    wg::wg_commit();

    // The masked scores as the A operand of group 4, while groups 2 and 3 run.
    wg::wg_wait<2>();
    wg::fence_regs(pr);
    uint32_t pa[4][4], pl[SPLIT ? 4 : 1][4];
    if constexpr (B::kMaskInRegs) wg::mask_scores_by<T, SPLIT>(pa, pr, mask_f, pl);
    else wg::mask_scores<T, REVERSE, SPLIT>(pa, pr, dec, p.scale, a_b0, pl);
    wg::wg_wait<1>();
    wg::fence_regs(o_acc);
    scale_acc_rows(o_acc, out_coef);
    wg::fence_regs(o_acc);
    wg::wg_fence();
    // Group 4: O += (mask ⊙ P) Z, K slices of 16 rows b (2048 bytes of the N-major tile each).
#pragma unroll
    for (int ks = 0; ks < 4; ++ks) W::template rs<1>(o_acc, pa[ks], sw128_desc(za + ks * 2048));
    if constexpr (SPLIT) {
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) W::template rs<1>(o_acc, pl[ks], sw128_desc(za + ks * 2048));
    }
    wg::wg_commit();
    wg::wg_wait<0>();
    wg::fence_regs(o_acc);
#pragma unroll
    for (int m = 0; m < KH; ++m) wg::fence_regs(st[m]);
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[stage]);  // this warp is done with the stage

#pragma unroll
    for (int half = 0; half < 2; ++half)
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const typename O::T2 v = O::from_f2(o_acc[4 * j + 2 * half], o_acc[4 * j + 2 * half + 1]);
        ob[8 * half + j] = *reinterpret_cast<const uint32_t*>(&v);
      }
    if constexpr (TMA_OUT) {  // row a, 16-byte piece j at a·128 + (j ^ a % 8)·16 (a % 8 = g)
      unsigned char* tile = out_tiles + (i % 2) * kHalf;
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int j = 0; j < 8; ++j)
          *reinterpret_cast<uint32_t*>(tile + (16 * warp + g + 8 * half) * 128 + ((j ^ g) << 4) + 4 * t) =
              ob[8 * half + j];
    } else {
      store_out(tau0, n);
    }
  }
  if constexpr (TMA_OUT) {  // the last chunk's tile
    if (i > 0) {
      const int64_t t_last = seg_begin + (int64_t)(i - 1) * kC;
      const int n_last = (int)min((int64_t)kC, seg_end - t_last);
      if ((REVERSE || p.cu_seqlens) && n_last < kC) {
        // from registers: its box would start before token 0, or (varlen) reach into the next
        // sequence's rows
        store_out(t_last, n_last);
      } else {
        wg::fence_async_smem();
        tc::named_sync(1 + wgi, 128);
        issue_store(i - 1, t_last);
      }
      if (tid == 0) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
    }
  }

  store_final_state(st, p, part, shd, seg, sq.len);
#elif defined(__CUDA_ARCH__)
  __trap();  // built without sm_90a: serves() keeps this kernel from being launched
#endif
}

// The driver's cuTensorMapEncodeTiled, through the runtime (no link against libcuda); null
// when the driver does not have it. (The versioned query exists from CUDA 12.5 on; sm_90a, which
// the default build targets, needs 12.0.)
inline PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
#if CUDART_VERSION >= 12050
    const cudaError_t err =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q);
#else
    const cudaError_t err = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &f, cudaEnableDefault, &q);
#endif
    if (err != cudaSuccess || q != cudaDriverEntryPointSuccess) {
      (void)cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// The 4-d tensor map (dim, N, H, S) of a (S, N, H, dim) 16-bit view with element strides
// (sn, sh, sb), boxes of 64 x 64 (64 elements of 64 rows of one head), 128-byte swizzle, zeros
// outside. A dimension of extent 1 gets a dense stride (its own is never used). The last 16
// encoded maps of the calling thread are kept (encoding is host work on every launch's path;
// training steps and benchmarks call again with the same buffers; a forward and backward use 14).
inline CUtensorMap tile_map(const Rows& r, int64_t seqs, int64_t len, int heads, int dim,
                            CUtensorMapDataType type) {
  struct Key {
    const void* data;
    cuuint64_t dims[4], strides[3];
    int type;
    bool operator==(const Key& o) const {
      return data == o.data && type == o.type && std::equal(dims, dims + 4, o.dims) &&
             std::equal(strides, strides + 3, o.strides);
    }
  };
  Key key{r.data, {(cuuint64_t)dim, (cuuint64_t)len, (cuuint64_t)heads, (cuuint64_t)seqs}, {}, (int)type};
  const int64_t el[3] = {r.sn, r.sh, r.sb};
  cuuint64_t dense = (cuuint64_t)dim * 2;
  for (int k = 0; k < 3; ++k) {
    key.strides[k] = key.dims[k + 1] > 1 ? (cuuint64_t)el[k] * 2 : (dense + 15) / 16 * 16;
    dense = key.strides[k] * key.dims[k + 1];
  }
  constexpr int kCached = 16;
  thread_local Key keys[kCached] = {};
  thread_local CUtensorMap maps[kCached];
  thread_local int next = 0;
  for (int i = 0; i < kCached; ++i)
    if (keys[i].data && keys[i] == key) return maps[i];

  CUtensorMap map;
  const cuuint32_t box[4] = {64, 64, 1, 1}, elem_strides[4] = {1, 1, 1, 1};
  const CUresult res = encode_fn()(&map, type, 4, const_cast<void*>(r.data), key.dims, key.strides, box,
                                   elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (res != CUDA_SUCCESS)
    throw std::runtime_error("chunk scan (TMA): cuTensorMapEncodeTiled failed with error " +
                             std::to_string((int)res));
  keys[next] = key;
  maps[next] = map;
  next = (next + 1) % kCached;
  return map;
}

// TNL_CUDA_TMA: unset or 2 = this kernel, outputs stored by TMA where the output rows allow it
// (16-byte aligned), else from registers; 1 = outputs always from registers (an A/B switch);
// 0 = off (the mma.sync kernel). Read once.
inline char variant() {
  static const char v = [] {
    const char* e = std::getenv("TNL_CUDA_TMA");
    return e && (e[0] == '0' || e[0] == '1') ? e[0] : '2';
  }();
  return v;
}

// Whether TNL_CUDA_TMA leaves this kernel on, this build carries sm_90a code, the current device
// runs it (sm_90) and the driver encodes tensor maps. Asked once.
inline bool device_ok() {
#if defined(TNL_HAVE_SM90A)
  static const bool ok = [] {
    if (variant() == '0') return false;
    int dev = 0, major = 0, minor = 0;
    TNL_CUDA_CHECK(cudaGetDevice(&dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    return major == 9 && minor == 0 && encode_fn() != nullptr;
  }();
  return ok;
#else
  return false;
#endif
}

inline Rows out_rows(const ScanParams& p) { return Rows{p.out, p.out_sb, p.out_sn, p.out_sh}; }

// The batch extent of the tensor maps: the sequences, or 1 for a packed (varlen) batch.
inline int64_t map_seqs(const ScanParams& p) { return p.cu_seqlens ? 1 : p.num_seqs; }

inline bool positive_strides(const Rows& r, const ScanParams& p) {
  return (p.seqlen <= 1 || r.sn > 0) && (p.heads <= 1 || r.sh > 0) && (map_seqs(p) <= 1 || r.sb > 0);
}

// TNL_CUDA_TMA_VARLEN=0: varlen batches on the mma.sync kernels (an A/B switch). Read once.
inline bool varlen_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_VARLEN", '0');
  return on;
}
inline bool varlen_ok(const ScanParams& p) { return !p.cu_seqlens || varlen_enabled(); }

// TNL_CUDA_TMA_D64=0: dk <= 64 on the mma.sync scan, and the pre-pass of states with dk <= 64 or
// dv <= 64 on the chain (an A/B switch). Read once.
inline bool d64_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_D64", '0');
  return on;
}

// TNL_CUDA_TMA_REVERSE=0: the reversed scans (the backward's dk and dv when they do not run fused)
// with dk <= 64 on the mma.sync kernel (an A/B switch). Read once.
inline bool reverse_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_REVERSE", '0');
  return on;
}

// TNL_CUDA_TMA_D256=0: the scans that D > 128 brings to this kernel stay on mma.sync (an A/B
// switch): dk > 128 (the forward's and dv's scans), and reversed 64 < dk <= 128 with dv > 64
// (dk's scan; at D, E <= 128 the fused dk/dv scan runs instead). Read once.
inline bool d256_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_D256", '0');
  return on;
}

// TNL_CUDA_TMA_D256_SPLIT=0: the compensated mode with dk > 128 on mma.sync (an A/B switch). Read once.
inline bool d256_split_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_D256_SPLIT", '0');
  return on;
}

// TNL_CUDA_TMA_SPLIT=0: the compensated mode on the mma.sync scans instead of the TMA ones (an A/B
// switch). Read once.
inline bool split_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_SPLIT", '0');
  return on;
}

// Whether this kernel serves the scan: a full pass, not the fused dk/dv scan (either
// intermediates mode; the compensated one unless TNL_CUDA_TMA_SPLIT=0) over dense or varlen batches,
// 16-byte aligned rows with positive strides, and
// - dk <= 64 (any dv; forward time, or reversed unless TNL_CUDA_TMA_REVERSE=0);
// - 64 < dk <= 128 with dv > 64 (a block of one consumer and dk > 64 would not fit twice on a
//   multiprocessor), forward time, or reversed (the dk scan when D > 128; at D, E <= 128 the
//   fused scan runs) unless TNL_CUDA_TMA_D256=0;
// - 128 < dk <= 256, either direction, unless TNL_CUDA_TMA_D256=0; compensated (its outputs
//   from registers: the hi + lo tiles leave no room for output tiles) unless
//   TNL_CUDA_TMA_D256_SPLIT=0.
inline bool serves(const ScanParams& p, bool local_pass) {
  const bool dims = p.dk <= 64    ? d64_enabled() && (!p.reverse || reverse_enabled())
                    : p.dk <= 128 ? p.dv > 64 && (!p.reverse || d256_enabled())
                                  : p.dk <= 256 && (!p.compensated || d256_split_enabled()) && d256_enabled();
  return !local_pass && !p.fused && (!p.compensated || split_enabled()) && varlen_ok(p) && dims &&
         p.seqlen < (int64_t{1} << 31) && tc::vec_rows(p, true) && positive_strides(p.x, p) &&
         positive_strides(p.y, p) && positive_strides(p.z, p) && device_ok();
}

// The scan's blocks per (sequence, head, segment): value columns in blocks of 64 (dv <= 64, or
// dk > 128) or 128 (launch_shape's BlockShape).
inline int column_blocks(const ScanParams& p) {
  return p.dv <= 64 ? 1 : p.dk > 128 ? (p.dv + 63) / 64 : (p.dv + 127) / 128;
}
// 64-column value tiles a multiprocessor runs at once: 128 columns (two blocks of one consumer,
// or one of two), 64 at dk > 128 (one block of one consumer).
inline int tiles_per_sm(const ScanParams& p) { return p.dk > 128 ? 1 : 2; }

template <class T, int NB, bool TMA_OUT, bool SPLIT, int KH, int NW, bool REVERSE = false>
void launch_config(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  using L = Layout<NB, SPLIT, KH, NW>;
  using B = BlockShape<KH, NW>;
  static_assert(B::kMinBlocks * (L::kBytes + 1024) <= 228 * 1024, "the shared memory of a multiprocessor on sm_90");
  static_assert(L::kBytes <= 227 * 1024, "the shared memory of a block on sm_90");
  const CUtensorMapDataType type =
      std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const CUtensorMap mx = tile_map(p.x, map_seqs(p), p.seqlen, p.heads, p.dk, type);
  const CUtensorMap my = tile_map(p.y, map_seqs(p), p.seqlen, p.heads, p.dk, type);
  const CUtensorMap mz = tile_map(p.z, map_seqs(p), p.seqlen, p.heads, p.dv, type);
  const CUtensorMap mo = TMA_OUT ? tile_map(out_rows(p), map_seqs(p), p.seqlen, p.heads, p.dv, type) : mz;
  const dim3 grid((unsigned)scan_grid(p), (unsigned)((p.dv + B::kCols - 1) / B::kCols));
  const bool out_vec2 = tc::pairs_aligned4(p.out, p.out_sb, p.out_sn, p.out_sh, p.dv);
  auto kern = p.split_segs ? chunk_scan_tma_kernel<T, NB, TMA_OUT, SPLIT, KH, NW, REVERSE, true>
                           : chunk_scan_tma_kernel<T, NB, TMA_OUT, SPLIT, KH, NW, REVERSE, false>;
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::kBytes));
  kern<<<grid, B::kThreads, L::kBytes, stream>>>(mx, my, mz, mo, p, sl, out_vec2);
  TNL_CUDA_CHECK_LAUNCH();
}

template <class T, bool TMA_OUT, bool SPLIT>
void launch_shape(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  if (p.dk > 128) {  // compensated: outputs from registers (Layout::kOutTiles)
    constexpr bool kTmaOut = TMA_OUT && !SPLIT;
    if (p.reverse) return launch_config<T, 2, kTmaOut, SPLIT, 4, 1, true>(p, sl, stream);
    return launch_config<T, 2, kTmaOut, SPLIT, 4, 1>(p, sl, stream);
  }
  if (p.dk > 64) {
    if (p.reverse) return launch_config<T, 2, TMA_OUT, SPLIT, 2, 2, true>(p, sl, stream);
    return launch_config<T, 2, TMA_OUT, SPLIT, 2, 2>(p, sl, stream);
  }
  if (p.reverse) {
    if (p.dv > 64) return launch_config<T, 2, TMA_OUT, SPLIT, 1, 2, true>(p, sl, stream);
    return launch_config<T, 2, TMA_OUT, SPLIT, 1, 1, true>(p, sl, stream);
  }
  if (p.dv > 64) return launch_config<T, 2, TMA_OUT, SPLIT, 1, 2>(p, sl, stream);
  launch_config<T, 2, TMA_OUT, SPLIT, 1, 1>(p, sl, stream);
}

template <class T, bool SPLIT>
void launch_split(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  if (variant() == '2' && tc::rows_aligned16(out_rows(p)) && positive_strides(out_rows(p), p))
    return launch_shape<T, true, SPLIT>(p, sl, stream);
  launch_shape<T, false, SPLIT>(p, sl, stream);
}

template <class T>
void launch(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  if (p.compensated) return launch_split<T, true>(p, sl, stream);
  launch_split<T, false>(p, sl, stream);
}

}  // namespace tma
}  // namespace tnl::cuda
