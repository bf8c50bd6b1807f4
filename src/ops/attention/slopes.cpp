// slopes.cpp: the decay-rate conventions of spec §3 (TransNormerLLM's ALiBi ladder, MiniMax/FLA).
#include <cmath>
#include <vector>

#include "tnl/attention.h"

namespace tnl {
namespace {

// 2^(-8/n · (i+1)) for i = 0..n-1, n a power of two.
std::vector<float> ladder_pow2(int64_t n) {
  std::vector<float> out(n);
  const double start = std::pow(2.0, -8.0 / (double)n);
  for (int64_t i = 0; i < n; ++i) out[i] = (float)std::pow(start, (double)(i + 1));
  return out;
}

}  // namespace

std::vector<float> alibi_slopes(int64_t heads) {
  TNL_ARG_CHECK(heads >= 1, "tnl::alibi_slopes", "heads", "expected >= 1, got ", heads);
  int64_t p2 = 1;
  while (p2 * 2 <= heads) p2 *= 2;
  std::vector<float> out = ladder_pow2(p2);
  if (p2 == heads) return out;
  // ALiBi interleave: the ladder of the nearest lower power of two, then every other value of
  // the ladder of twice that, until there are `heads` values.
  const std::vector<float> twice = ladder_pow2(2 * p2);
  for (int64_t i = 0; (int64_t)out.size() < heads; i += 2) out.push_back(twice[i]);
  return out;
}

std::vector<float> slopes_transnormer(int64_t heads, int64_t layer, int64_t num_layers) {
  const char* fn = "tnl::slopes_transnormer";
  TNL_ARG_CHECK(num_layers >= 1, fn, "num_layers", "expected >= 1, got ", num_layers);
  TNL_ARG_CHECK(layer >= 0 && layer < num_layers, fn, "layer", "expected 0..", num_layers - 1,
                ", got ", layer);
  std::vector<float> s = alibi_slopes(heads);
  // A one-layer model has no (L-1) to divide by; its only layer is layer 0: factor 1 + 1e-5.
  const double depth = num_layers > 1 ? (double)layer / (double)(num_layers - 1) : 0.0;
  const double factor = 1.0 - depth + 1e-5;
  for (float& x : s) x = (float)((double)x * factor);
  return s;
}

std::vector<float> slopes_minimax(int64_t heads, int64_t layer, int64_t num_layers) {
  const char* fn = "tnl::slopes_minimax";
  TNL_ARG_CHECK(heads >= 1, fn, "heads", "expected >= 1, got ", heads);
  TNL_ARG_CHECK(num_layers >= 1, fn, "num_layers", "expected >= 1, got ", num_layers);
  TNL_ARG_CHECK(layer >= 0 && layer < num_layers, fn, "layer", "expected 0..", num_layers - 1,
                ", got ", layer);
  std::vector<float> s(heads);
  const double factor = (8.0 / (double)heads) * (1.0 - (double)layer / (double)num_layers);
  for (int64_t h = 0; h < heads; ++h) s[h] = (float)(factor * (double)h);
  return s;
}

}  // namespace tnl
