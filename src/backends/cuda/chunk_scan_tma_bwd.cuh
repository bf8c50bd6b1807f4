// chunk_scan_tma_bwd.cuh: the backward's fused dk/dv scan (chunk_scan.h, ScanParams::fused) on
// the warp-specialized sm_90a design of chunk_scan_tma.cuh: a producer warp copies the K, Q, dO
// and V tiles of each chunk with TMA bulk tensor copies (reversed time: the box of a chunk
// starts at token L - τ0 - 64; rows before token 0 read as zero, those of the previous packed
// sequence are masked) into two 64 KB stages, two consumer warpgroups run every product on
// wgmma, and each writes one output through a swizzled shared tile and TMA bulk tensor stores
// (a store box may not start before the sequence: the partial last chunk, when 64 does not
// divide L, is stored from registers). For fp16/bf16
// with rounded intermediates, or compensated ones (SPLIT: R, the weighted dO and the masked
// scores as hi + lo parts, the outputs stored from registers to make room), dense or packed
// (varlen, unless TNL_CUDA_TMA_VARLEN=0) batches,
// 64 < D, E <= 128 (padded to 128), 16-byte aligned rows. The default there on sm_90;
// TNL_CUDA_TMA_BWD=0 (or TNL_CUDA_TMA=0) runs the mma.sync fused scan (chunk_scan_tc.cuh)
// instead when rounded, and dk and dv as two scans when compensated (TNL_CUDA_TMA_SPLIT=0: the
// same for the compensated mode alone).
//
// The math (chunk_scan.h, dv scan with x = K, y = Q, z = dO, x2 = V): one state R (D, E) fp32
//   dv = c (K Qᵀ ⊙ M) dO + λ^a K R,   dk = c (V dOᵀ ⊙ M) Q + λ^a V Rᵀ,
//   R  = λ^n R + Qᵀ Zw,  Zw_b = β λ^{n-1-b+1} dO_b   (scan rows a, b; β = c, off_upd = 1)
// Tile row r of a chunk is scan row 63 - r (the copies keep token order), so in tile rows the
// causal mask keeps r_b >= r_a with decay λ^{r_b - r_a}, the output rows take λ^{63 - r}, and
// the update weight of tile row r is β λ^{n - 63 + r} for r >= 64 - n (zero before).
//
// A block is 3 warpgroups over one (sequence, head, segment), all 128 columns of D and E:
//   warpgroup 0: the producer (one thread issues the copies);
//   warpgroup 1: dv (C, E) = P dO + λ^a K R,   P  = masked K Qᵀ;
//   warpgroup 2: dk (C, D) = P2 Q + λ^a V Rᵀ,  P2 = masked V dOᵀ;
//   consumer w also holds R[:, 64w..64w+63] (64 registers a thread) and updates it.
// Both consumers read all of R: each writes its half, rounded, to one shared (e, d) tile (the
// MN-major B of K R, and through its own descriptor the K-major B of V Rᵀ); a barrier of the
// two warpgroups follows, and a second one before the next chunk overwrites the tile. Shared
// memory: 2 x 64 KB stages, R 32 KB, the weighted dO 16 KB, one (C, 128) output tile per
// consumer 32 KB: 209 KB.
#pragma once

#include "backends/cuda/chunk_scan_tma.cuh"

