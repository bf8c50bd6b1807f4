// test_forward_long.cpp: N = 10^5 tokens, forward, against the fp64 recurrence
// (reference::attention_forward_recurrent, O(N·D·E); the quadratic oracle would take hours).
// Small H, D, E keep it fast. Slopes 0 (the state only grows), 1e-4 and 1; with S0.
// Bars: fp32 ≤ 1e-5 (spec §4) and every output finite; bf16 ≤ 1e-2 (the spec's ceiling: the
// torch-like baseline is quadratic in N, so the 2× part of the bar is checked at N ≤ 1000 in
// test_forward_lowp.cpp).
#include <gtest/gtest.h>

#include <cmath>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

constexpr int64_t kLongN = 100000;

void check_long(DType dt, CaseLayout layout, double bar) {
  const uint64_t seed = test_seed();
  AttnCaseConfig cfg = make_config(1, kLongN, 3, 16, 16, dt, layout);
  cfg.slopes = {0.0f, 1e-4f, 1.0f};
  cfg.initial_state = true;
  cfg.backward = false;
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << cfg.describe());
  AttnCase c(cfg, seed);
  c.run_reference_forward_recurrent();
  c.run_forward();
  const Outputs fast = c.fast_forward_outputs();
  for (const auto& [name, values] : fast) {
    int64_t bad = 0;
    for (double x : values) bad += std::isfinite(x) ? 0 : 1;
    EXPECT_EQ(bad, 0) << name << ": non-finite elements";
  }
  const std::vector<Measured> errs = c.compare(fast, c.reference_forward_outputs());
  ::testing::Test::RecordProperty("rel_errors", describe(errs));
  expect_all_within(errs, bar, {"o", "final_state"});
  EXPECT_EQ(c.check_gaps(), "");
}

// Bar: fp32 ≤ 1e-5.
TEST(ForwardLong, F32HundredThousandTokens) { check_long(DType::f32, CaseLayout::bnhd, kBarF32Cpu); }
// Bar: fp32 ≤ 1e-5, head-major layout.
TEST(ForwardLong, F32HundredThousandTokensHeadMajor) {
  check_long(DType::f32, CaseLayout::bhnd, kBarF32Cpu);
}
// Bar: bf16 ≤ 1e-2.
TEST(ForwardLong, Bf16HundredThousandTokens) {
  check_long(DType::bf16, CaseLayout::padded, kBarLowPrecision);
}

}  // namespace
}  // namespace tnl::testing
