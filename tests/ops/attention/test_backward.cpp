// test_backward.cpp: the backward.
// 1. The fp64 reference backward against central differences of the fp64 reference forward,
//    loss = Σ o ⊙ W + Σ S_final ⊙ W_f (W, W_f random), for every element of q, k, v and S0.
//    Bar: ‖grad − fd‖/‖fd‖ ≤ 1e-8 (the loss is multilinear, so differences are exact up to
//    fp64 rounding).
// 2. The fast backward (tnl::attention_backward) against the reference backward (its params
//    from the forward's, attention_backward_params, itself checked field by field first):
//    fp32 ≤ 1e-5 for dq, dk, dv, d_initial_state (spec §4, CPU; blocks: see attn_checks.h);
//    fp16 / bf16 ≤ 2 × the torch-like baseline's error and ≤ 1e-2.
//    Covers N = 1, 2, C-1, C, C+1, 2C+1, 1000, head dims incl. D ≠ E, slopes 0 / 1e-4 / 1 /
//    mixed, with / without S0 and dS_final, every layout, scale ≠ 1.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double acc = 0;
  for (size_t i = 0; i < a.size(); ++i) acc += a[i] * b[i];
  return acc;
}

// Σ o ⊙ W + Σ S_final ⊙ W_f, by the reference forward on the case's (f64) fast-path buffers.
double loss(AttnCase& c) {
  c.poison_fast_outputs();
  reference::attention_forward(c.forward_params());
  return dot(c.canonical(c.o), c.canonical(c.d_o)) +
         dot(c.final_state.values(), c.d_final_state.values());
}

// Central differences of the loss for every element of a token tensor, canonical order.
std::vector<double> fd_tensor(AttnCase& c, StridedTensor& x, double h) {
  std::vector<double> grad;
  for (int64_t s = 0; s < c.num_seqs(); ++s)
    for (int64_t hd = 0; hd < c.config().heads; ++hd)
      for (int64_t t = 0; t < c.seq_len(s); ++t)
        for (int64_t d = 0; d < x.dim; ++d) {
          const int64_t at = x.offset(c.seq_batch(s), c.seq_begin(s) + t, hd, d);
          const double x0 = x.buf.get(at);
          x.buf.set(at, x0 + h);
          const double up = loss(c);
          x.buf.set(at, x0 - h);
          const double down = loss(c);
          x.buf.set(at, x0);
          grad.push_back((up - down) / (2 * h));
        }
  return grad;
}

std::vector<double> fd_state(AttnCase& c, StateBuffer& st, double h) {
  std::vector<double> grad;
  for (int64_t i = 0; i < st.numel; ++i) {
    const double x0 = st.buf.get(i);
    st.buf.set(i, x0 + h);
    const double up = loss(c);
    st.buf.set(i, x0 - h);
    const double down = loss(c);
    st.buf.set(i, x0);
    grad.push_back((up - down) / (2 * h));
  }
  return grad;
}

