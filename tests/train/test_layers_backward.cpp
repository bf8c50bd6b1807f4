// test_layers_backward.cpp: each op's backward (train/layers_backward.h, the kernels the training
// gradient runs, instantiated on double) against central finite differences of its forward, in
// fp64, on small random inputs with strided rows. Loss L = Σ w ⊙ forward(x) for a random w, so the
// backward is run with dy = w. Bound: |analytic − FD| ≤ 1e-7 · max(1, max|FD|) — fourth-order
// central differences with step 1e-4 in fp64 are accurate to ~1e-11 here (h⁴·f⁽⁵⁾ + 1e-16/h).
// Also the fp32 instantiation against the fp64 one (same code, ≤ 1e-5 relative), and the lightning
// attention operator's fp64 reference backward (the one the fp64 model gradient uses) against FD.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "model/layers_cpu.h"
#include "testing/testing.h"
#include "tnl/attention.h"
#include "train/layers_backward.h"

namespace tnl::train::ops {
namespace {

using Vec = std::vector<double>;

Vec random_vec(std::mt19937_64& rng, size_t n, double scale = 1.0) {
  std::normal_distribution<double> nd(0.0, scale);
  Vec v(n);
  for (double& x : v) x = nd(rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks `analytic` = dL/dx for L(x) = loss() by central differences on every element of x.
void expect_fd(Vec& x, const std::function<double()>& loss, const Vec& analytic, const char* what) {
  const double h = 1e-4;  // fourth-order differences: truncation ~h⁴, rounding ~1e-16/h
  Vec fd(x.size());
  double scale = 1.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    double at[4];
    const double steps[4] = {h, -h, 2 * h, -2 * h};
    for (int s = 0; s < 4; ++s) {
      x[i] = x0 + steps[s];
      at[s] = loss();
    }
    x[i] = x0;
    fd[i] = (8 * (at[0] - at[1]) - (at[2] - at[3])) / (12 * h);
    scale = std::max(scale, std::fabs(fd[i]));
  }
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(analytic[i] - fd[i]));
  EXPECT_LE(worst, 1e-7 * scale) << what << ": max |analytic - FD| over " << x.size() << " elements";
  // A check that cannot fail is a defect: the gradient must not be trivially zero.
  double norm = 0;
  for (double g : fd) norm += g * g;
  EXPECT_GT(norm, 1e-6) << what << ": FD gradient is zero, the test checks nothing";
}

class OpsFd : public ::testing::Test {
 protected:
  std::mt19937_64 rng{testing::test_seed()};
};

TEST_F(OpsFd, Linear) {
  const int64_t rows = 5, k = 4, n = 6;
  Vec x = random_vec(rng, rows * k), w = random_vec(rng, n * k), wy = random_vec(rng, rows * n);
  auto loss = [&] {
    Vec y(rows * n);
    linear_forward(x.data(), rows, k, w.data(), n, y.data());
    return dot(y, wy);
  };
  Vec dx(rows * k, 7.0), dw(n * k, 0.0);
  linear_backward(wy.data(), x.data(), rows, k, w.data(), n, dx.data(), 0.0, dw.data());
  expect_fd(x, loss, dx, "dx");
  expect_fd(w, loss, dw, "dW");
  // dW accumulates, dx with beta 1 accumulates.
  Vec dx2 = dx, dw2 = dw;
  linear_backward(wy.data(), x.data(), rows, k, w.data(), n, dx2.data(), 1.0, dw2.data());
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], 2 * dw[i], 1e-12);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx2[i], 2 * dx[i], 1e-12);
}