namespace tnl::cuda {
namespace tma {

// SPLIT (compensated): R and the weighted dO as hi + lo tiles (each lo right after its hi), and
// no output tiles (the outputs are stored from registers): 224 KB of tiles.
template <int NB, bool SPLIT = false>
struct BwdLayout {  // byte offsets from the 1024-aligned base
  // Within a stage: K, Q, dO, V tiles, two 64-column swizzled halves each.
  static constexpr int kK = 0, kQ = 2 * kHalf, kDO = 4 * kHalf, kV = 6 * kHalf;
  static constexpr int kStage = 8 * kHalf;
  static constexpr int kParts = SPLIT ? 2 : 1;
  using R = wg::CoreTile<true, 128, 128>;  // (e, d): R rounded
  using Zw = wg::CoreTile<true, 64, kC>;   // (e, b) = w_b dO(b, 64w + e) per consumer
  static constexpr int kRo = NB * kStage;
  static constexpr int kZwo = kRo + kParts * R::kBytes;     // consumer w's at kZwo + w·kParts·Zw::kBytes
  static constexpr int kOuto = kZwo + 2 * kParts * Zw::kBytes;  // per consumer a (C, 128) tile: 2 halves
  static constexpr int kDec = kOuto + (SPLIT ? 0 : 4 * kHalf);  // λ^Δ, Δ = 0..C+1, fp32
  static constexpr int kBar = kDec + 4 * (kC + 2 + 2);
  static constexpr size_t kBytes = kBar + 16 * NB + 1024;
};

// A no-swizzle wgmma descriptor with explicit strides: lbo = bytes from one 8-wide K block to the
// next, sbo = from one 8-row M/N block to the next (as wg::CoreTile::desc).
__device__ __forceinline__ uint64_t core_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return (uint64_t)((addr >> 4) & 0x3FFF) | ((uint64_t)((lbo >> 4) & 0x3FFF) << 16) |
         ((uint64_t)((sbo >> 4) & 0x3FFF) << 32);
}

// A descriptor `bytes` further on (the address field is bits 0-13, in 16-byte units; shared
// addresses stay below 2^18, so no carry leaves the field).
__device__ __forceinline__ uint64_t desc_at(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

// Consumer warpgroup WGI (0: dv, 1: dk) of chunk_scan_tma_fused_kernel; map_out: its output.
// SPLIT (compensated): R, the weighted dO and the masked scores enter their wgmmas as hi + lo
// parts (one more wgmma each), and every chunk's outputs are stored from registers.
// HALVES (compensated): the output's two 64-column halves one after the other (fewer live
// registers: ptxas spills 212 bytes instead of 336).
template <class T, int NB, int WGI, bool SPLIT, bool HALVES>
__device__ __forceinline__ void fused_consumer(unsigned char* sm, const CUtensorMap* map_out, const ScanParams& p,
                                               int64_t shd, int h, const SeqLoc& sq, int seg,
                                               int64_t seg_begin, int64_t seg_end) {
  using L = BwdLayout<NB, SPLIT>;
  using O = Ops<T>;
  using W = wg::Mma<T>;
  float* dec = reinterpret_cast<float*>(sm + L::kDec);
  uint64_t* full = reinterpret_cast<uint64_t*>(sm + L::kBar);
  uint64_t* empty = full + NB;
  const int64_t len = sq.len;

  const int tid = threadIdx.x - 128 * (1 + WGI);
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  unsigned char* Rs = sm + L::kRo;
  unsigned char* Zws = sm + L::kZwo + WGI * L::kParts * L::Zw::kBytes;
  unsigned char* out_tile = sm + L::kOuto + WGI * 2 * kHalf;
  const int e0 = 64 * WGI;  // this warpgroup's columns of R

  // R[:, e0..e0+63] fp32: half m, rows d = 64m + 16·warp + g (+8), columns e0 + 8j + 2t (+1).
  const StatePart part{warp, g, t, e0};
  float st[2][32];
  start_state(st, p, part, shd, seg);
  // α λ^{a+off} of this thread's output rows r = 16·warp + g (+8): scan row a = 63 - r.
  const float out_coef[2] = {p.alpha * dec[63 - (16 * warp + g) + p.off_out],
                             p.alpha * dec[63 - (16 * warp + g + 8) + p.off_out]};
  const int a_b0 = 16 * warp + g - 2 * t;  // r_a - r_b of score pr[0]; pr[4j + r]: + 8(r/2) - 8j - r%2

  // The bulk stores of the output tile of the chunk at scan time t0 (tokens L - t0 - 64 ..).
  auto issue_store = [&](int64_t t0) {
    if (tid == 0) {
#pragma unroll
      for (int half = 0; half < 2; ++half)
        asm volatile(
            "cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];\n" ::"l"(
                reinterpret_cast<uint64_t>(map_out)),
            "r"(64 * half), "r"(box_row<true>(sq, t0)), "r"(h), "r"((int)sq.batch),
            "r"(tc::smem_addr(out_tile + half * kHalf))
            : "memory");
      asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
    }
  };

  float pr[32], oc[2][32];  // scores; the output, 64-column halves (each written by its first wgmma)
  // The output rows of tokens >= 0 straight from registers, tile row 0 at token row0 < 0 (a
  // partial last chunk; the stores of 16-byte aligned rows, so column pairs are 4-byte aligned).
  int64_t tail_row0 = 0;  // the token of tile row 0 of a partial last chunk (< 0), else 0
  auto store_rows = [&](int64_t row0, int hn0 = 0, int hn1 = 2) {  // column halves hn0..hn1-1
    T* out = static_cast<T*>(WGI == 0 ? p.out : p.out2);
    const int64_t sb = WGI == 0 ? p.out_sb : p.out2_sb, sn = WGI == 0 ? p.out_sn : p.out2_sn;
    const int64_t sh = WGI == 0 ? p.out_sh : p.out2_sh;
    const int dim = WGI == 0 ? p.dv : p.dk;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t tok = row0 + 16 * warp + g + 8 * half;
      if (tok < 0) continue;
      T* row = out + sq.batch * sb + (sq.begin + tok) * sn + h * sh;
#pragma unroll
      for (int hn = hn0; hn < hn1; ++hn)
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int col = 64 * hn + 8 * j + 2 * t;  // dim % 8 == 0: col + 1 < dim too
          if (col < dim)
            *reinterpret_cast<typename O::T2*>(row + col) =
                O::from_f2(oc[hn][4 * j + 2 * half], oc[hn][4 * j + 2 * half + 1]);
        }
    }
  };
  int i = 0;
  for (int64_t tau0 = seg_begin; tau0 < seg_end; tau0 += kC, ++i) {
    const int n = (int)min((int64_t)kC, seg_end - tau0);
    const int stage = i % NB;
    // Shared addresses from a base the compiler cannot see through: computed where used (hoisted
    // out of the loop, the ~40 addresses of a chunk's stores spilled).
    unsigned char* const sm_l = sm + opaque32(0);
    unsigned char* base = sm_l + stage * L::kStage;
    const uint32_t ka = tc::smem_addr(base + L::kK), qa = tc::smem_addr(base + L::kQ);
    const uint32_t da = tc::smem_addr(base + L::kDO), va = tc::smem_addr(base + L::kV);
    // dv: P = K Qᵀ, K R, P dO.  dk: P2 = V dOᵀ, V Rᵀ, P2 Q.
    const uint32_t xa = WGI == 0 ? ka : va, ya = WGI == 0 ? qa : da, ba = WGI == 0 ? da : qa;

    // This warpgroup's half of R rounded (the other half comes from the other consumer); both
    // consumers are past the last chunk's reads of the tile (the barrier at the loop's end).
    store_state_rounded<T, typename L::R, SPLIT>(st, sm_l + L::kRo, sm_l + L::kRo + L::R::kBytes, warp, g, t, e0);
    const float dn = dec[n];
#pragma unroll
    for (int m = 0; m < 2; ++m) {
#pragma unroll
      for (int q = 0; q < 32; ++q) st[m][q] *= dn;
      wg::fence_regs(st[m]);
    }

    mbar_wait(&full[stage], (uint32_t)((i / NB) & 1));
    if (p.cu_seqlens && n < kC) {  // varlen: the previous sequence's rows of Q and dO, own halves
      zero_foreign_rows<true>(base + L::kQ + WGI * kHalf, 1, n, tid, 128);
      zero_foreign_rows<true>(base + L::kDO + WGI * kHalf, 1, n, tid, 128);
      tc::named_sync(2 + WGI, 128);  // weight_rows reads rows the other threads zeroed
    }
    // Zw = w_b dO(b, e0 + e): tile row b is scan row 63 - b, w_b = β λ^{n-1-(63-b)+off_upd} for
    // b >= 64 - n, else 0 (the forward's pieces and lanes).
    unsigned char* zw_l = sm_l + L::kZwo + WGI * L::kParts * L::Zw::kBytes;
    auto w_of = [&](int b) { return b >= kC - n ? p.beta * dec[n - kC + b + p.off_upd] : 0.f; };
    weight_rows<T, typename L::Zw, decltype(w_of), SPLIT>(zw_l, base + L::kDO + WGI * kHalf, tid, w_of,
                                                          zw_l + L::Zw::kBytes);
    wg::fence_async_smem();  // R, Zw and the last chunk's output tile, for the async proxy
    tc::named_sync(1, 256);  // both consumers: R complete
    if constexpr (!SPLIT) {
      if (i > 0) issue_store(tau0 - kC);
    }

    // Group 1: the scores P.  Group 2: the update of this warpgroup's half of R.  (The
    // inter-chunk term follows the masking of P, so that P and the output are never live
    // together: 64 registers fewer at the peak.)
    wg::wg_fence();
    const uint64_t xd = opaque(sw128_desc(xa)), yd = opaque(sw128_desc(ya)), qd = opaque(sw128_desc(qa));
    const uint64_t zwd = opaque(L::Zw::desc(Zws, 0, 0));
    W::template ss_first<0>(pr, xd, yd);
#pragma unroll
    for (int k0 = 16; k0 < 128; k0 += 16) {
      const uint32_t koff = (k0 / 64) * kHalf + (k0 % 64) * 2;
      W::template ss<0>(pr, desc_at(xd, koff), desc_at(yd, koff), true);
    }
    wg::wg_commit();
#pragma unroll
    for (int m = 0; m < 2; ++m)
#pragma unroll
      for (int k0 = 0; k0 < kC; k0 += 16)
        W::template ss<1, 1>(st[m], desc_at(qd, m * kHalf + k0 * 128), desc_at(zwd, (k0 / 8) * L::Zw::kKBlock),
                             true);
    if constexpr (SPLIT) {
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int k0 = 0; k0 < kC; k0 += 16)
          W::template ss<1, 1>(st[m], desc_at(qd, m * kHalf + k0 * 128),
                               desc_at(zwd, L::Zw::kBytes + (k0 / 8) * L::Zw::kKBlock), true);
    }
    wg::wg_commit();

