// prepass_split.h: how many sub-segments the GEMM segment pre-pass splits each segment into
// (prepass_tc.cuh), as plain C++ so that a CPU test checks the rule.
#pragma once

#include <cstdint>

namespace tnl::cuda {

// The most sub-segments k <= 8 that divide the segment's `chunks` into
// pieces of at least 2 chunks and keep k·blocks within `slots` (one wave); with at_most > 0,
// the most k <= at_most that divide so, whatever the slots. 1 when none does.
inline int prepass_split_count(int64_t blocks, int64_t slots, int64_t chunks, int at_most) {
  int best = 1;
  for (int k = 2; k <= 8; ++k) {
    const bool fits = at_most > 0 ? k <= at_most : blocks * k <= slots;
    if (fits && chunks % k == 0 && chunks / k >= 2) best = k;
  }
  return best;
}

}  // namespace tnl::cuda
