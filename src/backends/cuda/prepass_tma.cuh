// prepass_tma.cuh: the segment pre-pass (local end states, chunk_scan.h) on the TMA + wgmma design
// of chunk_scan_tma.cuh, for bf16 scans with dk <= 256, dv <= 128 on sm_90 (rounded, or compensated:
// SPLIT, the weighted rows as hi + lo parts, two wgmmas); the GEMM pre-pass (prepass_tc.cuh) or
// the chain serve everything else, and TNL_CUDA_TMA_PREPASS=0 turns this one off.
//
// The same sum as the GEMM pre-pass: for every (sequence, head) and sub-segment j of segments
// 0..num_segs-2 (scan rows [j·sub_len, (j+1)·sub_len), all inside the sequence; varlen: the
// segments before the sequence's last, pre_split 1)
//     A_j = Σ_τ w_τ y_τᵀ z_τ,   w_τ = β λ^(end_j - 1 - τ + off),
// one weight per row relative to the sub-segment's end, so that the chunks' products accumulate
// with no decay in between (no chain from one chunk's MMA to the next). The sum does not depend on
// the order of its rows: a reversed scan reads each chunk as the TMA box at token row
// L - τ0 - 64 (tile row r is scan row τ0 + 63 - r) and weights its rows accordingly.
//
// A block is two consumer warpgroups and one producer warp over one (sequence, head,
// sub-segment): the producer copies the chunk's Y (64 x 128) and Z (64 x 128) tiles into one of NB
// 32 KB stages; consumer w owns state columns 64w..64w+63 (A_j (128, 64), 64 fp32 registers a
// thread, the layout of the scan's state) and per chunk writes Zw(e, b) = w_b Z(b, 64w + e)
// rounded to shared memory, then runs A += Yᵀ Zw on wgmma (A operand Yᵀ read M-major from the
// swizzled Y tile, as the scan's state update does). Two blocks fit on a multiprocessor.
// PreShape: with dk <= 64 (KH = 1) Y is one 64-column half and the state 64 rows; with dv <= 64
// (NW = 1) a block has one consumer; smaller blocks run more to a multiprocessor, and the
// sub-segment count (chunk_scan_prepass_split_bf16) fills them. With dk > 128 (KH = 4) Y is four
// halves and the state 128 registers a thread: one block a multiprocessor with two consumers
// (three stages, 48 KB each), two with one.
#pragma once

#include "backends/cuda/chunk_scan_tma.cuh"

namespace tnl::cuda {
namespace tma {

// KH 64-column halves of dk (Y), NW consumer warpgroups (64 state columns each, Z halves).
template <int KH, int NW>
struct PreShape {
  static constexpr int kConsumers = 128 * NW;       // threads 0..kConsumers-1
  static constexpr int kThreads = kConsumers + 32;  // and the producer warp
  static constexpr int kMinBlocks = KH == 4 ? 3 - NW : NW == 2 ? 2 : KH == 1 ? 4 : 3;  // a multiprocessor's
  static constexpr int kStages = KH == 4 && NW == 2 ? 3 : 2;  // a lone block keeps more copies in flight
};

template <int NB, bool SPLIT, int KH = 2, int NW = 2>
struct PreLayout {  // byte offsets from the 1024-aligned base
  static constexpr int kY = 0, kZ = KH * kHalf;  // within a stage
  static constexpr int kStage = (KH + NW) * kHalf;
  static constexpr int kParts = SPLIT ? 2 : 1;
  using Zw = wg::CoreTile<true, 64, kC>;  // (e, b) = w_b Z(b, e) per consumer (hi, then lo when SPLIT)
  static constexpr int kZwo = NB * kStage;
  static constexpr int kDec = kZwo + NW * kParts * Zw::kBytes;  // λ^Δ table of block_setup (unused here)
  static constexpr int kBar = kDec + 4 * (kC + 2 + 2);    // full[NB], empty[NB]
  static constexpr size_t kBytes = kBar + 16 * NB + 1024;
};

// LIST: varlen with segments (prepass_block).
template <class T, int NB, bool SPLIT, int KH, int NW, bool LIST = false>
__global__ void __launch_bounds__(PreShape<KH, NW>::kThreads, PreShape<KH, NW>::kMinBlocks)
    prepass_tma_kernel(const __grid_constant__ CUtensorMap map_y, const __grid_constant__ CUtensorMap map_z,
                       const ScanParams p, const Slopes sl) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = PreLayout<NB, SPLIT, KH, NW>;
  constexpr int kPreConsumers = PreShape<KH, NW>::kConsumers;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* sm = aligned_base(smem_raw);
  float* dec = reinterpret_cast<float*>(sm + L::kDec);
  uint64_t* full = reinterpret_cast<uint64_t*>(sm + L::kBar);
  uint64_t* empty = full + NB;

