// attn_checks.h: the correctness bars of spec §4 as GoogleTest expectations over an AttnCase.
//
//   fp32 on the CPU:  ‖out − ref‖/‖ref‖ ≤ 1e-5 for every output tensor.
//   fp16 / bf16:      ≤ 2 × the error of the torch-like baseline (torch_baseline.h) and ≤ 1e-2
//                     for every output tensor.
// Besides, a net for bugs local to one (sequence, head), which the norm over a whole tensor can
// dilute: every block's own ratio (Measured::worst_block) ≤ 1e-3 (fp32) or 5e-2 (fp16 / bf16).
// A wrong, stale or missing block measures ~1 or more.
// Every failure prints the output, the measured error, the bar and (through the caller's
// SCOPED_TRACE) the seed and the case.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "testing/attn_case.h"
#include "testing/torch_baseline.h"

namespace tnl::testing {

constexpr double kBarF32Cpu = 1e-5;   // spec §4, fp32 on the CPU
constexpr double kBarLowPrecision = 1e-2;  // spec §4, fp16 / bf16 ceiling
constexpr double kBaselineFactor = 2.0;    // spec §4: ≤ 2× the torch-like baseline's error
constexpr double kBlockNetF32 = 1e-3;          // worst (sequence, head) block, fp32
constexpr double kBlockNetLowPrecision = 5e-2; // worst (sequence, head) block, fp16 / bf16

// The worst-block net that goes with a whole-tensor bar.
inline double block_net_for(double bar) {
  return bar <= kBarF32Cpu ? kBlockNetF32 : kBlockNetLowPrecision;
}

// A parametrized case: a name for the test id and its configuration.
struct NamedCase {
  std::string name;
  AttnCaseConfig cfg;
};
inline void PrintTo(const NamedCase& c, std::ostream* os) { *os << c.name; }
inline std::string case_name(const ::testing::TestParamInfo<NamedCase>& info) {
  return info.param.name;
}

inline AttnCaseConfig make_config(int64_t batch, int64_t seqlen, int64_t heads, int64_t dim_qk,
                                  int64_t dim_v, DType dtype = DType::f32,
                                  CaseLayout layout = CaseLayout::bnhd) {
  AttnCaseConfig cfg;
  cfg.batch = batch, cfg.seqlen = seqlen, cfg.heads = heads;
  cfg.dim_qk = dim_qk, cfg.dim_v = dim_v, cfg.dtype = dtype, cfg.layout = layout;
  return cfg;
}

// Every output of `fast` within `bar` of the oracle, and each of its (sequence, head) blocks
// within the net that goes with `bar`; `expected` lists the outputs that must be there.
inline void expect_all_within(const std::vector<Measured>& fast, double bar,
                              const std::vector<std::string>& expected) {
  for (const std::string& name : expected) {
    bool found = false;
    for (const Measured& m : fast) found = found || m.output == name;
    EXPECT_TRUE(found) << "output '" << name << "' was not measured";
  }
  for (const Measured& m : fast) {
    EXPECT_LE(m.rel, bar) << "output '" << m.output << "': rel error " << m.rel << " > bar "
                          << bar;
    EXPECT_LE(m.worst_block, block_net_for(bar))
        << "output '" << m.output << "': worst (seq, head) rel error " << m.worst_block << " > "
        << block_net_for(bar);
  }
}

// Low precision: fast ≤ 2 × baseline and ≤ 1e-2, output by output.
inline void expect_within_baseline(const std::vector<Measured>& fast,
                                   const std::vector<Measured>& baseline,
                                   const std::vector<std::string>& expected) {
  expect_all_within(fast, kBarLowPrecision, expected);
  for (const Measured& m : fast) {
    double base = -1;
    for (const Measured& b : baseline)
      if (b.output == m.output) base = b.rel;
    ASSERT_GE(base, 0.0) << "no baseline for output '" << m.output << "'";
    EXPECT_LE(m.rel, kBaselineFactor * base)
        << "output '" << m.output << "': rel error " << m.rel << " > " << kBaselineFactor
        << " x torch-like baseline error " << base;
  }
}

// Prints the measured errors (for the log of a passing run too).
inline std::string describe(const std::vector<Measured>& ms) {
  std::string s;
  for (const Measured& m : ms)
    s += detail::cat(m.output, " ", m.rel, " (worst block ", m.worst_block, ")  ");
  return s;
}

// The bytes of every input buffer of the fast path (which it must only read).
inline std::vector<std::vector<unsigned char>> input_bytes(const AttnCase& c) {
  return {c.q.buf.bytes, c.k.buf.bytes, c.v.buf.bytes, c.d_o.buf.bytes,
          c.initial_state.buf.bytes, c.d_final_state.buf.bytes};
}

// The forward of `c` (fast path) against the quadratic oracle, with the bar of its dtype;
// inputs unchanged, gaps untouched.
inline void check_forward(AttnCase& c) {
  c.run_reference_forward();
  const auto inputs = input_bytes(c);
  c.run_forward();
  EXPECT_TRUE(input_bytes(c) == inputs) << "the forward wrote into an input buffer";
  const std::vector<Measured> fast = c.compare(c.fast_forward_outputs(), c.reference_forward_outputs());
  std::vector<std::string> expected = {"o"};
  if (c.config().final_state) expected.push_back("final_state");
  if (c.config().dtype == DType::f32) {
    expect_all_within(fast, kBarF32Cpu, expected);
  } else {
    const std::vector<Measured> base =
        c.compare(torch_like_forward(c), c.reference_forward_outputs());
    SCOPED_TRACE("baseline: " + describe(base));
    ::testing::Test::RecordProperty("baseline_rel_errors", describe(base));
    expect_within_baseline(fast, base, expected);
  }
  EXPECT_EQ(c.check_gaps(), "");
  ::testing::Test::RecordProperty("rel_errors", describe(fast));
}

// The backward of `c` (fast path) against the fp64 oracle, with the bar of its dtype;
// inputs unchanged, gaps untouched.
inline void check_backward(AttnCase& c) {
  c.run_reference_backward();
  const auto inputs = input_bytes(c);
  c.run_backward();
  EXPECT_TRUE(input_bytes(c) == inputs) << "the backward wrote into an input buffer";
  const std::vector<Measured> fast =
      c.compare(c.fast_backward_outputs(), c.reference_backward_outputs());
  std::vector<std::string> expected = {"dq", "dk", "dv"};
  if (c.config().d_initial_state) expected.push_back("d_initial_state");
  if (c.config().dtype == DType::f32) {
    expect_all_within(fast, kBarF32Cpu, expected);
  } else {
    const std::vector<Measured> base =
        c.compare(torch_like_backward(c), c.reference_backward_outputs());
    SCOPED_TRACE("baseline: " + describe(base));
    ::testing::Test::RecordProperty("baseline_rel_errors", describe(base));
    expect_within_baseline(fast, base, expected);
  }
  EXPECT_EQ(c.check_gaps(), "");
  ::testing::Test::RecordProperty("rel_errors", describe(fast));
}

}  // namespace tnl::testing
