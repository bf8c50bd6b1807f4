// test_forward_lowp.cpp: the fast forward in fp16 and bf16 against the fp64 oracle, with the
// bar of spec §4: for o and final_state, ‖out − ref‖/‖ref‖ ≤ 2 × the error of the same math done
// "in torch at that dtype with fp32 accumulation" (testing/torch_baseline.h) and ≤ 1e-2 (the
// per-(sequence, head) net of attn_checks.h too); gaps of odd layouts untouched.
// Covers N = 1, 2, C-1, C, C+1, 1000; D, E ∈ {16, 64, 96, 128, 192, 256} with D ≠ E; slopes 0,
// 1e-4, 1, mixed; with / without S0; scale ≠ 1; every layout.
#include <gtest/gtest.h>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

std::vector<NamedCase> lowp_forward_cases() {
  std::vector<NamedCase> cases;
  const CaseLayout layouts[] = {CaseLayout::bnhd, CaseLayout::bhnd, CaseLayout::padded,
                                CaseLayout::permuted};
  for (DType dt : {DType::f16, DType::bf16}) {
    const std::string d = dtype_name(dt);
    int i = 0;
    for (int64_t n : {1, 2, 63, 64, 65, 1000}) {
      AttnCaseConfig cfg = make_config(n == 1000 ? 1 : 2, n, 3, 64, 64, dt, layouts[i++ % 4]);
      cfg.initial_state = n != 2;
      cases.push_back({detail::cat(d, "_N", n, "_", layout_name(cfg.layout)), cfg});
    }
    const int64_t dims[][2] = {{16, 16},   {96, 96},   {128, 128}, {192, 192},
                               {256, 256}, {256, 128}, {96, 192},  {16, 64}};
    for (const auto& de : dims) {
      AttnCaseConfig cfg = make_config(1, 130, 2, de[0], de[1], dt, layouts[i++ % 4]);
      cfg.initial_state = true;
      cfg.slopes = {0.0f, 0.25f};
      cases.push_back({detail::cat(d, "_D", de[0], "_E", de[1]), cfg});
    }
    for (float slope : {0.0f, 1e-4f, 1.0f}) {
      AttnCaseConfig cfg = make_config(2, 150, 2, 32, 32, dt, CaseLayout::padded);
      cfg.slopes.assign(2, slope);
      cfg.initial_state = slope != 0.0f;
      cases.push_back({detail::cat(d, "_slope_", slope == 0 ? "zero" : slope < 1 ? "tiny" : "one"),
                       cfg});
    }
    AttnCaseConfig cfg = make_config(2, 100, 4, 64, 64, dt, CaseLayout::permuted);
    cfg.scale = 0.125f, cfg.initial_state = true;
    cases.push_back({d + "_scale_0_125", cfg});
    cfg.final_state = false, cfg.num_threads = 1;
    cases.push_back({d + "_no_final_state_1thread", cfg});
    cfg = make_config(1, 300, 1, 128, 256, dt, CaseLayout::bhnd);
    cfg.initial_state = true, cfg.num_threads = 4;
    cases.push_back({d + "_one_head_E256_threads4", cfg});
  }
  return cases;
}

class ForwardLowPrecision : public ::testing::TestWithParam<NamedCase> {};

// Bar: ≤ 2 × torch-like baseline error and ≤ 1e-2 (spec §4).
TEST_P(ForwardLowPrecision, WithinTwiceTheTorchBaseline) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  check_forward(c);
}

INSTANTIATE_TEST_SUITE_P(Cases, ForwardLowPrecision, ::testing::ValuesIn(lowp_forward_cases()),
                         case_name);

}  // namespace
}  // namespace tnl::testing
