// test_cpu_long_slow.cpp: the fast CPU path at N = 10^6 tokens (spec §2: no λ^{-t}, nothing
// overflows, the fp32 state stays accurate), s = 0, tiny and 1, against fp64 recurrences:
// reference::attention_forward_recurrent for the forward, and the Ŝ recurrence of spec §1 for
// the backward (written here, O(N·D·E)). fp32 bar 1e-5 (spec §4).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "backends/cpu/attention_cpu.h"
#include "testing/testing.h"

namespace tnl::cpu {
namespace {

using testing::HostTensor;
using testing::rel_error;

constexpr int64_t kN = 1000000, kH = 3, kD = 16, kE = 16;
constexpr double kF32Bar = 1e-5;

struct LongCase {
  std::vector<float> slopes = {0.0f, 1e-4f, 1.0f};
  float scale = 0.5f;
  HostTensor q{DType::f32, kN * kH * kD}, k{DType::f32, kN * kH * kD};
  HostTensor v{DType::f32, kN * kH * kE}, g{DType::f32, kN * kH * kE};
  HostTensor s0{DType::f32, kH * kD * kE}, dsf{DType::f32, kH * kD * kE};

  explicit LongCase(uint64_t seed) {
    std::mt19937_64 rng(seed);
    q.fill_normal(rng, 1.0 / std::sqrt((double)kD));
    k.fill_normal(rng, 1.0 / std::sqrt((double)kD));
    v.fill_normal(rng, 1.0), g.fill_normal(rng, 1.0);
    s0.fill_normal(rng, 1.0), dsf.fill_normal(rng, 1.0);
  }
  ConstSeqTensor in(const HostTensor& t, int64_t dim) const {
    return seq_tensor(t.data(), Layout::bnhd, 1, kN, kH, dim);
  }
  SeqTensor out(HostTensor& t, int64_t dim) const {
    return seq_tensor(t.data(), Layout::bnhd, 1, kN, kH, dim);
  }
};

// Element (t, h, i) of a (1, N, H, dim) bnhd tensor.
inline int64_t at(int64_t t, int64_t h, int64_t i, int64_t dim) { return (t * kH + h) * dim + i; }

TEST(CpuLong, ForwardAtOneMillionTokens) {
  const uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  LongCase c(seed);
  HostTensor o(DType::f32, kN * kH * kE), sf(DType::f32, kH * kD * kE);
  o.poison(), sf.poison();
  AttnForwardParams p;
  p.shape = {1, kN, kH, kD, kE};
  p.q = c.in(c.q, kD), p.k = c.in(c.k, kD), p.v = c.in(c.v, kE), p.o = c.out(o, kE);
  p.slopes = c.slopes.data(), p.scale = c.scale;
  p.initial_state = c.s0.data(), p.final_state = sf.data();
  tnl::attention_forward(p);

  // The fp64 recurrence (validates f32 inputs; states fp32 on input, written as fp32).
  HostTensor oref(DType::f32, kN * kH * kE), sfref(DType::f32, kH * kD * kE);
  AttnForwardParams r = p;
  r.o = c.out(oref, kE), r.final_state = sfref.data();
  reference::attention_forward_recurrent(r);
  const double eo = rel_error(o, oref), es = rel_error(sf, sfref);
  std::printf("N=%lld forward: o %.2e final_state %.2e (bar %.0e)\n", (long long)kN, eo, es,
              kF32Bar);
  EXPECT_LE(eo, kF32Bar);
  EXPECT_LE(es, kF32Bar);
  for (int64_t h = 0; h < kH; ++h) {  // per head too: s = 0 must not hide behind s = 1
    std::vector<double> a, b;
    for (int64_t t = kN - 1000; t < kN; ++t)
      for (int64_t e = 0; e < kE; ++e) {
        a.push_back(o.get(at(t, h, e, kE)));
        b.push_back(oref.get(at(t, h, e, kE)));
      }
    EXPECT_LE(rel_error(a, b), kF32Bar) << "last 1000 tokens of head " << h;
  }
}

TEST(CpuLong, BackwardAtOneMillionTokens) {
  const uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  LongCase c(seed);
  const int64_t nqk = kN * kH * kD, nv = kN * kH * kE;
  HostTensor dq(DType::f32, nqk), dk(DType::f32, nqk), dv(DType::f32, nv);
  HostTensor ds0(DType::f32, kH * kD * kE);
  dq.poison(), dk.poison(), dv.poison(), ds0.poison();
  AttnBackwardParams p;
  p.shape = {1, kN, kH, kD, kE};
  p.q = c.in(c.q, kD), p.k = c.in(c.k, kD), p.v = c.in(c.v, kE), p.d_o = c.in(c.g, kE);
  p.dq = c.out(dq, kD), p.dk = c.out(dk, kD), p.dv = c.out(dv, kE);
  p.slopes = c.slopes.data(), p.scale = c.scale;
  p.initial_state = c.s0.data(), p.d_final_state = c.dsf.data(), p.d_initial_state = ds0.data();
  tnl::attention_backward(p);

  // fp64 recurrences of spec §1: S forward for dq, Ŝ backward for dk, dv, dS0.
  std::vector<double> rdq(nqk), rdk(nqk), rdv(nv), rds0(kH * kD * kE);
  const double sc = c.scale;
  for (int64_t h = 0; h < kH; ++h) {
    const double lam = std::exp(-(double)c.slopes[h]);
    std::vector<double> S(kD * kE);
    for (int64_t i = 0; i < kD * kE; ++i) S[i] = c.s0.get(h * kD * kE + i);
    for (int64_t t = 0; t < kN; ++t) {
      for (int64_t d = 0; d < kD; ++d)
        for (int64_t e = 0; e < kE; ++e)
          S[d * kE + e] = lam * S[d * kE + e] + c.k.get(at(t, h, d, kD)) * c.v.get(at(t, h, e, kE));
      for (int64_t d = 0; d < kD; ++d) {
        double acc = 0;
        for (int64_t e = 0; e < kE; ++e) acc += c.g.get(at(t, h, e, kE)) * S[d * kE + e];
        rdq[at(t, h, d, kD)] = sc * acc;
      }
    }
    std::vector<double> R(kD * kE);  // Ŝ_t, starting from dS_final
    for (int64_t i = 0; i < kD * kE; ++i) R[i] = c.dsf.get(h * kD * kE + i);
    for (int64_t t = kN - 1; t >= 0; --t) {
      const double w = t == kN - 1 ? 1.0 : lam;  // Ŝ_t = c q_tᵀ dO_t + λ Ŝ_{t+1}
      for (int64_t d = 0; d < kD; ++d)
        for (int64_t e = 0; e < kE; ++e)
          R[d * kE + e] =
              w * R[d * kE + e] + sc * c.q.get(at(t, h, d, kD)) * c.g.get(at(t, h, e, kE));
      for (int64_t d = 0; d < kD; ++d) {
        double acc = 0;
        for (int64_t e = 0; e < kE; ++e) acc += R[d * kE + e] * c.v.get(at(t, h, e, kE));
        rdk[at(t, h, d, kD)] = acc;
      }
      for (int64_t e = 0; e < kE; ++e) {
        double acc = 0;
        for (int64_t d = 0; d < kD; ++d) acc += c.k.get(at(t, h, d, kD)) * R[d * kE + e];
        rdv[at(t, h, e, kE)] = acc;
      }
    }
    for (int64_t i = 0; i < kD * kE; ++i) rds0[h * kD * kE + i] = lam * R[i];
  }
  const double e[4] = {rel_error(dq.to_f64(), rdq), rel_error(dk.to_f64(), rdk),
                       rel_error(dv.to_f64(), rdv), rel_error(ds0.to_f64(), rds0)};
  std::printf("N=%lld backward: dq %.2e dk %.2e dv %.2e d_initial_state %.2e (bar %.0e)\n",
              (long long)kN, e[0], e[1], e[2], e[3], kF32Bar);
  const char* names[4] = {"dq", "dk", "dv", "d_initial_state"};
  for (int i = 0; i < 4; ++i) EXPECT_LE(e[i], kF32Bar) << names[i];
}

}  // namespace
}  // namespace tnl::cpu
