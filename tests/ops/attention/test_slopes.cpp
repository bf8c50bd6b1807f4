// test_slopes.cpp: the slope helpers against the formulas of spec §3, recomputed here
// independently (ALiBi's get_slopes, with its interleave for H not a power of two):
//   alibi_slopes(H):            2^(-8(h+1)/H) for H a power of two, else the ladder of the
//                               nearest lower power of two P, then every other value of the
//                               ladder of 2P, until H values
//   slopes_transnormer(H,l,L):  alibi_slopes(H) · (1 - l/(L-1) + 1e-5)
//   slopes_minimax(H,l,L):      (8/H) · (1 - l/L) · h
// H = 8, 12 (interleave), 16; layers first, middle, last. Bar: relative 1e-6 (fp32 results).
// Bad arguments name the argument.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tnl/attention.h"

namespace tnl {
namespace {

// ALiBi's reference get_slopes (Press et al.), in double.
std::vector<double> alibi_expected(int64_t n) {
  auto power_of_two = [](int64_t m) {
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2((double)m) - 3)));
    std::vector<double> out;
    for (int64_t i = 0; i < m; ++i) out.push_back(start * std::pow(start, (double)i));
    return out;
  };
  const double lg = std::log2((double)n);
  if (lg == std::floor(lg)) return power_of_two(n);
  const int64_t closest = (int64_t)1 << (int64_t)std::floor(lg);
  std::vector<double> out = power_of_two(closest);
  const std::vector<double> twice = alibi_expected(2 * closest);
  for (int64_t i = 0; (int64_t)out.size() < n; i += 2) out.push_back(twice[i]);
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t h = 0; h < want.size(); ++h)
    EXPECT_NEAR(got[h], want[h], 1e-6 * std::abs(want[h])) << "head " << h;
}

TEST(Slopes, AlibiLadder) {
  for (int64_t heads : {8, 12, 16, 1, 5, 40}) {
    SCOPED_TRACE(::testing::Message() << "H = " << heads);
    expect_close(alibi_slopes(heads), alibi_expected(heads));
  }
  // Literal values: H = 8 is 2^-1 .. 2^-8; H = 12 appends 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  std::vector<double> h12;
  for (int i = 1; i <= 8; ++i) h12.push_back(std::pow(2.0, -i));
  const std::vector<double> h8 = h12;
  for (double e : {0.5, 1.5, 2.5, 3.5}) h12.push_back(std::pow(2.0, -e));
  expect_close(alibi_slopes(8), h8);
  expect_close(alibi_slopes(12), h12);
}

TEST(Slopes, TransNormerLayerFactor) {
  const int64_t L = 24;
  for (int64_t heads : {8, 12, 16})
    for (int64_t layer : {(int64_t)0, L / 2, L - 1}) {
      SCOPED_TRACE(::testing::Message() << "H = " << heads << ", layer " << layer << " of " << L);
      std::vector<double> want = alibi_expected(heads);
      for (double& s : want) s *= 1.0 - (double)layer / (double)(L - 1) + 1e-5;
      expect_close(slopes_transnormer(heads, layer, L), want);
    }
}

TEST(Slopes, MiniMaxLinear) {
  const int64_t L = 32;
  for (int64_t heads : {8, 12, 16})
    for (int64_t layer : {(int64_t)0, L / 2, L - 1}) {
      SCOPED_TRACE(::testing::Message() << "H = " << heads << ", layer " << layer << " of " << L);
      std::vector<double> want;
      for (int64_t h = 0; h < heads; ++h)
        want.push_back(8.0 / (double)heads * (1.0 - (double)layer / (double)L) * (double)h);
      expect_close(slopes_minimax(heads, layer, L), want);
    }
}

void expect_names(const std::function<void()>& call, const std::string& arg) {
  try {
    call();
    ADD_FAILURE() << "no error thrown, expected one naming '" << arg << "'";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("argument '" + arg + "'"), std::string::npos)
        << e.what();
  }
}

TEST(Slopes, BadArgumentsNameTheArgument) {
  expect_names([] { alibi_slopes(0); }, "heads");
  expect_names([] { alibi_slopes(-4); }, "heads");
  expect_names([] { slopes_transnormer(0, 0, 24); }, "heads");
  expect_names([] { slopes_transnormer(8, -1, 24); }, "layer");
  expect_names([] { slopes_transnormer(8, 24, 24); }, "layer");
  expect_names([] { slopes_transnormer(8, 0, 0); }, "num_layers");
  expect_names([] { slopes_minimax(0, 0, 24); }, "heads");
  expect_names([] { slopes_minimax(8, -1, 24); }, "layer");
  expect_names([] { slopes_minimax(8, 24, 24); }, "layer");
  expect_names([] { slopes_minimax(8, 0, 0); }, "num_layers");
}

}  // namespace
}  // namespace tnl