  int64_t shd;  // s·H + h
  int sub;      // the last segment's state is never needed
  prepass_block<LIST>(p, blockIdx.x, shd, sub);
  const int h = (int)(shd % p.heads);
  const int64_t s = shd / p.heads;
  const SeqLoc sq = tc::seq_loc(p, s);
  // varlen (pre_split 1, sub = the segment): only the segments before the sequence's last
  if (p.cu_seqlens && !segment_state_needed(p, sub, sq.len)) return;
  const int64_t seg_begin = (int64_t)sub * p.sub_len, seg_end = seg_begin + p.sub_len;  // scan rows
  const float slope = sl.s[h];
  block_setup<NB, 4 * NW>(dec, full, empty, slope);

  if (threadIdx.x >= kPreConsumers) {  // the producer warp
    if (threadIdx.x == kPreConsumers) {
      const int e_col = blockIdx.y * 64 * NW, hh = h, ss = (int)sq.batch;
      auto load = [&](unsigned char* base, int64_t tau, uint64_t* bar) {
        const int row = p.reverse ? box_row<true>(sq, tau) : box_row<false>(sq, tau);  // the chunk's first token
        tma_load_halves<KH>(base + L::kY, &map_y, 0, row, hh, ss, bar);
        tma_load_halves<NW>(base + L::kZ, &map_z, e_col, row, hh, ss, bar);
      };
      produce<NB>(sm, L::kStage, full, empty, seg_begin, seg_end, load);
    }
    return;
  }

  const int wgi = threadIdx.x / 128, tid = threadIdx.x % 128;
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  unsigned char* Zws = sm + L::kZwo + wgi * L::kParts * L::Zw::kBytes;
  unsigned char* Zws_lo = Zws + L::Zw::kBytes;  // SPLIT
  const StatePart part{warp, g, t, (int)blockIdx.y * 64 * NW + 64 * wgi};
  float st[KH][32];  // A_j (64·KH, 64): half m, rows 64m + 16·warp + g (+8), columns e0 + 8j + 2t (+1)
#pragma unroll
  for (int m = 0; m < KH; ++m)
#pragma unroll
    for (int i = 0; i < 32; ++i) st[m][i] = 0.f;

  int i = 0;
  for (int64_t tau0 = seg_begin; tau0 < seg_end; tau0 += kC, ++i) {
    const int stage = i % NB;
    unsigned char* base = sm + stage * L::kStage;
    const uint32_t ya = tc::smem_addr(base + L::kY);
    mbar_wait(&full[stage], (uint32_t)((i / NB) & 1));
    // Zw = w_b Z(b, e): tile row b is scan row τ0 + b (τ0 + 63 - b reversed); the last chunk's
    // wgmmas, which read Zw, are done.
    const int64_t last = seg_end - 1 + p.off_upd - tau0;  // the exponent of tile row 0, forward
    auto w_of = [&](int b) {
      const int64_t delta = p.reverse ? last - (kC - 1 - b) : last - b;
      return p.beta * expf(-slope * (float)delta);
    };
    weight_rows<T, typename L::Zw, decltype(w_of), SPLIT>(Zws, base + L::kZ + wgi * kHalf, tid, w_of, Zws_lo);
    wg::fence_async_smem();
    tc::named_sync(1 + wgi, 128);
#pragma unroll
    for (int m = 0; m < KH; ++m) wg::fence_regs(st[m]);
    wg::wg_fence();
    update_state<T, typename L::Zw, SPLIT>(st, ya, Zws, Zws_lo);
    wg::wg_commit();
    wg::wg_wait<0>();
#pragma unroll
    for (int m = 0; m < KH; ++m) wg::fence_regs(st[m]);
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[stage]);  // this warp is done with the stage
  }

  float* dst = p.cu_seqlens ? segment_local_state(p, shd, sub)
                            : p.seg_states + (shd * p.num_segs * p.pre_split + sub) * (int64_t)p.dk * p.dv;
#pragma unroll
  for (int k = 0; k < 32 * KH; ++k) {
    int d, e;
    if (part.elem(p, k, d, e)) dst[(int64_t)d * p.dv + e] = st[k / 32][k % 32];
  }
#elif defined(__CUDA_ARCH__)
  __trap();  // built without sm_90a: serves_prepass() keeps this kernel from being launched
#endif
}

