// chunk_scan.h: the one chunked scan kernel behind forward, backward (dq, dk, dv) and their
// segment pre-pass, as a plain parameter struct plus per-dtype launchers.
//
// The kernel computes, per (sequence, head), over "scan time" τ = 0..L-1 (token L-1-τ when
// `reverse`), with λ = exp(-slope), rows x (L, dk) "query", y (L, dk) "key", z (L, dv) "value":
//
//     out_τ = c·Σ_{u≤τ} λ^{τ-u} (x_τ·y_u) z_u  +  α·λ^{a+off_out} x_τ X_p     (τ = p + a)
//     X_{p+n} = λ^n X_p + β·Σ_{b<n} λ^{n-1-b+off_upd} y_bᵀ z_b                 (chunk of n rows)
//
// X_0 = the initial state (dk, dv) or its transpose; the final X is the final state.
// forward:  x=q y=k z=v,    α=c off_out=1, β=1 off_upd=0                  -> o, S_final
// dq:       x=dO y=v z=k,   α=c off_out=1, β=1 off_upd=0, X_0 = S0ᵀ        -> dq
// dk:       reverse, x=v y=dO z=q, α=1 off_out=0, β=c off_upd=1, X_0 = dSfᵀ -> dk
// dv:       reverse, x=k y=q z=dO, α=1 off_out=0, β=c off_upd=1, X_0 = dSf  -> dv, dS0 = X_L
// Every decay factor is λ^Δ with 0 ≤ Δ ≤ C inside a chunk (a table per block); segment
// boundaries use λ^Δ with Δ ≥ 0 only, so nothing overflows at any N.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/prepass_split.h"
#include "backends/cuda/segments.h"
#include "tnl/dtype.h"

namespace tnl::cuda {

// Slopes travel by value (they are a host pointer on every device).
constexpr int kMaxHeads = 1024;
struct Slopes {
  float s[kMaxHeads];
};

// A strided (B, N, H, dim) view, innermost dim contiguous; element strides.
struct Rows {
  const void* data = nullptr;
  int64_t sb = 0, sn = 0, sh = 0;
};

struct ScanParams {
  Rows x, y, z;       // (B, N, H, dk), (B, N, H, dk), (B, N, H, dv)
  void* out = nullptr;  // (B, N, H, dv), strides below
  int64_t out_sb = 0, out_sn = 0, out_sh = 0;
  int64_t num_seqs = 0;   // S: B, or the number of packed sequences
  int64_t seqlen = 0;     // N (T when varlen)
  int heads = 0;          // H
  int dk = 0, dv = 0;     // 1..256
  const int32_t* cu_seqlens = nullptr;  // device, (S + 1), or null

  const float* init = nullptr;  // (S, H, dk, dv), or (S, H, dv, dk) when init_transposed; or null
  bool init_transposed = false;
  float* final_state = nullptr;  // (S, H, dk, dv) or null

  bool reverse = false;
  float scale = 1.f;          // c, intra-chunk
  float alpha = 1.f;          // inter coefficient
  int off_out = 0;            // 0 or 1
  float beta = 1.f;           // state-update weight
  int off_upd = 0;            // 0 or 1

  // Sequence segments (segments.h): segment g covers scan time [g·seg_len, min(L, (g+1)·seg_len));
  // seg_len is a multiple of the chunk. Varlen: the lengths live on the device, so num_segs covers
  // a sequence of all T tokens and the blocks of segments past their sequence's end do nothing.
  int num_segs = 1;
  int64_t seg_len = INT64_MAX;
  // (S·H, num_segs, pre_split, dk, dv) local end states, fp32 workspace: the GEMM pre-pass
  // (prepass_tc.cuh) may split each segment into pre_split equal sub-segments of its own.
  float* seg_states = nullptr;
  int pre_split = 1;
  int64_t sub_len = INT64_MAX;  // seg_len / pre_split (no 64-bit division in the kernels)
  // (S·H, num_segs - 1, dk, dv) fp32 workspace: the state segment g >= 1 starts from, the short
  // scan of seg_states and the initial state (launch_segment_prefix) between the two passes.
  float* seg_start = nullptr;
  // Varlen: seg_states and seg_start are (H, seg_rows, dk, dv) instead, seg_rows = ⌊T/seg_len⌋ + S,
  // indexed by segment_row (a sequence's segments are consecutive rows; pre_split is 1).
  int64_t seg_rows = 0;