    // The masked scores (r_b >= r_a, c λ^{r_b - r_a}) as the A operand of group 4.
    wg::wg_wait<1>();
    wg::fence_regs(pr);
    uint32_t pa[4][4], pl[SPLIT ? 4 : 1][4];
    mask_scores<T, true, SPLIT>(pa, pr, dec, p.scale, a_b0, pl);

    if constexpr (SPLIT && HALVES) {
      // One 64-column half of the output at a time: its inter-chunk term (R hi + lo), scaled,
      // then the masked scores' (hi + lo) product, then its stores; the other half's 32
      // accumulators are not live meanwhile.
      const uint64_t rd = opaque(WGI == 0 ? L::R::desc(Rs, 0, 0)
                                          : core_desc(tc::smem_addr(Rs), L::R::kMnBlock, L::R::kKBlock));
      const uint64_t bd = opaque(sw128_desc(ba));
#pragma unroll
      for (int hn = 0; hn < 2; ++hn) {
        wg::wg_fence();
#pragma unroll
        for (int part = 0; part < 2; ++part)
#pragma unroll
          for (int k0 = 0; k0 < 128; k0 += 16) {
            const uint64_t da_ = desc_at(xd, (k0 / 64) * kHalf + (k0 % 64) * 2);
            const uint32_t rb = part * L::R::kBytes;
            if constexpr (WGI == 0) {
              const uint64_t db_ = desc_at(rd, rb + (64 * hn / 8) * L::R::kMnBlock + (k0 / 8) * L::R::kKBlock);
              if (part == 0 && k0 == 0) W::template ss_first<1>(oc[hn], da_, db_);
              else W::template ss<1>(oc[hn], da_, db_, true);
            } else {
              const uint64_t db_ = desc_at(rd, rb + (k0 / 8) * L::R::kMnBlock + (64 * hn / 8) * L::R::kKBlock);
              if (part == 0 && k0 == 0) W::template ss_first<0>(oc[hn], da_, db_);
              else W::template ss<0>(oc[hn], da_, db_, true);
            }
          }
        wg::wg_commit();
        wg::wg_wait<0>();
        wg::fence_regs(oc[hn]);
        scale_acc_rows(oc[hn], out_coef);
        wg::fence_regs(oc[hn]);
        wg::wg_fence();
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) W::template rs<1>(oc[hn], pa[ks], desc_at(bd, hn * kHalf + ks * 2048));
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) W::template rs<1>(oc[hn], pl[ks], desc_at(bd, hn * kHalf + ks * 2048));
        wg::wg_commit();
        wg::wg_wait<0>();
        wg::fence_regs(oc[hn]);
        if (hn == 1) {
#pragma unroll
          for (int m = 0; m < 2; ++m) wg::fence_regs(st[m]);
          __syncwarp();
          if (lane == 0) mbar_arrive(&empty[stage]);
        }
        store_rows(len - tau0 - kC, hn, hn + 1);
      }
      tc::named_sync(1, 256);  // both consumers are done reading R
      continue;
    }

    // Group 3: the inter-chunk term, dv: K R (B = R: k = d, n = e, MN-major); dk: V Rᵀ (B = Rᵀ:
    // k = e, n = d, K-major: 8-wide e blocks 2048 bytes apart, d blocks 128).
    wg::wg_fence();
    const uint64_t rd = opaque(WGI == 0 ? L::R::desc(Rs, 0, 0)
                                        : core_desc(tc::smem_addr(Rs), L::R::kMnBlock, L::R::kKBlock));