// TNL_CUDA_TMA_PREPASS=0: the GEMM pre-pass instead of this kernel (an A/B switch). Read once.
inline bool prepass_enabled() {
  static const bool on = !env_is("TNL_CUDA_TMA_PREPASS", '0');
  return on;
}

// Whether this kernel would serve the pre-pass of p's shape: bf16 (the caller's dtype; fp16 keeps
// the chain, see prepass_tc.cuh), dense or varlen batches, dk <= 256 and dv <= 128 (dk <= 64 and dv <= 64 only when
// TNL_CUDA_TMA_D64 leaves the scan on TMA, dk > 128 only when TNL_CUDA_TMA_D256 does), 16-byte
// aligned rows of Y and Z with positive strides.
inline bool prepass_shape_ok(const ScanParams& p) {
  return p.num_segs > 1 && varlen_ok(p) && p.dk <= 256 && p.dv <= 128 && (p.dk <= 128 || d256_enabled()) &&
         (d64_enabled() || (p.dk > 64 && p.dv > 64)) &&
         p.seg_len % kC == 0 && p.seqlen < (int64_t{1} << 31) && tc::vec_rows(p, false) &&
         positive_strides(p.y, p) && positive_strides(p.z, p) && prepass_enabled() && device_ok();
}
// ... and whether it serves the pre-pass of p (its sub-segments whole chunks too).
inline bool serves_prepass(const ScanParams& p, bool local_pass) {
  return local_pass && p.sub_len % kC == 0 && prepass_shape_ok(p);
}

// Calls f(KH, NW) with p's block shape as integral constants.
template <class F>
decltype(auto) with_pre_shape(const ScanParams& p, F f) {
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  using Four = std::integral_constant<int, 4>;
  if (p.dk > 128) return p.dv > 64 ? f(Four{}, Two{}) : f(Four{}, One{});
  if (p.dk > 64) return p.dv > 64 ? f(Two{}, Two{}) : f(Two{}, One{});
  return p.dv > 64 ? f(One{}, Two{}) : f(One{}, One{});
}

// Blocks of p's pre-pass resident on a multiprocessor (what its launch bounds and shared memory
// give; the sub-segment count rule fills them).
inline int prepass_blocks_per_sm(const ScanParams& p) {
  return with_pre_shape(p, [](auto kh, auto nw) { return PreShape<decltype(kh)::value, decltype(nw)::value>::kMinBlocks; });
}

// Sub-segments per segment for one wave of this pre-pass's blocks on `sms` multiprocessors
// (prepass_split_count; TNL_CUDA_PREPASS_SPLIT caps it), for shapes prepass_shape_ok accepts.
inline int prepass_split(const ScanParams& p, int sms) {
  const int64_t blocks = p.num_seqs * p.heads * (p.num_segs - 1);
  const int64_t slots = (int64_t)sms * prepass_blocks_per_sm(p);
  return prepass_split_count(blocks, slots, p.seg_len / kC, tc::prepass_split_forced());
}

template <class T, bool SPLIT, int KH, int NW>
void launch_prepass_shape(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  static_assert(std::is_same_v<T, __nv_bfloat16>, "bf16 only: fp16 weights would underflow");
  using Sh = PreShape<KH, NW>;
  constexpr int NB = Sh::kStages;
  using L = PreLayout<NB, SPLIT, KH, NW>;
  static_assert(Sh::kMinBlocks * (L::kBytes + 1024) <= 228 * 1024, "the blocks a multiprocessor holds");
  const CUtensorMap my = tile_map(p.y, map_seqs(p), p.seqlen, p.heads, p.dk, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16);
  const CUtensorMap mz = tile_map(p.z, map_seqs(p), p.seqlen, p.heads, p.dv, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16);
  const dim3 grid((unsigned)prepass_grid(p), 1);
  auto kern = p.split_segs ? prepass_tma_kernel<T, NB, SPLIT, KH, NW, true> : prepass_tma_kernel<T, NB, SPLIT, KH, NW, false>;
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::kBytes));
  kern<<<grid, Sh::kThreads, L::kBytes, stream>>>(my, mz, p, sl);
  TNL_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_prepass(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  with_pre_shape(p, [&](auto kh, auto nw) {
    constexpr int KH = decltype(kh)::value, NW = decltype(nw)::value;
    if (p.compensated) return launch_prepass_shape<T, true, KH, NW>(p, sl, stream);
    launch_prepass_shape<T, false, KH, NW>(p, sl, stream);
  });
}

}  // namespace tma
}  // namespace tnl::cuda
