// test_segments.cpp: how the CUDA backend splits sequences into segments (segments.h, host logic
// shared with the kernels; plain C++: runs on machines without a GPU).
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "backends/cuda/segments.h"
#include "testing/testing.h"

namespace {

using tnl::cuda::plan_segments;
using tnl::cuda::SegmentInputs;
using tnl::cuda::SegmentPlan;

SegmentInputs dense(int64_t B, int64_t N, int64_t H, int64_t E, int64_t tiles_per_sm, int64_t tma_blocks) {
  SegmentInputs in;
  in.seqlen = N;
  in.num_seqs = B;
  in.heads = H;
  in.tiles = (E + 63) / 64;
  in.sms = 132;
  in.tiles_per_sm = tiles_per_sm;
  in.tma_blocks = tma_blocks;
  return in;
}

// Expected values worked out by hand from the rule in segments.h (132 SMs, as the H100/H200).
TEST(Segments, PlanFollowsTheRule) {
  // 1x16x128K, D = E = 128 on the TMA scan (one block a (sequence, head)): 132 / 16 = 8 segments.
  SegmentPlan p = plan_segments(dense(1, 131072, 16, 128, 2, 1));
  EXPECT_EQ(p.num_segs, 8);
  EXPECT_EQ(p.seg_len, 16384);
  // 8x16x8K, D = 64 on TMA: 128 blocks already give every SM one: no split.
  p = plan_segments(dense(8, 8192, 16, 64, 2, 1));
  EXPECT_EQ(p.num_segs, 1);
  EXPECT_EQ(p.seg_len, INT64_MAX);
  // ... by the occupancy slots instead (TNL_CUDA_SEGMENTS_PAIRS=0): 264 / 128 = 2.
  p = plan_segments(dense(8, 8192, 16, 64, 2, 0));
  EXPECT_EQ(p.num_segs, 2);
  EXPECT_EQ(p.seg_len, 4096);
  // A scan on TMA with two blocks a (sequence, head) (the D = 256 dq scan, 256 value columns):
  // 4x16 pairs are 128 blocks: no split.
  p = plan_segments(dense(4, 8192, 16, 256, 2, 2));
  EXPECT_EQ(p.num_segs, 1);
  // Off TMA, 4 tiles an SM, 2 a pair: 528 / 128 = 4 segments of 2K.
  p = plan_segments(dense(4, 8192, 16, 128, 4, 0));
  EXPECT_EQ(p.num_segs, 4);
  EXPECT_EQ(p.seg_len, 2048);
  // Segments of at least 4 chunks: N = 1000 of one (sequence, head) gives 3 (of 384 rows, the
  // last 232), N = 511 none (under 8 chunks).
  p = plan_segments(dense(1, 1000, 1, 64, 2, 1));
  EXPECT_EQ(p.num_segs, 3);
  EXPECT_EQ(p.seg_len, 384);
  EXPECT_EQ(plan_segments(dense(1, 511, 1, 64, 2, 1)).num_segs, 1);
  // Varlen chooses from the mean length and covers one sequence of all T tokens:
  // test_attention_cuda's SegmentedVarlen (T = 3161, S = 6, H = 2): mean 526, 2 a sequence
  // (4 chunks at least), segments of 320, 10 of them.
  SegmentInputs v = dense(6, 3161, 2, 64, 2, 1);
  v.varlen = true;
  p = plan_segments(v);
  EXPECT_EQ(p.seg_len, 320);
  EXPECT_EQ(p.num_segs, 10);
  v.seqlen = 3000;  // mean 500: under 8 chunks, no split
  EXPECT_EQ(plan_segments(v).num_segs, 1);
  // Varlen whose mean does not split (S·H fills the GPU), the tail rule: 64 sequences of 2K
  // mean, H = 16, D = E = 128 on TMA: a wave's share is ⌈131072·16/132⌉ = 15888 rows, 5/4 of it
  // 19860, in chunks 19904; 7 segments of a 131072-row sequence. Only when the caller's
  // max_seqlen is longer than that.
  SegmentInputs t = dense(64, 131072, 16, 128, 2, 1);
  t.varlen = true;
  EXPECT_EQ(plan_segments(t).num_segs, 1);  // max_seqlen unknown
  t.max_seqlen = 19904;                     // no sequence longer than a segment
  EXPECT_EQ(plan_segments(t).num_segs, 1);
  t.max_seqlen = 65536;
  p = plan_segments(t);
  EXPECT_EQ(p.seg_len, 19904);
  EXPECT_EQ(p.num_segs, 7);
  EXPECT_TRUE(p.tail);
  // ... off TMA (4 tiles an SM, 2 a pair): ⌈131072·16·2/528⌉ = 7944, 9930 -> 9984.
  t.tma_blocks = 0;
  t.tiles_per_sm = 4;
  EXPECT_EQ(plan_segments(t).seg_len, 9984);
  // The mean rule first where it splits (a longer sequence then gets more segments of its length).
  SegmentInputs m = dense(6, 3161, 2, 64, 2, 1);
  m.varlen = true;
  m.max_seqlen = 1500;
  p = plan_segments(m);
  EXPECT_EQ(p.seg_len, 320);
  EXPECT_FALSE(p.tail);
  // Segments of at least 4 chunks (test_attention_cuda's VarlenTail), and none when no sequence
  // can be longer than one (T).
  SegmentInputs small = dense(70, 3900, 2, 64, 2, 1);  // share 60 rows
  small.varlen = true;
  small.max_seqlen = 2500;
  EXPECT_EQ(plan_segments(small).seg_len, 256);
  small.seqlen = small.max_seqlen = 256;
  EXPECT_EQ(plan_segments(small).num_segs, 1);
  // Nothing to split, and no division by zero.
  EXPECT_EQ(plan_segments(dense(0, 131072, 16, 128, 2, 1)).num_segs, 1);
  EXPECT_EQ(plan_segments(dense(1, 131072, 0, 128, 2, 1)).num_segs, 1);
}

// The varlen workspace rows: over random packed batches (empty sequences, lengths that end on a
// segment boundary, one long sequence), the rows of every segment with rows are distinct, a
// sequence's consecutive, and all below varlen_segment_rows.
TEST(Segments, VarlenRowsAreDistinctAndInBounds) {
  const uint64_t seed = tnl::testing::test_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t seg_len = 64 * (1 + (int64_t)(rng() % 16));
    const int64_t S = 1 + (int64_t)(rng() % 20);
    std::vector<int32_t> cu{0};
    for (int64_t s = 0; s < S; ++s) {
      int64_t len = 0;
      switch (rng() % 5) {
        case 0: len = 0; break;
        case 1: len = seg_len * (int64_t)(1 + rng() % 4); break;  // ends on a boundary
        case 2: len = (int64_t)(rng() % 4) * seg_len + 1; break;
        case 3: len = (int64_t)(rng() % (8 * seg_len)); break;
        default: len = (int64_t)(rng() % (40 * seg_len)); break;  // long
      }
      cu.push_back(cu.back() + (int32_t)len);
    }
    const int64_t T = cu.back(), rows = tnl::cuda::varlen_segment_rows(T, S, seg_len);
    std::set<int64_t> seen;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t len = cu[s + 1] - cu[s];
      const int64_t with_rows = tnl::cuda::varlen_segments(len, seg_len);
      for (int g = 0; g < with_rows; ++g) {
        const int64_t r = tnl::cuda::varlen_segment_row(cu[s], s, g, seg_len);
        ASSERT_GE(r, 0);
        ASSERT_LT(r, rows) << "T=" << T << " S=" << S << " seg_len=" << seg_len << " s=" << s << " g=" << g;
        ASSERT_TRUE(seen.insert(r).second) << "row " << r << " twice (s=" << s << " g=" << g << ")";
        if (g > 0) {
          ASSERT_EQ(r, tnl::cuda::varlen_segment_row(cu[s], s, 0, seg_len) + g);
        }
      }
    }
  }
}