#pragma unroll
    for (int hn = 0; hn < 2; ++hn)
#pragma unroll
      for (int k0 = 0; k0 < 128; k0 += 16) {
        const uint64_t da_ = desc_at(xd, (k0 / 64) * kHalf + (k0 % 64) * 2);
        if constexpr (WGI == 0) {  // R (e, d): n = e blocks kMnBlock apart, k = d blocks kKBlock
          const uint64_t db_ = desc_at(rd, (64 * hn / 8) * L::R::kMnBlock + (k0 / 8) * L::R::kKBlock);
          if (k0 == 0) W::template ss_first<1>(oc[hn], da_, db_);
          else W::template ss<1>(oc[hn], da_, db_, true);
        } else {  // Rᵀ: k = e blocks kMnBlock apart, n = d blocks kKBlock
          const uint64_t db_ = desc_at(rd, (k0 / 8) * L::R::kMnBlock + (64 * hn / 8) * L::R::kKBlock);
          if (k0 == 0) W::template ss_first<0>(oc[hn], da_, db_);
          else W::template ss<0>(oc[hn], da_, db_, true);
        }
      }
    if constexpr (SPLIT) {  // + the same with R's remainders (the tile after R's)
#pragma unroll
      for (int hn = 0; hn < 2; ++hn)
#pragma unroll
        for (int k0 = 0; k0 < 128; k0 += 16) {
          const uint64_t da_ = desc_at(xd, (k0 / 64) * kHalf + (k0 % 64) * 2);
          if constexpr (WGI == 0) {
            const uint64_t db_ =
                desc_at(rd, L::R::kBytes + (64 * hn / 8) * L::R::kMnBlock + (k0 / 8) * L::R::kKBlock);
            W::template ss<1>(oc[hn], da_, db_, true);
          } else {
            const uint64_t db_ =
                desc_at(rd, L::R::kBytes + (k0 / 8) * L::R::kMnBlock + (64 * hn / 8) * L::R::kKBlock);
            W::template ss<0>(oc[hn], da_, db_, true);
          }
        }
    }
    wg::wg_commit();
    wg::wg_wait<0>();
