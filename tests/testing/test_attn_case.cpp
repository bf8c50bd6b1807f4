// test_attn_case.cpp: the test harness itself can fail. A poisoned, shifted or slightly wrong
// output is measured above the bar; a write into a gap is caught; the torch-like baseline does
// the right math (at fp32 it matches the oracle) and, at fp16 / bf16, errs more than rounding
// the exact result once (so the 2× bar can be met by a correct kernel).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "testing/attn_case.h"
#include "testing/attn_checks.h"
#include "testing/recurrent_backward.h"
#include "testing/torch_baseline.h"

namespace tnl::testing {
namespace {

double rel_of(const std::vector<Measured>& ms, const std::string& name) {
  for (const Measured& m : ms)
    if (m.output == name) return m.rel;
  return -1;
}

AttnCaseConfig small_config(DType dt, CaseLayout layout) {
  AttnCaseConfig cfg;
  cfg.batch = 2, cfg.seqlen = 70, cfg.heads = 3, cfg.dim_qk = 24, cfg.dim_v = 40;
  cfg.dtype = dt, cfg.layout = layout, cfg.scale = 0.5f;
  cfg.initial_state = true, cfg.d_final_state = true;
  return cfg;
}

// The oracle run on the fast-path buffers (so at the case's dtype): rounding the exact result
// once.
void run_oracle_into_fast_buffers(AttnCase& c) {
  c.poison_fast_outputs();
  reference::attention_forward(c.forward_params());
}

TEST(AttnCase, PoisonedOrWrongOutputsFailTheBar) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  AttnCase c(small_config(DType::f32, CaseLayout::padded), seed);
  c.run_reference_forward();
  run_oracle_into_fast_buffers(c);
  const Outputs ref = c.reference_forward_outputs();
  EXPECT_LE(rel_of(c.compare(c.fast_forward_outputs(), ref), "o"), kBarF32Cpu);
  EXPECT_EQ(c.check_gaps(), "");

  // One (sequence, head) block 50% off: above the per-block net.
  for (int64_t t = 0; t < 70; ++t)
    for (int64_t e = 0; e < 40; ++e) {
      const int64_t at = c.o.offset(1, t, 1, e);
      c.o.buf.set(at, 1.5 * c.o.buf.get(at));
    }
  for (const Measured& m : c.compare(c.fast_forward_outputs(), ref))
    if (m.output == "o") {
      EXPECT_GT(m.worst_block, 10 * kBlockNetF32);
    }
  run_oracle_into_fast_buffers(c);

  // One element left unwritten (still NaN): infinite error.
  c.o.buf.set(c.o.offset(1, 69, 2, 39), std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(rel_of(c.compare(c.fast_forward_outputs(), ref), "o"),
            std::numeric_limits<double>::infinity());

  // The final state left poisoned: infinite error.
  c.final_state.poison();
  EXPECT_EQ(rel_of(c.compare(c.fast_forward_outputs(), ref), "final_state"),
            std::numeric_limits<double>::infinity());

  // Slopes 0.1% off (a wrong decay): far above the fp32 bar.
  std::vector<float> wrong = c.slopes();
  for (float& s : wrong) s *= 1.001f;
  AttnForwardParams p = c.forward_params();
  p.slopes = wrong.data();
  c.poison_fast_outputs();
  reference::attention_forward(p);
  EXPECT_GT(rel_of(c.compare(c.fast_forward_outputs(), ref), "o"), kBarF32Cpu);

  // A scale 1e-4 off (a subtly wrong constant): above the fp32 bar.
  p.slopes = c.slopes().data();
  p.scale = c.config().scale * (1.0f + 1e-4f);
  c.poison_fast_outputs();
  reference::attention_forward(p);
  EXPECT_GT(rel_of(c.compare(c.fast_forward_outputs(), ref), "o"), kBarF32Cpu);
}

TEST(AttnCase, WritesIntoGapsAreCaught) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (CaseLayout layout : {CaseLayout::padded, CaseLayout::permuted, CaseLayout::bnhd}) {
    SCOPED_TRACE(layout_name(layout));
    AttnCase c(small_config(DType::bf16, layout), seed);
    run_oracle_into_fast_buffers(c);
    EXPECT_EQ(c.check_gaps(), "");
    // The element just past the last row of the tensor is a gap in every layout.
    c.o.buf.set(c.o.offset(1, 69, 2, 40), 0.0);
    EXPECT_NE(c.check_gaps(), "");
  }
  AttnCase c(small_config(DType::f32, CaseLayout::bnhd), seed);
  run_oracle_into_fast_buffers(c);
  c.final_state.buf.set(c.final_state.numel, 1.0);  // one past the end of the state
  EXPECT_NE(c.check_gaps(), "");
}

// At fp32 the torch-like graph is the oracle's math up to fp32 rounding: this checks the
// baseline's forward and its hand-written autograd (S0, dS_final, varlen, scale included).
TEST(TorchBaseline, AtF32MatchesTheOracle) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  AttnCaseConfig cfg = small_config(DType::f32, CaseLayout::permuted);
  for (bool varlen : {false, true}) {
    if (varlen) cfg.varlen = {5, 0, 64, 1, 90};
    SCOPED_TRACE(cfg.describe());
    AttnCase c(cfg, seed);
    c.run_reference_forward();
    c.run_reference_backward();
    const auto fwd = c.compare(torch_like_forward(c), c.reference_forward_outputs());
    const auto bwd = c.compare(torch_like_backward(c), c.reference_backward_outputs());
    expect_all_within(fwd, 1e-5, {"o", "final_state"});
    expect_all_within(bwd, 1e-5, {"dq", "dk", "dv", "d_initial_state"});
  }
}

// The O(N·D·E) backward oracle agrees with the quadratic one (varlen with empty sequences,
// S0 and dS_final on and off).
TEST(RecurrentBackward, MatchesQuadraticReference) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (int mask = 0; mask < 4; ++mask) {
    AttnCaseConfig cfg = small_config(DType::f32, CaseLayout::bhnd);
    cfg.initial_state = mask & 1, cfg.d_final_state = mask & 2;
    if (mask == 3) cfg.varlen = {0, 70, 1, 0, 130};
    SCOPED_TRACE(cfg.describe());
    AttnCase c(cfg, seed);
    c.run_reference_backward();
    expect_all_within(c.compare(recurrent_backward(c), c.reference_backward_outputs()), 1e-12,
                      {"dq", "dk", "dv", "d_initial_state"});
  }
}

// At fp16 / bf16 the baseline errs, but less than the ceiling, and at least as much as the
// exact result rounded once to the dtype (what an ideal kernel returns for o).
TEST(TorchBaseline, AtLowPrecisionErrsMoreThanOneRounding) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (DType dt : {DType::f16, DType::bf16}) {
    AttnCaseConfig cfg = small_config(dt, CaseLayout::bnhd);
    cfg.seqlen = 300;
    SCOPED_TRACE(cfg.describe());
    AttnCase c(cfg, seed);
    c.run_reference_forward();
    run_oracle_into_fast_buffers(c);
    const double once = rel_of(c.compare(c.fast_forward_outputs(), c.reference_forward_outputs()), "o");
    const double base = rel_of(c.compare(torch_like_forward(c), c.reference_forward_outputs()), "o");
    EXPECT_GT(once, 0.0);
    EXPECT_LE(once, base) << "rounded once " << once << ", baseline " << base;
    EXPECT_LT(base, kBarLowPrecision);
  }
}

}  // namespace
}  // namespace tnl::testing
