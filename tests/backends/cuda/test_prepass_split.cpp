// test_prepass_split.cpp: the GEMM segment pre-pass's sub-segment count (host logic of the
// CUDA backend, plain C++: runs on machines without a GPU).
#include <gtest/gtest.h>

#include "backends/cuda/prepass_split.h"

namespace {

// Expected values worked out by hand from the rule in prepass_split.h (k divides the chunks,
// at least 2 chunks a piece, k x blocks within one wave of slots).
TEST(PrepassSplit, CountFollowsTheRule) {
  using tnl::cuda::prepass_split_count;
  EXPECT_EQ(prepass_split_count(112, 264, 256, 0), 2);   // 1x16x128K on 132 SMs: 3 x 112 > 264
  EXPECT_EQ(prepass_split_count(127, 132, 16, 0), 1);    // 2 x 127 > 132
  EXPECT_EQ(prepass_split_count(15, 264, 4, 0), 2);      // 4 would leave 1-chunk pieces
  EXPECT_EQ(prepass_split_count(10, 264, 24, 0), 8);
  EXPECT_EQ(prepass_split_count(10, 264, 6, 0), 3);      // 4, 5 do not divide 6; 6 leaves 1 chunk
  EXPECT_EQ(prepass_split_count(10, 264, 5, 0), 1);      // 5 chunks: only 5 divides, 1-chunk pieces
  EXPECT_EQ(prepass_split_count(40, 264, 64, 0), 4);     // 5, 6 do not divide 64; 7, 8 x 40 > 264
  EXPECT_EQ(prepass_split_count(1000, 10, 16, 4), 4);    // at most 4, whatever the slots
  EXPECT_EQ(prepass_split_count(1000, 10, 16, 1), 1);
}

}  // namespace