#pragma unroll
    for (int hn = 0; hn < 2; ++hn) {
      wg::fence_regs(oc[hn]);
      scale_acc_rows(oc[hn], out_coef);
      wg::fence_regs(oc[hn]);
    }
    wg::wg_fence();
    // Group 4: out += P B, B = dO (dv) or Q (dk) N-major, K slices of 16 rows.
    const uint64_t bd = opaque(sw128_desc(ba));
#pragma unroll
    for (int hn = 0; hn < 2; ++hn)
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) W::template rs<1>(oc[hn], pa[ks], desc_at(bd, hn * kHalf + ks * 2048));
    if constexpr (SPLIT) {
#pragma unroll
      for (int hn = 0; hn < 2; ++hn)
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) W::template rs<1>(oc[hn], pl[ks], desc_at(bd, hn * kHalf + ks * 2048));
    }
    wg::wg_commit();
    wg::wg_wait<0>();
    wg::fence_regs(oc[0]);
    wg::fence_regs(oc[1]);
#pragma unroll
    for (int m = 0; m < 2; ++m) wg::fence_regs(st[m]);
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[stage]);

    if constexpr (SPLIT) {  // the outputs from registers; both consumers are done reading R
      store_rows(len - tau0 - kC);
      tc::named_sync(1, 256);
      continue;
    }
    // The last store has read the output tile; both consumers are done reading R.
    if (tid == 0 && i > 0) asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
    tc::named_sync(1, 256);
    if (len - tau0 - kC < 0) {  // a partial last chunk: a bulk store may not start before the sequence
      tail_row0 = len - tau0 - kC;
      continue;
    }
