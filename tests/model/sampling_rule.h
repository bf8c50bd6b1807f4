// sampling_rule.h: the host's sampling rule as the GPU sampler's tests check it (the model's
// decode_sample, and sample_rows on its own): the candidates of a draw, and whether a token
// drawn at a uniform number owns that point of the distribution function laid out in the
// kernel's order.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace tnl::model::sampling_check {

// A way to choose the token: greedy, or a draw cut to top_k (0: none) then to top_p (1: none).
struct SamplingMode {
  const char* name;
  bool greedy;
  int64_t top_k;
  float top_p;
};
// The modes the tests run: greedy, a plain draw, top-k, top-p, both.
inline std::vector<SamplingMode> sampling_modes() {
  return {{"greedy", true, 0, 1.f}, {"plain", false, 0, 1.f}, {"top-k 20", false, 20, 1.f},
          {"top-p 0.5", false, 0, 0.5f}, {"top-k 200, top-p 0.8", false, 200, 0.8f}};
}

// The candidates of a draw from one row of penalized logits l (V) at `temperature`, cut to
// top_k (0: none) and then to the top_p of their mass, in descending order; `slack` widens the
// top-p cut (the GPU sums fixed-point weights of fp32 exponentials).
inline std::vector<int32_t> host_candidates(const float* l, int64_t V, float temperature, int64_t top_k,
                                            float top_p, double slack) {
  std::vector<int32_t> order(V);
  for (int32_t i = 0; i < V; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  if (top_k > 0 && top_k < V) order.resize(top_k);
  if (top_p < 1.f) {
    double sum = 0, mass = 0;
    for (int32_t i : order) sum += std::exp((l[i] - l[order[0]]) / temperature);
    size_t keep = 0;
    while (keep < order.size() && mass < (top_p + slack) * sum) mass += std::exp((l[order[keep++]] - l[order[0]]) / temperature);
    order.resize(keep);
  }
  return order;
}

// Checks the token `got` of a draw at uniform u from the penalized logits l (V): one of the
// host rule's candidates, and (no top-p cut, where the candidates are exact) the owner of u's
// point of the distribution function laid out in the kernel's order (thread t of 1024 owns
// tokens t, t + 1024, ...), give or take fp32 rounding.
inline void expect_draw_follows_rule(const float* l, int64_t V, int32_t got, float u, float temperature,
                                     int64_t top_k, float top_p) {
  ASSERT_GE(got, 0);
  ASSERT_LT(got, V);
  const std::vector<int32_t> cand = host_candidates(l, V, temperature, top_k, top_p, 1e-5);
  ASSERT_NE(std::find(cand.begin(), cand.end(), got), cand.end())
      << "token " << got << " is not among the " << cand.size() << " candidates";
  if (top_p < 1.f) return;  // the top-p cut's edge is fp32-fuzzy: membership only
  std::vector<char> in(V, 0);
  for (int32_t i : cand) in[i] = 1;
  const float top = *std::max_element(l, l + V);
  double total = 0, lo = -1, hi = -1;
  for (int64_t t = 0; t < 1024; ++t)
    for (int64_t i = t; i < V; i += 1024) {
      const double w = in[i] ? std::exp((l[i] - top) / temperature) : 0.0;
      if (i == got) lo = total, hi = total + w;
      total += w;
    }
  const double target = (double)u * total, slack = 1e-4 * total;
  EXPECT_TRUE(lo - slack <= target && target <= hi + slack)
      << "token " << got << " owns [" << lo / total << ", " << hi / total << ") of the distribution, the draw was " << u;
}

}  // namespace tnl::model::sampling_check