TEST_F(OpsFd, SrmsNormStrided) {
  const int64_t rows = 4, cols = 7, ld_x = 9, ld_y = 8;
  Vec x = random_vec(rng, rows * ld_x, 2.0), wy = random_vec(rng, rows * ld_y);
  Vec y(rows * ld_y), rstd(rows);
  auto loss = [&] {
    Vec yy(rows * ld_y, 0.0), r(rows);
    srms_forward(x.data(), ld_x, rows, cols, yy.data(), ld_y, r.data());
    double s = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < cols; ++c) s += yy[i * ld_y + c] * wy[i * ld_y + c];
    return s;
  };
  srms_forward(x.data(), ld_x, rows, cols, y.data(), ld_y, rstd.data());
  Vec dx(rows * ld_x, 0.0);
  srms_backward(wy.data(), ld_y, y.data(), ld_y, rstd.data(), rows, cols, dx.data(), ld_x, false);
  expect_fd(x, loss, dx, "SRMS dx");  // padding columns: FD 0 and dx untouched (0)
  // accumulate adds onto what is there
  Vec dx2(rows * ld_x, 1.0);
  srms_backward(wy.data(), ld_y, y.data(), ld_y, rstd.data(), rows, cols, dx2.data(), ld_x, true);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < cols; ++c) EXPECT_NEAR(dx2[i * ld_x + c], 1.0 + dx[i * ld_x + c], 1e-12);
}

TEST_F(OpsFd, Silu) {
  const int64_t rows = 3, cols = 5, ld = 8;
  Vec x = random_vec(rng, rows * ld, 3.0), wy = random_vec(rng, rows * ld);
  auto loss = [&] {
    Vec y(rows * ld, 0.0);
    silu_forward(x.data(), ld, rows, cols, y.data(), ld);
    return dot(y, wy);
  };
  Vec d = wy;
  silu_backward(x.data(), ld, rows, cols, d.data(), ld);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = cols; c < ld; ++c) d[r * ld + c] = 0;  // columns outside the op
  expect_fd(x, loss, d, "SiLU");
}

TEST_F(OpsFd, LrpeInputAndTheta) {
  const int64_t rows = 5, heads = 3, dh = 4, ld_x = 14;
  const std::vector<int64_t> pos = {0, 1, 2, 7, 33};
  Vec x = random_vec(rng, rows * ld_x), theta(heads * dh), wy = random_vec(rng, rows * heads * 2 * dh);
  for (int64_t i = 0; i < heads * dh; ++i)
    theta[i] = std::pow(10000.0, -2.0 * i / 12.0) * (1 + 0.1 * (double)(i % 3));
  auto loss = [&] {
    Vec y(rows * heads * 2 * dh);
    model::cpu::lrpe(x.data(), rows, heads, dh, ld_x, theta.data(), pos.data(), y.data());
    return dot(y, wy);
  };
  Vec dx(rows * ld_x, 0.0), dtheta(heads * dh, 0.0);
  lrpe_backward(wy.data(), x.data(), ld_x, rows, heads, dh, theta.data(), pos.data(), dx.data(), ld_x,
                dtheta.data());
  expect_fd(x, loss, dx, "LRPE dx");
  expect_fd(theta, loss, dtheta, "LRPE dθ");
}

TEST_F(OpsFd, GateMul) {
  const int64_t rows = 3, cols = 6;
  Vec a = random_vec(rng, rows * 8), b = random_vec(rng, rows * cols), wy = random_vec(rng, rows * cols);
  auto loss = [&] {
    Vec y(rows * cols);
    mul_forward(a.data(), 8, b.data(), cols, rows, cols, y.data(), cols);
    return dot(y, wy);
  };
  Vec da(rows * 8, 0.0), db(rows * cols);
  mul_backward(wy.data(), cols, a.data(), 8, b.data(), cols, rows, cols, da.data(), 8, db.data(), cols);
  expect_fd(a, loss, da, "gate da");
  expect_fd(b, loss, db, "gate db");
}