// The varlen segment list over random packed batches: every segment of every sequence is run by
// exactly one main-pass block (segment 0 by the sequence's own, segment g + 1 by entry {s, g}),
// the pre-pass computes exactly the segments before each sequence's last, and ⌊T/seg_len⌋
// entries always suffice.
TEST(Segments, SplitListCoversEverySegmentOnce) {
  const uint64_t seed = tnl::testing::test_seed();
  std::printf("seed %llu\n", (unsigned long long)seed);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t seg_len = 64 * (1 + (int64_t)(rng() % 16));
    const int64_t S = 1 + (int64_t)(rng() % 40);
    std::vector<int32_t> cu{0};
    for (int64_t s = 0; s < S; ++s) {
      const int64_t len = rng() % 3 == 0 ? (int64_t)(rng() % (30 * seg_len)) : (int64_t)(rng() % (seg_len + 2));
      cu.push_back(cu.back() + (int32_t)len);
    }
    const int64_t T = cu.back(), n_out = std::max<int64_t>(1, T / seg_len);
    const auto list = tnl::cuda::split_segs_host(cu, seg_len, n_out);
    ASSERT_EQ((int64_t)list.size(), n_out);
    std::set<std::pair<int64_t, int64_t>> run, pre;
    for (int64_t s = 0; s < S; ++s) run.insert({s, 0});
    int64_t used = 0;
    for (const auto& e : list) {
      if (e.first < 0) continue;
      ++used;
      ASSERT_TRUE(run.insert({e.first, e.second + 1}).second);
      ASSERT_TRUE(pre.insert({e.first, e.second}).second);
    }
    int64_t want = S;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t segs = tnl::cuda::varlen_segments(cu[s + 1] - cu[s], seg_len);
      want += segs - 1;
      for (int64_t g = 0; g < segs; ++g) {
        ASSERT_TRUE(run.count({s, g})) << "s=" << s << " g=" << g << " never runs";
        if (g + 1 < segs) {
          ASSERT_TRUE(pre.count({s, g})) << "s=" << s << " g=" << g << " has no local state";
        }
      }
    }
    ASSERT_EQ((int64_t)run.size(), want) << "a segment past its sequence runs";
    ASSERT_EQ((int64_t)pre.size(), used);
    ASSERT_EQ(used, want - S) << "the list was too short: T=" << T << " seg_len=" << seg_len;
  }
}

}  // namespace
