// segments.h: how a scan splits its sequences into segments (chunk_scan.h, ScanParams), as plain
// C++ shared by the host, the kernels and a CPU test (tests/backends/cuda/test_segments.cpp).
//
// Segment g of a sequence of `len` scan rows covers [g·seg_len, min(len, (g+1)·seg_len)), and
// ⌈len/seg_len⌉ segments have rows (one for an empty sequence: its segment 0 writes the final
// state). A dense batch has num_segs = ⌈N/seg_len⌉ for every sequence. A varlen batch's lengths
// live on the device, so its grid has the segments of a sequence of all T tokens, the blocks of
// segments past their sequence's end do nothing (chunk_scan.h: segment_runs etc.), and its
// workspace rows are compact (varlen_segment_row).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#if defined(__CUDACC__)
#define TNL_SEG_FN __host__ __device__ __forceinline__
#else
#define TNL_SEG_FN inline
#endif

namespace tnl::cuda {

// Segment lengths are multiples of 64, a multiple of every kernel's chunk (32 or 64).
constexpr int64_t kSegQuantum = 64;

// Varlen: the workspace row, within its head, of segment `seg` of sequence s, which starts at
// packed row `first` (cu_seqlens[s]): varlen_first_row(first) + s + seg. Over the segments with
// rows of a batch of non-overlapping sequences these are distinct and below varlen_segment_rows
// (and below it for any offsets within [0, T]). 32-bit division: offsets are int32 and
// seg_len < 2^31.
TNL_SEG_FN uint32_t varlen_first_row(int32_t first, int64_t seg_len) {
  return (uint32_t)(first > 0 ? first : 0) / (uint32_t)seg_len;
}
TNL_SEG_FN int64_t varlen_segment_row(int32_t first, int64_t s, int seg, int64_t seg_len) {
  return varlen_first_row(first, seg_len) + s + seg;
}
// ... and the rows a head needs: ⌊T/seg_len⌋ + S.
TNL_SEG_FN int64_t varlen_segment_rows(int64_t total, int64_t num_seqs, int64_t seg_len) {
  return total / seg_len + num_seqs;
}

// What the host knows of a scan when it chooses the segments.
struct SegmentInputs {
  int64_t seqlen = 0;      // N, or T when varlen
  int64_t num_seqs = 0;    // S
  bool varlen = false;
  int64_t heads = 0;       // H
  int64_t tiles = 0;       // 64-column value tiles of a (sequence, head)
  int64_t sms = 0;         // multiprocessors
  int64_t tiles_per_sm = 0;  // of the kernel, at full occupancy
  int64_t tma_blocks = 0;  // blocks per (sequence, head) on the TMA kernels, 0 when not on them
  int64_t max_seqlen = 0;  // varlen: the longest sequence when the caller says (0: unknown)
};
struct SegmentPlan {
  int num_segs = 1;
  int64_t seg_len = INT64_MAX;
  bool tail = false;  // varlen, by varlen_tail_seg_len: the grids come from split_segs
};

// The mean length a split by the mean needs: 8 chunks (a sequence's, or T/S when varlen). Dense
// batches below it do not split (plan_segments); varlen ones may still split their long
// sequences (varlen_tail_seg_len).
inline bool may_split(int64_t seqlen, int64_t num_seqs, bool varlen) {
  const int64_t mean = varlen ? seqlen / std::max<int64_t>(1, num_seqs) : seqlen;
  return mean >= 8 * kSegQuantum;
}

// Varlen, when the mean length does not split (S·H fills the GPU): segments of 5/4 of a wave's
// share of all the work, ⌈T·H·blocks / slots⌉ rows (at least 4 chunks), so that a sequence much
// longer than the others does not run alone after the rest (the tail). Sequences shorter than
// that stay whole and read no state; 0 when no sequence can be that long (T). plan_segments uses
// it only when the caller's max_seqlen is longer: without that hint, a batch of equal lengths
// would pay the list, the pre-pass and prefix launches and a slower main-pass kernel for nothing
// (4x32x32K packed, rounded: forward +9%, H200).
inline int64_t varlen_tail_seg_len(const SegmentInputs& in) {
  constexpr int64_t C = kSegQuantum;
  const bool tma = in.tma_blocks > 0;
  const int64_t blocks = tma ? in.tma_blocks : in.tiles, slots = tma ? in.sms : in.sms * in.tiles_per_sm;
  if (slots < 1 || blocks < 1) return 0;
  const int64_t fair = (in.seqlen * in.heads * blocks + slots - 1) / slots;
  const int64_t cap = std::max<int64_t>(4 * C, (fair * 5 / 4 + C - 1) / C * C);
  return cap < in.seqlen ? cap : 0;
}

// The split (run_scan, attention_cuda.cu). Sequences of a mean length of at least 8 chunks split
// into segments of at least 4 chunks; how many: on the TMA kernels until every multiprocessor has
// one block, elsewhere until the occupancy slots are full (the measurements behind the rule are
// at run_scan). Varlen chooses from the mean length T/S (a sequence longer than the mean then
// gets more segments); when that does not split, varlen_tail_seg_len if max_seqlen exceeds it.
inline SegmentPlan plan_segments(const SegmentInputs& in) {
  constexpr int64_t C = kSegQuantum;
  SegmentPlan none;
  if (in.num_seqs < 1 || in.heads < 1) return none;
  const int64_t mean = in.varlen ? in.seqlen / in.num_seqs : in.seqlen;
  int64_t nseg = 1;
  if (may_split(in.seqlen, in.num_seqs, in.varlen)) {
    const int64_t want = in.tma_blocks > 0 ? in.sms / (in.num_seqs * in.heads * in.tma_blocks)
                                           : in.sms * in.tiles_per_sm / (in.num_seqs * in.heads * in.tiles);
    nseg = std::max<int64_t>(1, std::min<int64_t>(want, mean / (4 * C)));
  }
  SegmentPlan plan;
  if (nseg > 1) {
    const int64_t per = (mean + nseg - 1) / nseg;
    plan.seg_len = (per + C - 1) / C * C;
  } else if (in.varlen && in.max_seqlen > 0) {
    const int64_t cap = varlen_tail_seg_len(in);
    if (cap == 0 || in.max_seqlen <= cap) return none;
    plan.seg_len = cap;
    plan.tail = true;
  } else {
    return none;
  }
  plan.num_segs = (int)((in.seqlen + plan.seg_len - 1) / plan.seg_len);
  return plan.num_segs <= 1 ? none : plan;
}

// The segments of a varlen sequence of `len` rows: ⌈len/seg_len⌉, and one for an empty sequence
// (its segment 0 writes the final state).
TNL_SEG_FN int64_t varlen_segments(int64_t len, int64_t seg_len) {
  return len > 0 ? (len + seg_len - 1) / seg_len : 1;
}

// The split_segs list (chunk_scan.h) as the host computes it: {s, g} for g = 0..segments - 2 of
// each sequence s in order, n_out entries, {-1, -1} past them (entries beyond n_out dropped).
// launch_split_segs builds the same list on the device (a block-wide prefix sum of the counts).
inline std::vector<std::pair<int32_t, int32_t>> split_segs_host(const std::vector<int32_t>& cu, int64_t seg_len,
                                                                int64_t n_out) {
  std::vector<std::pair<int32_t, int32_t>> out;
  for (size_t s = 0; s + 1 < cu.size(); ++s) {
    const int64_t segs = varlen_segments(std::max<int64_t>(0, (int64_t)cu[s + 1] - cu[s]), seg_len);
    for (int64_t g = 0; g + 1 < segs && (int64_t)out.size() < n_out; ++g) out.push_back({(int32_t)s, (int32_t)g});
  }
  out.resize((size_t)n_out, {-1, -1});
  return out;
}

}  // namespace tnl::cuda

#undef TNL_SEG_FN