// Bar: reference gradients within 1e-8 of central differences (fp64).
// attention_backward_params: every field the backward shares with its forward, copied; the
// backward's own (d_o, dq, dk, dv, d_final_state, d_initial_state) left empty.
TEST(BackwardParams, CarryTheForwardsSharedFields) {
  int32_t cu[3] = {0, 3, 7};
  float slopes[2] = {0.1f, 0.2f};
  char q, k, v, o, s0, sf, starts, stream;
  AttnForwardParams f;
  f.dtype = DType::bf16;
  f.device = Device::cuda;
  f.shape = {1, 7, 2, 16, 32};
  f.q = ConstSeqTensor(&q, 11, 12, 13);
  f.k = ConstSeqTensor(&k, 14, 15, 16);
  f.v = ConstSeqTensor(&v, 17, 18, 19);
  f.o = SeqTensor(&o, 20, 21, 22);
  f.slopes = slopes;
  f.scale = 0.375f;
  f.cu_seqlens = cu;
  f.num_seqs = 2;
  f.max_seqlen = 4;
  f.initial_state = &s0;
  f.final_state = &sf;
  f.num_threads = 3;
  f.stream = &stream;
  f.intermediates = Intermediates::rounded;
  f.segment_starts = &starts;
  f.segment_starts_bytes = 4096;
  const AttnBackwardParams b = attention_backward_params(f);
  EXPECT_EQ(b.dtype, f.dtype);
  EXPECT_EQ(b.device, f.device);
  EXPECT_EQ(b.shape.batch, 1);
  EXPECT_EQ(b.shape.seqlen, 7);
  EXPECT_EQ(b.shape.heads, 2);
  EXPECT_EQ(b.shape.dim_qk, 16);
  EXPECT_EQ(b.shape.dim_v, 32);
  for (auto [got, want] : {std::make_pair(b.q, f.q), std::make_pair(b.k, f.k), std::make_pair(b.v, f.v)}) {
    EXPECT_EQ(got.data, want.data);
    EXPECT_EQ(got.stride_batch, want.stride_batch);
    EXPECT_EQ(got.stride_seq, want.stride_seq);
    EXPECT_EQ(got.stride_head, want.stride_head);
  }
  EXPECT_EQ(b.slopes, slopes);
  EXPECT_EQ(b.scale, 0.375f);
  EXPECT_EQ(b.cu_seqlens, cu);
  EXPECT_EQ(b.num_seqs, 2);
  EXPECT_EQ(b.max_seqlen, 4);
  EXPECT_EQ(b.initial_state, &s0);
  EXPECT_EQ(b.num_threads, 3);
  EXPECT_EQ(b.stream, &stream);
  EXPECT_EQ(b.intermediates, Intermediates::rounded);
  EXPECT_EQ(b.segment_starts, &starts);
  EXPECT_EQ(b.segment_starts_bytes, 4096u);
  EXPECT_EQ(b.d_o.data, nullptr);
  EXPECT_EQ(b.dq.data, nullptr);
  EXPECT_EQ(b.dk.data, nullptr);
  EXPECT_EQ(b.dv.data, nullptr);
  EXPECT_EQ(b.d_final_state, nullptr);
  EXPECT_EQ(b.d_initial_state, nullptr);
}

TEST(BackwardReference, MatchesFiniteDifferences) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (bool varlen : {false, true}) {
    AttnCaseConfig cfg = make_config(2, 6, 2, 3, 4, DType::f64, CaseLayout::padded);
    if (varlen) cfg.varlen = {3, 0, 5, 1};
    cfg.slopes = {0.3f, 0.0f};
    cfg.scale = 0.7f;
    cfg.initial_state = cfg.d_final_state = true;
    SCOPED_TRACE(cfg.describe());
    AttnCase c(cfg, seed);
    c.poison_fast_outputs();
    reference::attention_backward(c.backward_params());
    const Outputs grads = c.fast_backward_outputs();
    const double h = 1e-4;
    const std::pair<const char*, std::vector<double>> fd[] = {
        {"dq", fd_tensor(c, c.q, h)},
        {"dk", fd_tensor(c, c.k, h)},
        {"dv", fd_tensor(c, c.v, h)},
        {"d_initial_state", fd_state(c, c.initial_state, h)}};
    for (const auto& [name, numeric] : fd) {
      const double err = rel_error(grads.at(name), numeric);
      EXPECT_LE(err, 1e-8) << name << ": reference gradient vs central differences";
    }
  }
}

constexpr CaseLayout kLayouts[] = {CaseLayout::bnhd, CaseLayout::bhnd, CaseLayout::padded,
                                   CaseLayout::permuted};