  // fp16/bf16 (tensor cores): the scores, state and weighted values enter the MMAs as hi + lo
  // pairs (true) or rounded once to the input dtype (false); see chunk_scan_tc.cuh.
  bool compensated = true;

  // The backward's dk scan fused into its dv scan (rounded fp16/bf16, 64 < dk, dv <= 128; see
  // chunk_scan_tc.cuh): x2 = V (B, N, H, dv) and out2 = dk (B, N, H, dk) beside x = K, y = Q,
  // z = dO and out = dv.
  bool fused = false;
  Rows x2;
  void* out2 = nullptr;
  int64_t out2_sb = 0, out2_sn = 0, out2_sh = 0;

  // Varlen with segments: split_segs (pre_rows = ⌊T/seg_len⌋ entries), built on the device from
  // cu_seqlens (launch_split_segs), lists the (sequence s, segment g) of every segment that is
  // not its sequence's last, in order, {-1, -1} past them (at most ⌊T/seg_len⌋ for sequences that
  // do not overlap). The pre-pass computes the local end state of each entry's segment g, the
  // main pass runs each entry's segment g + 1 besides every sequence's segment 0, and the
  // segment prefix runs each split sequence's chain (its entry with g = 0). So the grids are
  // bounded by the tokens and the sequences, whatever the lengths (scan_grid, prepass_grid).
  const int2* split_segs = nullptr;
  int64_t pre_rows = 0;
  // (Last in the struct, so that the other fields' offsets, and the kernels' code, stay as they
  // were before it.)
};

// Launchers, one per dtype (one instantiation group per file). `local_pass` runs only the
// state update of segments 0..num_segs-2 into seg_states (the segment pre-pass).
void launch_chunk_scan_f32(const ScanParams& p, const Slopes& sl, bool local_pass,
                           cudaStream_t stream);
void launch_chunk_scan_f16(const ScanParams& p, const Slopes& sl, bool local_pass,
                           cudaStream_t stream);
void launch_chunk_scan_bf16(const ScanParams& p, const Slopes& sl, bool local_pass,
                            cudaStream_t stream);

// 64-column tiles of the kernel that runs the (full-pass) scan p resident on one multiprocessor
// (blocks per SM times the tiles a block holds): from the shared memory per block of the fp32
// kernel (chunk_scan_f32.cu); for fp16/bf16, two for the TMA kernels (one block of 128 columns
// or two of 64),
// else from the occupancy calculator for the mma.sync kernels (chunk_scan_f16.cu,
// chunk_scan_bf16.cu).
int chunk_scan_tiles_per_sm(DType dt, const ScanParams& p);
size_t chunk_scan_smem_bytes_simt(int dk);
int chunk_scan_tiles_per_sm_f16(const ScanParams& p);
int chunk_scan_tiles_per_sm_bf16(const ScanParams& p);

// Whether the TMA + wgmma fused dk/dv scan (chunk_scan_tma_bwd.cuh) runs the scan p (p.fused
// set): fp16/bf16 on sm_90. The compensated mode has no other fused scan.
bool chunk_scan_fused_tma(DType dt, const ScanParams& p);
// The blocks per (sequence, head, segment) when the full pass of p runs on a TMA kernel (the
// scan: one per 64 value columns when dv <= 64, else per 128; the fused dk/dv scan: one), else 0:
// fp16/bf16 on sm_90 (chunk_scan_tma.cuh, chunk_scan_tma_bwd.cuh).
int chunk_scan_tma_blocks(DType dt, const ScanParams& p);
int chunk_scan_tma_blocks_f16(const ScanParams& p);
int chunk_scan_tma_blocks_bf16(const ScanParams& p);
bool chunk_scan_fused_tma_f16(const ScanParams& p);
bool chunk_scan_fused_tma_bf16(const ScanParams& p);

// Sub-segments per segment the pre-pass of `p` (num_segs > 1) writes to seg_states: 1, or more
// when the GEMM pre-pass (bf16) would leave multiprocessors idle (`sms` of them).
int chunk_scan_prepass_split(DType dt, const ScanParams& p, int sms);
int chunk_scan_prepass_split_bf16(const ScanParams& p, int sms);  // the rule: prepass_split.h

// The blocks (along x) of the main pass over (sequence, head, segment), and of the pre-pass over
// the (sub-)segments whose local end states are needed (dense: all but each sequence's last).
// Varlen with segments: S·H blocks of segment 0, then H·pre_rows of the split_segs entries.
inline int64_t scan_grid(const ScanParams& p) {
  return p.split_segs ? p.num_seqs * p.heads + p.heads * p.pre_rows : p.num_seqs * p.heads * p.num_segs;
}
inline int64_t prepass_grid(const ScanParams& p) {
  return p.split_segs ? p.heads * p.pre_rows : p.num_seqs * p.heads * (p.num_segs - 1) * p.pre_split;
}

#ifdef __CUDACC__
// The plane shd = s·H + h and segment of main-pass block `bid` (blockIdx.x, scan_grid). Dense
// (and varlen unsplit), bid = shd·num_segs + seg. LIST (varlen with segments: split_segs set),
// bid = shd (segment 0) for bid < S·H, else S·H + h·pre_rows + k for segment g + 1 of entry k of
// split_segs; past the list, plane 0 and kNoSegment (the block returns: segment_runs). The
// kernels take LIST as a template parameter: a run-time branch here moved the code ptxas made
// of the dense kernels' loops, and the D = 128 forward scan lost 12% (H200, 4x32x32K).
constexpr int kNoSegment = 1 << 30;  // no sequence has it (segment_runs is false)
template <bool LIST>
__device__ __forceinline__ void scan_block(const ScanParams& p, int64_t bid, int64_t& shd, int& seg) {
  if constexpr (LIST) {
    const int64_t firsts = p.num_seqs * p.heads;
    if (bid < firsts) {
      shd = bid;
      seg = 0;
    } else {
      const int64_t k = bid - firsts;
      const int2 e = p.split_segs[k % p.pre_rows];
      shd = e.x < 0 ? 0 : (int64_t)e.x * p.heads + k / p.pre_rows;
      seg = e.x < 0 ? kNoSegment : e.y + 1;
    }
  } else {
    seg = (int)(bid % p.num_segs);
    shd = bid / p.num_segs;
  }
}
// ... and the sub-segment of pre-pass block `bid` (prepass_grid): dense, bid = shd·subs + sub,
// subs = (num_segs - 1)·pre_split. LIST (pre_split 1, sub = the segment g of entry k of
// split_segs), bid = h·pre_rows + k; past the list, plane 0 and kNoSegment
// (segment_state_needed is false).
template <bool LIST>
__device__ __forceinline__ void prepass_block(const ScanParams& p, int64_t bid, int64_t& shd, int& sub) {
  if constexpr (LIST) {
    const int2 e = p.split_segs[bid % p.pre_rows];
    shd = e.x < 0 ? 0 : (int64_t)e.x * p.heads + bid / p.pre_rows;
    sub = e.x < 0 ? kNoSegment : e.y;
  } else {  // 32-bit: blocks along x are fewer than 2^31
    const int subs = (p.num_segs - 1) * p.pre_split;
    sub = (int)((unsigned)bid % subs);
    shd = (unsigned)bid / subs;
  }
}

// Whether segment `seg` of a sequence of `len` scan rows has a main-pass block with work: segment
// 0 always (it writes the final state, even of an empty sequence), the others when they start
// inside the sequence (varlen grids have segments for the longest sequence T could hold).
__device__ __forceinline__ bool segment_runs(const ScanParams& p, int seg, int64_t len) {
  return seg == 0 || (int64_t)seg * p.seg_len < len;
}
// Whether the pre-pass computes segment `seg`'s local end state: only when a later segment has
// rows, so that this one is full.
__device__ __forceinline__ bool segment_state_needed(const ScanParams& p, int seg, int64_t len) {
  return seg < p.num_segs - 1 && (int64_t)(seg + 1) * p.seg_len < len;
}
// Whether segment `seg` (one that runs) ends its sequence and so writes the final state.
__device__ __forceinline__ bool segment_ends_sequence(const ScanParams& p, int seg, int64_t len) {
  return seg == p.num_segs - 1 || (int64_t)(seg + 1) * p.seg_len >= len;
}

// The varlen workspace row of segment `seg` of plane shd = s·H + h in seg_states and seg_start:
// h·seg_rows + varlen_segment_row (segments.h: distinct over the segments with rows, in bounds).
__device__ __forceinline__ int64_t segment_row(const ScanParams& p, int64_t shd, int seg) {
  const int64_t s = shd / p.heads, h = shd % p.heads;
  const uint32_t first = varlen_first_row(p.cu_seqlens[s], p.seg_len);
  return h * p.seg_rows + first + s + seg;
}

// Where the pre-pass writes segment `seg`'s local end state (pre_split 1).
__device__ __forceinline__ float* segment_local_state(const ScanParams& p, int64_t shd, int seg) {
  const int64_t row = p.cu_seqlens ? segment_row(p, shd, seg) : shd * p.num_segs + seg;
  return p.seg_states + row * p.dk * p.dv;
}

// Where the state segment `seg` starts from lives, found once a block: the initial state (its
// transpose when init_transposed; none: zero) for segment 0, else the state the segment-prefix
// kernel left in seg_start ((d, e) order).
struct StartState {
  const float* base;
  bool transposed;
  // Element (d, e).
  __device__ __forceinline__ float at(const ScanParams& p, int d, int e) const {
    if (!base) return 0.f;
    return transposed ? base[(int64_t)e * p.dk + d] : base[(int64_t)d * p.dv + e];
  }
};
__device__ __forceinline__ StartState segment_start(const ScanParams& p, int64_t shd, int seg) {
  const int64_t plane = (int64_t)p.dk * p.dv;
  if (seg > 0) {
    const int64_t row = p.cu_seqlens ? segment_row(p, shd, seg) : shd * (p.num_segs - 1) + seg - 1;
    return {p.seg_start + row * plane, false};
  }
  return {p.init ? p.init + shd * plane : nullptr, p.init_transposed};
}
#endif

// The short scan between the pre-pass and the main pass: seg_start from seg_states and init
// (segment_prefix.cu).
void launch_segment_prefix(const ScanParams& p, const Slopes& sl, cudaStream_t stream);
// Varlen: split_segs (pre_rows entries of the caller's workspace) from cu_seqlens, before the
// pre-pass (segment_prefix.cu).
void launch_split_segs(const ScanParams& p, int2* split_segs, cudaStream_t stream);
// The backward's dq scan from the forward's segment starts: `count` fp32 (rows, cols) matrices
// of src, each transposed into dst (segment_prefix.cu).
void launch_transpose_states(const float* src, float* dst, int64_t count, int rows, int cols, cudaStream_t stream);

// Decode step (decode.cu).
struct DecodeParams {
  Rows q, k, v;              // (B, H, D): sb, sh used
  void* out = nullptr;
  int64_t out_sb = 0, out_sh = 0;
  float* state = nullptr;    // (B, H, D, E)
  int64_t batch = 0;
  int heads = 0, dk = 0, dv = 0;
  float scale = 1.f;
};
void launch_decode(DType dt, const DecodeParams& p, const Slopes& sl, cudaStream_t stream);

}  // namespace tnl::cuda
