// test_forward.cpp: the fast forward (tnl::attention_forward) in fp32 against the fp64 quadratic
// oracle, over the coverage list of spec §4: N = 1, 2, C-1, C, C+1, 2C+1, 1000 (C = 64) in every
// layout; D, E ∈ {16, 64, 96, 128, 192, 256} and odd ones, D ≠ E; slopes 0, 1e-4, 1, large and
// mixed per head; with / without S0 and S_final; scale ≠ 1; thread counts.
// Bar (spec §4, fp32 on the CPU): ‖out − ref‖/‖ref‖ ≤ 1e-5 for o and final_state (and the
// per-(sequence, head) net of attn_checks.h); gaps of odd layouts untouched.
#include <gtest/gtest.h>

#include <cmath>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

constexpr CaseLayout kLayouts[] = {CaseLayout::bnhd, CaseLayout::bhnd, CaseLayout::padded,
                                   CaseLayout::permuted};

std::vector<NamedCase> forward_cases() {
  std::vector<NamedCase> cases;
  // Sequence lengths around the block size, in every layout; slopes 0, 1e-4, 1 (slope_mix).
  for (int64_t n : {1, 2, 63, 64, 65, 129})
    for (CaseLayout layout : kLayouts) {
      AttnCaseConfig cfg = make_config(2, n, 3, 64, 64, DType::f32, layout);
      cfg.initial_state = true;
      cases.push_back({detail::cat("N", n, "_", layout_name(layout)), cfg});
    }
  {
    AttnCaseConfig cfg = make_config(1, 1000, 4, 64, 128);
    cfg.initial_state = true;
    cases.push_back({"N1000_D64_E128_S0", cfg});
    cfg = make_config(2, 1000, 2, 64, 64, DType::f32, CaseLayout::bhnd);
    cfg.slopes = {0.0f, 1e-4f};
    cases.push_back({"N1000_bhnd_slow_decay", cfg});
  }
  // Head dims, D ≠ E included; odd layouts on some.
  const int64_t dims[][2] = {{16, 16},  {64, 64},   {96, 96},  {128, 128}, {192, 192},
                             {256, 256}, {256, 128}, {128, 256}, {16, 192},  {192, 96},
                             {1, 1},     {33, 7},    {7, 255}};
  int i = 0;
  for (const auto& de : dims) {
    AttnCaseConfig cfg = make_config(1, 130, 2, de[0], de[1], DType::f32, kLayouts[i++ % 4]);
    cfg.initial_state = true;
    cfg.slopes = {0.0f, 0.5f};
    cases.push_back({detail::cat("D", de[0], "_E", de[1], "_", layout_name(cfg.layout)), cfg});
  }
  // Slopes: each regime alone and mixed per head, with and without S0.
  const std::vector<std::pair<const char*, std::vector<float>>> slope_sets = {
      {"zero", {0, 0, 0, 0}},        {"tiny", {1e-4f, 1e-4f, 1e-4f, 1e-4f}},
      {"one", {1, 1, 1, 1}},         {"mixed", {0, 1e-4f, 1, 0.3f}},
      {"large", {8, 30, 0.7f, 5}},   {"transnormer", slopes_transnormer(4, 3, 8)}};
  for (const auto& [name, slopes] : slope_sets)
    for (bool s0 : {false, true}) {
      AttnCaseConfig cfg = make_config(1, 200, 4, 32, 32, DType::f32, s0 ? CaseLayout::padded
                                                                         : CaseLayout::bnhd);
      cfg.slopes = slopes;
      cfg.initial_state = s0;
      cases.push_back({detail::cat("slopes_", name, s0 ? "_S0" : ""), cfg});
    }
  // Scale ≠ 1, no final state requested, thread counts, many (batch, head) pairs.
  {
    AttnCaseConfig cfg = make_config(2, 100, 2, 64, 64);
    cfg.scale = 0.125f;
    cfg.initial_state = true;
    cases.push_back({"scale_0_125", cfg});
    cfg.scale = (float)(1.0 / std::sqrt(96.0)), cfg.dim_qk = 96, cfg.layout = CaseLayout::permuted;
    cases.push_back({"scale_rsqrt_D96", cfg});
    cfg = make_config(1, 77, 2, 48, 80);
    cfg.final_state = false;
    cases.push_back({"no_final_state", cfg});
    cfg.initial_state = true;
    cases.push_back({"S0_no_final_state", cfg});
    for (int threads : {1, 2, 3}) {
      cfg = make_config(3, 150, 5, 32, 48, DType::f32, CaseLayout::bhnd);
      cfg.initial_state = true, cfg.num_threads = threads;
      cases.push_back({detail::cat("threads", threads), cfg});
    }
    cfg = make_config(4, 65, 8, 32, 32);
    cfg.initial_state = true;
    cases.push_back({"B4_H8", cfg});
    // Fewer (sequence, head) pairs than threads: backends may split E or the sequence.
    for (const auto& [e, threads] : {std::make_pair(256, 4), std::make_pair(96, 8),
                                     std::make_pair(200, 3)}) {
      cfg = make_config(1, 300, 1, 64, e, DType::f32, CaseLayout::padded);
      cfg.initial_state = true, cfg.num_threads = threads, cfg.slopes = {0.05f};
      cases.push_back({detail::cat("one_head_E", e, "_threads", threads), cfg});
    }
  }
  return cases;
}

class ForwardF32 : public ::testing::TestWithParam<NamedCase> {};

// Bar: fp32 ≤ 1e-5 (spec §4), every output.
TEST_P(ForwardF32, MatchesQuadraticOracle) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  check_forward(c);
}

INSTANTIATE_TEST_SUITE_P(Cases, ForwardF32, ::testing::ValuesIn(forward_cases()), case_name);

// The fast path reads its inputs only: q, k, v, S0 and the slopes are bit-identical afterwards,
// and a second run on the same buffers is right too (no state kept between calls).
TEST(ForwardF32Invariants, InputsUntouchedAndRunsRepeatable) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  AttnCaseConfig cfg = make_config(2, 150, 3, 64, 32, DType::f32, CaseLayout::padded);
  cfg.initial_state = true;
  AttnCase c(cfg, seed);
  const AttnCase before = c;
  c.run_reference_forward();
  for (int run = 0; run < 2; ++run) {
    SCOPED_TRACE(::testing::Message() << "run " << run);
    c.run_forward();
    expect_all_within(c.compare(c.fast_forward_outputs(), c.reference_forward_outputs()),
                      kBarF32Cpu, {"o", "final_state"});
  }
  EXPECT_EQ(c.q.buf.bytes, before.q.buf.bytes);
  EXPECT_EQ(c.k.buf.bytes, before.k.buf.bytes);
  EXPECT_EQ(c.v.buf.bytes, before.v.buf.bytes);
  EXPECT_EQ(c.initial_state.buf.bytes, before.initial_state.buf.bytes);
  EXPECT_EQ(c.slopes(), before.slopes());
}

}  // namespace
}  // namespace tnl::testing