std::vector<NamedCase> backward_cases() {
  std::vector<NamedCase> cases;
  for (int64_t n : {1, 2, 63, 64, 65, 129})
    for (CaseLayout layout : kLayouts) {
      AttnCaseConfig cfg = make_config(2, n, 3, 64, 64, DType::f32, layout);
      cfg.initial_state = cfg.d_final_state = true;
      cases.push_back({detail::cat("N", n, "_", layout_name(layout)), cfg});
    }
  {
    AttnCaseConfig cfg = make_config(1, 1000, 3, 64, 64);
    cfg.initial_state = cfg.d_final_state = true;
    cases.push_back({"N1000", cfg});
  }
  const int64_t dims[][2] = {{16, 16},   {96, 96},   {128, 128}, {192, 192}, {256, 256},
                             {256, 128}, {128, 256}, {16, 192},  {33, 7}};
  int i = 0;
  for (const auto& de : dims) {
    AttnCaseConfig cfg = make_config(1, 130, 2, de[0], de[1], DType::f32, kLayouts[i++ % 4]);
    cfg.initial_state = cfg.d_final_state = true;
    cfg.slopes = {0.0f, 0.5f};
    cases.push_back({detail::cat("D", de[0], "_E", de[1]), cfg});
  }
  // S0 / dS_final on and off; slopes each regime; dS0 not asked for; scale; threads.
  for (int mask = 0; mask < 4; ++mask) {
    AttnCaseConfig cfg = make_config(2, 150, 4, 32, 48, DType::f32, kLayouts[mask]);
    cfg.initial_state = mask & 1, cfg.d_final_state = mask & 2;
    cases.push_back({detail::cat("S0_", mask & 1, "_dSf_", (mask >> 1) & 1), cfg});
  }
  const std::pair<const char*, float> slopes[] = {
      {"zero", 0.0f}, {"tiny", 1e-4f}, {"one", 1.0f}, {"large", 8.0f}};
  for (const auto& [name, slope] : slopes) {
    AttnCaseConfig cfg = make_config(1, 200, 2, 32, 32);
    cfg.slopes.assign(2, slope);
    cfg.initial_state = cfg.d_final_state = true;
    cases.push_back({detail::cat("slope_", name), cfg});
  }
  AttnCaseConfig cfg = make_config(2, 100, 2, 64, 64, DType::f32, CaseLayout::permuted);
  cfg.scale = 0.125f, cfg.initial_state = cfg.d_final_state = true;
  cases.push_back({"scale_0_125", cfg});
  cfg.d_initial_state = false, cfg.num_threads = 1;
  cases.push_back({"no_dS0_1thread", cfg});
  cfg = make_config(4, 65, 8, 32, 32);
  cfg.initial_state = cfg.d_final_state = true, cfg.num_threads = 2;
  cases.push_back({"B4_H8_2threads", cfg});
  // Fewer (sequence, head) pairs than threads: backends may split E or the sequence.
  cfg = make_config(1, 300, 1, 128, 256, DType::f32, CaseLayout::padded);
  cfg.initial_state = cfg.d_final_state = true, cfg.num_threads = 4, cfg.slopes = {0.05f};
  cases.push_back({"one_head_E256_threads4", cfg});
  cfg.dim_qk = 192, cfg.dim_v = 96, cfg.num_threads = 8, cfg.layout = CaseLayout::bhnd;
  cases.push_back({"one_head_D192_E96_threads8", cfg});
  // Low precision.
  for (DType dt : {DType::f16, DType::bf16}) {
    const std::string d = dtype_name(dt);
    for (int64_t n : {1, 65, 300}) {
      cfg = make_config(2, n, 3, 64, 64, dt, kLayouts[i++ % 4]);
      cfg.initial_state = cfg.d_final_state = true;
      cases.push_back({detail::cat(d, "_N", n), cfg});
    }
    for (const auto& de : {std::make_pair(128, 128), std::make_pair(256, 128),
                           std::make_pair(96, 192), std::make_pair(16, 16)}) {
      cfg = make_config(1, 130, 2, de.first, de.second, dt, kLayouts[i++ % 4]);
      cfg.initial_state = cfg.d_final_state = true;
      cases.push_back({detail::cat(d, "_D", de.first, "_E", de.second), cfg});
    }
    cfg = make_config(2, 100, 2, 32, 32, dt, CaseLayout::padded);
    cfg.scale = 0.25f;
    cases.push_back({d + "_no_S0_no_dSf", cfg});
  }
  return cases;
}

class Backward : public ::testing::TestWithParam<NamedCase> {};

// Bar: fp32 ≤ 1e-5; fp16 / bf16 ≤ 2 × torch-like baseline and ≤ 1e-2 (spec §4).
TEST_P(Backward, MatchesReferenceBackward) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (TNL_TEST_SEED to replay); "
                                    << GetParam().cfg.describe());
  AttnCase c(GetParam().cfg, seed);
  check_backward(c);
}

INSTANTIATE_TEST_SUITE_P(Cases, Backward, ::testing::ValuesIn(backward_cases()), case_name);

}  // namespace
}  // namespace tnl::testing
