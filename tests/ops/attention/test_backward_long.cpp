// test_backward_long.cpp: N = 10^5 tokens, backward, against the O(N·D·E) fp64 recurrences of
// spec §1 (testing/recurrent_backward.h; the quadratic oracle would take hours). Small H, D, E;
// slopes 0, 1e-4, 1; with S0 and dS_final.
// Bars: fp32 ≤ 1e-5 (spec §4) for dq, dk, dv, d_initial_state, every element finite; bf16 ≤ 1e-2
// (the spec's ceiling; the 2× torch-baseline part is checked at N ≤ 300 in test_backward.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "testing/attn_checks.h"
#include "testing/recurrent_backward.h"

namespace tnl::testing {
namespace {

constexpr int64_t kLongN = 100000;

void check_long_backward(DType dt, CaseLayout layout, double bar) {
  const uint64_t seed = test_seed();
  AttnCaseConfig cfg = make_config(1, kLongN, 3, 16, 16, dt, layout);
  cfg.slopes = {0.0f, 1e-4f, 1.0f};
  cfg.scale = 0.5f;
  cfg.initial_state = cfg.d_final_state = true;
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << cfg.describe());
  AttnCase c(cfg, seed);
  c.run_backward();
  const Outputs fast = c.fast_backward_outputs();
  for (const auto& [name, values] : fast) {
    int64_t bad = 0;
    for (double x : values) bad += std::isfinite(x) ? 0 : 1;
    EXPECT_EQ(bad, 0) << name << ": non-finite elements";
  }
  const std::vector<Measured> errs = c.compare(fast, recurrent_backward(c));
  ::testing::Test::RecordProperty("rel_errors", describe(errs));
  expect_all_within(errs, bar, {"dq", "dk", "dv", "d_initial_state"});
  EXPECT_EQ(c.check_gaps(), "");
}

// Bar: fp32 ≤ 1e-5.
TEST(BackwardLong, F32HundredThousandTokens) {
  check_long_backward(DType::f32, CaseLayout::bhnd, kBarF32Cpu);
}
// Bar: bf16 ≤ 1e-2.
TEST(BackwardLong, Bf16HundredThousandTokens) {
  check_long_backward(DType::bf16, CaseLayout::permuted, kBarLowPrecision);
}

}  // namespace
}  // namespace tnl::testing