#pragma unroll
    for (int hn = 0; hn < 2; ++hn)
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const typename O::T2 v = O::from_f2(oc[hn][4 * j + 2 * half], oc[hn][4 * j + 2 * half + 1]);
          *reinterpret_cast<typename O::T2*>(sm_l + L::kOuto + WGI * 2 * kHalf + hn * kHalf +
                                             (16 * warp + g + 8 * half) * 128 +
                                             ((j ^ g) << 4) + 4 * t) = v;
        }
  }
  if constexpr (SPLIT) {
    // every chunk's outputs are stored
  } else if (tail_row0 < 0) {
    store_rows(tail_row0);
  } else if (i > 0) {  // the last chunk's tile
    wg::fence_async_smem();
    tc::named_sync(2 + WGI, 128);
    issue_store(seg_begin + (int64_t)(i - 1) * kC);
    if (tid == 0) asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
  }

  store_final_state(st, p, part, shd, seg, len);
}

template <class T, int NB, bool SPLIT, bool HALVES, bool LIST = false>
__global__ void __launch_bounds__(kThreads, 1)
    chunk_scan_tma_fused_kernel(const __grid_constant__ CUtensorMap map_k, const __grid_constant__ CUtensorMap map_q,
                                const __grid_constant__ CUtensorMap map_do, const __grid_constant__ CUtensorMap map_v,
                                const __grid_constant__ CUtensorMap map_dv, const __grid_constant__ CUtensorMap map_dk,
                                const ScanParams p, const Slopes sl) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = BwdLayout<NB, SPLIT>;
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
  block_setup<NB>(dec, full, empty, slope);

  const int role = threadIdx.x / 128;
  if (role == 0) {  // the producer
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n");
    if (threadIdx.x == 0) {
      auto load = [&](unsigned char* base, int64_t tau, uint64_t* bar) {
        const int row = box_row<true>(sq, tau), hh = h, ss = (int)sq.batch;  // tokens row..row+63
        tma_load_pair(base + L::kK, &map_k, 0, row, hh, ss, bar);
        tma_load_pair(base + L::kQ, &map_q, 0, row, hh, ss, bar);
        tma_load_pair(base + L::kDO, &map_do, 0, row, hh, ss, bar);
        tma_load_pair(base + L::kV, &map_v, 0, row, hh, ss, bar);
      };
      produce<NB>(sm, L::kStage, full, empty, seg_begin, seg_end, load);
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n");
  // One body per consumer role (the wgmma operand majors differ), entered past an early return so
  // that ptxas sees no divergent path around the wgmmas.
  if (role == 1) {
    fused_consumer<T, NB, 0, SPLIT, HALVES>(sm, &map_dv, p, shd, h, sq, seg, seg_begin, seg_end);
    return;
  }
  fused_consumer<T, NB, 1, SPLIT, HALVES>(sm, &map_dk, p, shd, h, sq, seg, seg_begin, seg_end);
#elif defined(__CUDA_ARCH__)
  __trap();  // built without sm_90a: serves_fused() keeps this kernel from being launched
#endif
}

// TNL_CUDA_TMA_BWD=0: the mma.sync fused scan instead of this kernel (an A/B switch). Read once.
inline bool fused_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_BWD", '0');
  return on;
}

