// test_decode.cpp: the decode step (tnl::attention_decode), in place on a (B, H, D, E) state.
// 1. N decode steps from a random S0 equal one forward of length N: every o row and the final
//    state against the fp64 quadratic oracle.
// 2. One step alone against the fp64 reference decode.
// fp32, fp16, bf16; contiguous and odd strides (padded rows, permuted); D ≠ E; scale ≠ 1;
// slopes 0, 1e-4, 1 and mixed (slope_mix).
// Bars (spec §4): fp32 ≤ 1e-5; fp16 / bf16 ≤ 2 × the torch-like baseline of the same forward
// and ≤ 1e-2. Gaps of odd layouts and the guard after the state untouched.
#include <gtest/gtest.h>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

// Empty when the guard after `st` still holds the sentinels `fresh` has there.
std::string check_state_guard(const StateBuffer& st, const StateBuffer& fresh) {
  for (int64_t i = st.numel; i < st.buf.numel; ++i)
    if (!(st.buf.get(i) == fresh.buf.get(i)))
      return detail::cat("state guard element ", i - st.numel, " overwritten: ", st.buf.get(i));
  return "";
}

// The bar of the case's dtype, `ref` being the oracle; low precision against the torch-like
// baseline of the forward of the same case.
void expect_bar(const AttnCase& c, const Outputs& fast, const Outputs& ref) {
  const std::vector<Measured> errs = c.compare(fast, ref);
  if (c.config().dtype == DType::f32) {
    expect_all_within(errs, kBarF32Cpu, {"o", "final_state"});
  } else {
    const std::vector<Measured> base = c.compare(torch_like_forward(c), ref);
    SCOPED_TRACE("baseline: " + describe(base));
    expect_within_baseline(errs, base, {"o", "final_state"});
  }
}

std::vector<NamedCase> steps_cases() {
  std::vector<NamedCase> cases;
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (CaseLayout layout : {CaseLayout::bnhd, CaseLayout::padded, CaseLayout::permuted}) {
      AttnCaseConfig cfg = make_config(2, 70, 3, 64, 64, dt, layout);
      cfg.initial_state = true;
      cfg.scale = layout == CaseLayout::bnhd ? 1.0f : 0.7f;
      cases.push_back({detail::cat(dtype_name(dt), "_", layout_name(layout)), cfg});
    }
  AttnCaseConfig cfg = make_config(3, 40, 4, 32, 96, DType::f32, CaseLayout::bhnd);
  cfg.initial_state = true, cfg.scale = 0.3f;
  cases.push_back({"f32_D32_E96_scale", cfg});
  cfg.dtype = DType::bf16, cfg.dim_qk = 256, cfg.dim_v = 128, cfg.num_threads = 1;
  cases.push_back({"bf16_D256_E128_1thread", cfg});
  return cases;
}

class DecodeSteps : public ::testing::TestWithParam<NamedCase> {};

// N steps of tnl::attention_decode == one forward of length N (bar of the dtype).
TEST_P(DecodeSteps, EqualOneForward) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  c.run_reference_forward();
  StateBuffer state = c.initial_state;  // (B, H, D, E) fp32, updated in place
  c.poison_fast_outputs();
  const auto inputs = input_bytes(c);
  for (int64_t t = 0; t < c.config().seqlen; ++t) attention_decode(c.decode_params(t, state.data()));
  EXPECT_TRUE(input_bytes(c) == inputs) << "the decode wrote into an input buffer";
  const Outputs fast = {{"o", c.canonical(c.o)}, {"final_state", state.values()}};
  expect_bar(c, fast, c.reference_forward_outputs());
  EXPECT_EQ(c.check_gaps(), "");
  EXPECT_EQ(check_state_guard(state, c.initial_state), "");
}

INSTANTIATE_TEST_SUITE_P(Cases, DecodeSteps, ::testing::ValuesIn(steps_cases()), case_name);

std::vector<NamedCase> step_cases() {
  std::vector<NamedCase> cases;
  const int64_t dims[][2] = {{64, 64}, {128, 256}, {17, 33}, {256, 256}, {1, 1}};
  const CaseLayout layouts[] = {CaseLayout::padded, CaseLayout::permuted, CaseLayout::bnhd};
  int i = 0;
  for (DType dt : {DType::f32, DType::f16, DType::bf16})
    for (const auto& de : dims) {
      AttnCaseConfig cfg = make_config(3, 1, 8, de[0], de[1], dt, layouts[i++ % 3]);
      cfg.initial_state = true;
      cfg.scale = i % 2 ? 1.0f : 0.125f;
      cases.push_back({detail::cat(dtype_name(dt), "_D", de[0], "_E", de[1], "_",
                                   layout_name(cfg.layout)),
                       cfg});
    }
  return cases;
}

class DecodeStep : public ::testing::TestWithParam<NamedCase> {};

// One step against reference::attention_decode on the fp64 copies (bar of the dtype).
TEST_P(DecodeStep, MatchesReferenceDecode) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  StateBuffer state64 = c.initial_state64;  // (B, H, D, E) fp64
  AttnDecodeParams ref = c.decode_params(0, state64.data());
  ref.dtype = DType::f64;
  ref.q = c.q64.view(), ref.k = c.k64.view(), ref.v = c.v64.view(), ref.o = c.o64.view();
  c.o64.poison();
  reference::attention_decode(ref);

  StateBuffer state = c.initial_state;  // fp32
  c.poison_fast_outputs();
  const auto inputs = input_bytes(c);
  attention_decode(c.decode_params(0, state.data()));
  EXPECT_TRUE(input_bytes(c) == inputs) << "the decode wrote into an input buffer";
  const Outputs fast = {{"o", c.canonical(c.o)}, {"final_state", state.values()}};
  const Outputs want = {{"o", c.canonical(c.o64)}, {"final_state", state64.values()}};
  expect_bar(c, fast, want);
  EXPECT_EQ(c.check_gaps(), "");
  EXPECT_EQ(check_state_guard(state, c.initial_state), "");
}

INSTANTIATE_TEST_SUITE_P(Cases, DecodeStep, ::testing::ValuesIn(step_cases()), case_name);

}  // namespace
}  // namespace tnl::testing
