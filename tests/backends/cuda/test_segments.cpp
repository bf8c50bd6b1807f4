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
      const int64_t with_rows = len == 0 ? 1 : (len + seg_len - 1) / seg_len;
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

}  // namespace
