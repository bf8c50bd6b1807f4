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
};
struct SegmentPlan {
  int num_segs = 1;
  int64_t seg_len = INT64_MAX;
};

// The mean length a split needs: 8 chunks (a sequence's, or T/S when varlen). Below it the host
// asks nothing of the kernels (plan_segments would return no split).
inline bool may_split(int64_t seqlen, int64_t num_seqs, bool varlen) {
  const int64_t mean = varlen ? seqlen / std::max<int64_t>(1, num_seqs) : seqlen;
  return mean >= 8 * kSegQuantum;
}

// The split (run_scan, attention_cuda.cu). Sequences of a mean length of at least 8 chunks split
// into segments of at least 4 chunks; how many: on the TMA kernels until every multiprocessor has
// one block, elsewhere until the occupancy slots are full (the measurements behind the rule are
// at run_scan). Varlen chooses from the mean length T/S and covers one sequence of T tokens.
inline SegmentPlan plan_segments(const SegmentInputs& in) {
  constexpr int64_t C = kSegQuantum;
  SegmentPlan none;
  const int64_t mean = in.varlen ? in.seqlen / std::max<int64_t>(1, in.num_seqs) : in.seqlen;
  if (!may_split(in.seqlen, in.num_seqs, in.varlen) || in.num_seqs < 1 || in.heads < 1) return none;
  const int64_t want = in.tma_blocks > 0 ? in.sms / (in.num_seqs * in.heads * in.tma_blocks)
                                         : in.sms * in.tiles_per_sm / (in.num_seqs * in.heads * in.tiles);
  const int64_t nseg = std::max<int64_t>(1, std::min<int64_t>(want, mean / (4 * C)));
  if (nseg <= 1) return none;
  const int64_t per = (mean + nseg - 1) / nseg;
  SegmentPlan plan;
  plan.seg_len = (per + C - 1) / C * C;
  plan.num_segs = (int)((in.seqlen + plan.seg_len - 1) / plan.seg_len);
  return plan.num_segs <= 1 ? none : plan;
}

}  // namespace tnl::cuda

#undef TNL_SEG_FN