TEST_F(OpsFd, EmbeddingGatherWithScaleAndRepeatedIds) {
  const int64_t vocab = 6, d = 5;
  const std::vector<int32_t> ids = {3, 1, 3, 0, 5, 3};
  const int64_t rows = (int64_t)ids.size();
  const double scale = 2.5;
  Vec e = random_vec(rng, vocab * d), wy = random_vec(rng, rows * d);
  auto loss = [&] {
    Vec h(rows * d);
    embed_forward(e.data(), vocab, d, ids.data(), rows, scale, h.data());
    return dot(h, wy);
  };
  Vec de(vocab * d, 0.0);
  embed_backward(wy.data(), ids.data(), rows, d, scale, de.data());
  expect_fd(e, loss, de, "embedding");
  const std::vector<int32_t> bad = {0, 6};
  Vec h(2 * d);
  EXPECT_THROW(embed_forward(e.data(), vocab, d, bad.data(), 2, scale, h.data()), ArgumentError);
}

TEST_F(OpsFd, CrossEntropyWithIgnoredTarget) {
  const int64_t rows = 4, vocab = 7;
  const std::vector<int32_t> targets = {2, -1, 6, 0};
  Vec logits = random_vec(rng, rows * vocab, 3.0);
  logits[2 * vocab + 1] = 80.0;  // a large logit: the stable form must not overflow
  auto loss = [&] {
    Vec l = logits;
    int64_t n = 0;
    return cross_entropy(l.data(), rows, vocab, targets.data(), 0.0, &n) / 3.0;  // mean over 3
  };
  // The value against the textbook formula.
  double want = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) continue;
    double s = 0;
    for (int64_t c = 0; c < vocab; ++c) s += std::exp(logits[r * vocab + c] - 80.0);
    want += std::log(s) + 80.0 - logits[r * vocab + targets[r]];
  }
  EXPECT_NEAR(loss() * 3.0, want, 1e-12 * std::fabs(want));
  Vec g = logits;
  int64_t count = 0;
  cross_entropy(g.data(), rows, vocab, targets.data(), 1.0 / 3.0, &count);
  EXPECT_EQ(count, 3);
  for (int64_t c = 0; c < vocab; ++c) EXPECT_EQ(g[vocab + c], 0.0);  // ignored row
  expect_fd(logits, loss, g, "cross-entropy");
}

TEST_F(OpsFd, Fp32InstantiationMatchesFp64) {
  // The fp32 kernels (training) and the fp64 ones (FD-checked above) are one template; check the
  // fp32 one computes the same numbers within fp32 rounding on SRMS, SiLU and LRPE backward.
  const int64_t rows = 6, heads = 2, dh = 5, hd = heads * dh;
  const std::vector<int64_t> pos = {0, 3, 9, 40, 100, 255};
  Vec x = random_vec(rng, rows * hd), dy = random_vec(rng, rows * 2 * hd), theta(hd);
  for (int64_t i = 0; i < hd; ++i) theta[i] = std::pow(10000.0, -2.0 * i / 10.0);
  std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end()), thf(theta.begin(), theta.end());
  for (int64_t i = 0; i < hd; ++i) theta[i] = thf[i];  // same θ in both
  Vec dx(rows * hd), dth(hd, 0.0);
  std::vector<float> dxf(rows * hd), dthf(hd, 0.0f);
  lrpe_backward(dy.data(), x.data(), hd, rows, heads, dh, theta.data(), pos.data(), dx.data(), hd,
                dth.data());
  lrpe_backward(dyf.data(), xf.data(), hd, rows, heads, dh, thf.data(), pos.data(), dxf.data(), hd,
                dthf.data());
  for (int64_t i = 0; i < rows * hd; ++i) EXPECT_NEAR(dxf[i], dx[i], 1e-5 * (1 + std::fabs(dx[i])));
  for (int64_t i = 0; i < hd; ++i) EXPECT_NEAR(dthf[i], dth[i], 1e-4 * (1 + std::fabs(dth[i])));
  Vec y(rows * hd), r(rows), g(rows * hd);
  std::vector<float> yf(rows * hd), rf(rows), gf(rows * hd);
  srms_forward(x.data(), hd, rows, hd, y.data(), hd, r.data());
  srms_forward(xf.data(), hd, rows, hd, yf.data(), hd, rf.data());
  srms_backward(dy.data(), hd, y.data(), hd, r.data(), rows, hd, g.data(), hd, false);
  srms_backward(dyf.data(), hd, yf.data(), hd, rf.data(), rows, hd, gf.data(), hd, false);
  for (int64_t i = 0; i < rows * hd; ++i) EXPECT_NEAR(gf[i], g[i], 1e-5 * (1 + std::fabs(g[i])));
}