inline Rows out2_rows(const ScanParams& p) { return Rows{p.out2, p.out2_sb, p.out2_sn, p.out2_sh}; }

// Whether this kernel serves the scan: the backward's fused dk/dv scan (reversed; rounded, or
// compensated unless TNL_CUDA_TMA_SPLIT=0) over dense or varlen batches, 64 < D, E <= 128, every row of K,
// Q, dO, V, dv and dk 16-byte aligned with positive strides.
inline bool serves_fused(const ScanParams& p, bool local_pass) {
  if (local_pass || !p.fused || (p.compensated && !split_enabled()) || !p.reverse || !varlen_ok(p) ||
      p.dk <= 64 || p.dk > 128 || p.dv <= 64 || p.dv > 128 || p.seqlen >= (int64_t{1} << 31) ||
      !fused_enabled())
    return false;
  const Rows all[6] = {p.x, p.y, p.z, p.x2, out_rows(p), out2_rows(p)};
  for (const Rows& r : all)
    if (!tc::rows_aligned16(r) || !positive_strides(r, p)) return false;
  return p.dk % 8 == 0 && p.dv % 8 == 0 && device_ok();
}

// TNL_CUDA_TMA_BWD_HALVES=0: the compensated fused scan computes both output halves together (an
// A/B switch). Read once.
inline bool halves_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_BWD_HALVES", '0');
  return on;
}

template <class T, bool SPLIT, bool HALVES = false>
void launch_fused_split(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  constexpr int NB = 2;
  using L = BwdLayout<NB, SPLIT>;
  static_assert(L::kBytes <= 227 * 1024, "the opt-in shared memory of a block on sm_90");
  const CUtensorMapDataType type =
      std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const int D = p.dk, E = p.dv;
  const CUtensorMap mk = tile_map(p.x, map_seqs(p), p.seqlen, p.heads, D, type);
  const CUtensorMap mq = tile_map(p.y, map_seqs(p), p.seqlen, p.heads, D, type);
  const CUtensorMap mdo = tile_map(p.z, map_seqs(p), p.seqlen, p.heads, E, type);
  const CUtensorMap mv = tile_map(p.x2, map_seqs(p), p.seqlen, p.heads, E, type);
  const CUtensorMap mdv = tile_map(out_rows(p), map_seqs(p), p.seqlen, p.heads, E, type);
  const CUtensorMap mdk = tile_map(out2_rows(p), map_seqs(p), p.seqlen, p.heads, D, type);
  const dim3 grid((unsigned)scan_grid(p));
  auto kern = p.split_segs ? chunk_scan_tma_fused_kernel<T, NB, SPLIT, HALVES, true>
                           : chunk_scan_tma_fused_kernel<T, NB, SPLIT, HALVES, false>;
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::kBytes));
  kern<<<grid, kThreads, L::kBytes, stream>>>(mk, mq, mdo, mv, mdv, mdk, p, sl);
  TNL_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_fused(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  if (p.compensated) {
    if (halves_enabled()) return launch_fused_split<T, true, true>(p, sl, stream);
    return launch_fused_split<T, true, false>(p, sl, stream);
  }
  launch_fused_split<T, false>(p, sl, stream);
}

}  // namespace tma
}  // namespace tnl::cuda
