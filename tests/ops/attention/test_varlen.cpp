// test_varlen.cpp: packed variable-length sequences (cu_seqlens, batch 1).
// 1. Forward and backward against the fp64 oracle, lengths 1..3C mixed with zero-length
//    sequences (first, middle, last), per-sequence S0 / S_final / dS_final / dS0, every layout.
//    Bars (spec §4): fp32 ≤ 1e-5; fp16 / bf16 ≤ 2 × torch-like baseline and ≤ 1e-2.
// 2. The packed run equals running each sequence alone (the state resets at every boundary):
//    every output of every sequence, fp32 within 1e-5, bf16 within 1e-2 (relative, per output);
//    a zero-length sequence passes S0 through to S_final and dS_final through to dS0.
#include <gtest/gtest.h>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

const std::vector<int64_t> kMixed = {1, 64, 0, 130, 63, 65, 192, 2, 5};
const std::vector<int64_t> kZeroEnds = {0, 3, 129, 0};
const std::vector<int64_t> kManyShort = {1, 2, 1, 3, 1, 1, 7, 0, 2, 1, 4, 1, 1, 9, 2, 1};

std::vector<NamedCase> varlen_cases() {
  std::vector<NamedCase> cases;
  const CaseLayout layouts[] = {CaseLayout::bnhd, CaseLayout::bhnd, CaseLayout::padded,
                                CaseLayout::permuted};
  for (CaseLayout layout : layouts) {
    AttnCaseConfig cfg = make_config(1, 0, 3, 64, 64, DType::f32, layout);
    cfg.varlen = kMixed;
    cfg.initial_state = cfg.d_final_state = true;
    cases.push_back({detail::cat("mixed_", layout_name(layout)), cfg});
  }
  AttnCaseConfig cfg = make_config(1, 0, 2, 32, 96, DType::f32, CaseLayout::padded);
  cfg.varlen = kZeroEnds, cfg.initial_state = cfg.d_final_state = true, cfg.scale = 0.5f;
  cases.push_back({"zero_ends_D32_E96", cfg});
  cfg = make_config(1, 0, 4, 16, 16);
  cfg.varlen = kManyShort;
  cases.push_back({"many_short_no_states", cfg});
  cfg.initial_state = true, cfg.num_threads = 1;
  cases.push_back({"many_short_S0_1thread", cfg});
  cfg = make_config(1, 0, 2, 128, 128);
  cfg.varlen = {192}, cfg.initial_state = cfg.d_final_state = true;
  cases.push_back({"one_sequence", cfg});
  for (DType dt : {DType::f16, DType::bf16}) {
    cfg = make_config(1, 0, 3, 64, 64, dt, CaseLayout::permuted);
    cfg.varlen = kMixed, cfg.initial_state = cfg.d_final_state = true;
    cases.push_back({detail::cat(dtype_name(dt), "_mixed"), cfg});
  }
  return cases;
}

class Varlen : public ::testing::TestWithParam<NamedCase> {};

TEST_P(Varlen, ForwardMatchesOracle) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  check_forward(c);
}

TEST_P(Varlen, BackwardMatchesOracle) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  check_backward(c);
}

INSTANTIATE_TEST_SUITE_P(Cases, Varlen, ::testing::ValuesIn(varlen_cases()), case_name);

// `base` advanced by `elems` elements of `dt`.
template <class Ptr>
Ptr advance(Ptr base, int64_t elems, DType dt) {
  using Byte = std::conditional_t<std::is_const_v<std::remove_pointer_t<Ptr>>, const char, char>;
  return static_cast<Ptr>(static_cast<Byte*>(base) + elems * dtype_size(dt));
}

template <class View>
View rows_from(View t, int64_t first_row, DType dt) {
  t.data = advance(t.data, first_row * t.stride_seq, dt);
  return t;
}

// The packed run against one fast-path run per sequence on the same buffers.
void check_against_alone(DType dt) {
  const uint64_t seed = test_seed();
  AttnCaseConfig cfg = make_config(1, 0, 3, 48, 40, dt, CaseLayout::padded);
  cfg.varlen = kMixed;
  cfg.initial_state = cfg.d_final_state = true;
  SCOPED_TRACE(::testing::Message() << "seed " << seed << "; " << cfg.describe());
  AttnCase c(cfg, seed);
  c.run_forward();
  const Outputs packed_fwd = c.fast_forward_outputs();
  c.run_backward();
  const Outputs packed_bwd = c.fast_backward_outputs();

  AttnCase alone = c;  // same inputs; its output buffers collect the per-sequence runs
  alone.poison_fast_outputs();
  const int64_t hde = cfg.heads * cfg.dim_qk * cfg.dim_v;
  for (int64_t s = 0; s < c.num_seqs(); ++s) {
    const int64_t first = c.seq_begin(s);
    if (c.seq_len(s) == 0) {  // S_final = S0, dS0 = dS_final
      for (int64_t i = s * hde; i < (s + 1) * hde; ++i) {
        alone.final_state.buf.set(i, c.initial_state.buf.get(i));
        alone.d_initial_state.buf.set(i, c.d_final_state.buf.get(i));
      }
      continue;
    }
    AttnForwardParams f = alone.forward_params();
    f.cu_seqlens = nullptr, f.num_seqs = 0, f.max_seqlen = 0, f.shape.seqlen = c.seq_len(s);
    f.q = rows_from(f.q, first, dt), f.k = rows_from(f.k, first, dt);
    f.v = rows_from(f.v, first, dt), f.o = rows_from(f.o, first, dt);
    f.initial_state = advance(f.initial_state, s * hde, DType::f32);
    f.final_state = advance(f.final_state, s * hde, DType::f32);
    attention_forward(f);
    AttnBackwardParams b = alone.backward_params();
    b.cu_seqlens = nullptr, b.num_seqs = 0, b.max_seqlen = 0, b.shape.seqlen = c.seq_len(s);
    b.q = rows_from(b.q, first, dt), b.k = rows_from(b.k, first, dt);
    b.v = rows_from(b.v, first, dt), b.d_o = rows_from(b.d_o, first, dt);
    b.dq = rows_from(b.dq, first, dt), b.dk = rows_from(b.dk, first, dt);
    b.dv = rows_from(b.dv, first, dt);
    b.initial_state = advance(b.initial_state, s * hde, DType::f32);
    b.d_final_state = advance(b.d_final_state, s * hde, DType::f32);
    b.d_initial_state = advance(b.d_initial_state, s * hde, DType::f32);
    attention_backward(b);
  }
  const double bar = dt == DType::f32 ? kBarF32Cpu : kBarLowPrecision;
  expect_all_within(c.compare(packed_fwd, alone.fast_forward_outputs()), bar,
                    {"o", "final_state"});
  expect_all_within(c.compare(packed_bwd, alone.fast_backward_outputs()), bar,
                    {"dq", "dk", "dv", "d_initial_state"});
  EXPECT_EQ(alone.check_gaps(), "");
}

// Bar: fp32 packed vs alone within 1e-5 per output (blocks: see attn_checks.h).
TEST(VarlenAlone, F32EqualsEachSequenceAlone) { check_against_alone(DType::f32); }
// Bar: bf16 packed vs alone within 1e-2.
TEST(VarlenAlone, Bf16EqualsEachSequenceAlone) { check_against_alone(DType::bf16); }

}  // namespace
}  // namespace tnl::testing