TEST(Ops, ExpF32WithinThreeUlp) {
  double worst = 0;
  for (int i = 0; i <= 400000; ++i) {
    const float x = -87.0f + 175.0f * (float)i / 400000.0f;
    const double want = std::exp((double)x);
    worst = std::max(worst, std::fabs(exp_f32(x) - want) / want);
  }
  EXPECT_LE(worst, 3 * 5.97e-8) << "max relative error of exp_f32 on [-87, 88]";
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_GT(exp_f32(-1000.0f), 0.0f);  // clamped, never 0 or denormal
  EXPECT_TRUE(std::isfinite(exp_f32(1000.0f)));
}

TEST(Ops, CrossEntropyFp32MatchesFp64) {
  std::mt19937_64 rng(testing::test_seed());
  const int64_t rows = 5, vocab = 3000;
  const std::vector<int32_t> targets = {7, -1, 2999, 0, 1500};
  Vec l = random_vec(rng, rows * vocab, 4.0);
  l[3 * vocab + 17] = 60.0;
  std::vector<float> lf(l.begin(), l.end());
  for (size_t i = 0; i < l.size(); ++i) l[i] = lf[i];
  int64_t n64 = 0, n32 = 0;
  const double s64 = cross_entropy(l.data(), rows, vocab, targets.data(), 0.25, &n64);
  const double s32 = cross_entropy(lf.data(), rows, vocab, targets.data(), 0.25f, &n32);
  EXPECT_EQ(n32, 4);
  EXPECT_NEAR(s32, s64, 1e-6 * s64);
  for (size_t i = 0; i < l.size(); ++i) ASSERT_NEAR(lf[i], l[i], 1e-7 + 1e-6 * std::fabs(l[i])) << i;
}

TEST_F(OpsFd, AttentionReferenceBackwardF64) {
  // The fp64 model gradient runs lightning attention through the reference operator: check its
  // backward (q, k, v with strides into a fused buffer, as the model passes them) by FD.
  const int64_t B = 2, N = 5, H = 2, D = 3, E = 2, ld = 2 * H * D + H * E;  // [q | k | v] per row
  Vec qkv = random_vec(rng, B * N * ld), wo = random_vec(rng, B * N * H * E);
  const std::vector<float> slopes = {0.3f, 0.9f};
  auto views = [&](auto& p, auto* base) {
    p.shape = {B, N, H, D, E};
    p.dtype = DType::f64;
    p.q = ConstSeqTensor(base, N * ld, ld, D);
    p.k = ConstSeqTensor(base + H * D, N * ld, ld, D);
    p.v = ConstSeqTensor(base + 2 * H * D, N * ld, ld, E);
    p.slopes = slopes.data();
  };
  auto loss = [&] {
    AttnForwardParams p;
    views(p, qkv.data());
    Vec o(B * N * H * E);
    p.o = SeqTensor(o.data(), N * H * E, H * E, E);
    reference::attention_forward(p);
    return dot(o, wo);
  };
  AttnBackwardParams p;
  views(p, qkv.data());
  Vec g(B * N * ld);
  p.d_o = ConstSeqTensor(wo.data(), N * H * E, H * E, E);
  p.dq = SeqTensor(g.data(), N * ld, ld, D);
  p.dk = SeqTensor(g.data() + H * D, N * ld, ld, D);
  p.dv = SeqTensor(g.data() + 2 * H * D, N * ld, ld, E);
  reference::attention_backward(p);
  expect_fd(qkv, loss, g, "attention dq, dk, dv");
}

}  // namespace
}  // namespace tnl::train::ops
