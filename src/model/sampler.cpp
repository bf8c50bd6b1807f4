// sampler.cpp: see sampler.h.
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tnl/error.h"

namespace tnl::model {

Sampler::Sampler(const SamplingOptions& o) : opt_(o), rng_(o.seed) {
  const char* fn = "tnl::model::Sampler";
  TNL_ARG_CHECK(o.temperature > 0 && std::isfinite(o.temperature), fn, "temperature",
                "expected > 0, got ", o.temperature);
  TNL_ARG_CHECK(o.top_k >= 0, fn, "top_k", "expected >= 0 (0 = off), got ", o.top_k);
  TNL_ARG_CHECK(o.top_p > 0 && o.top_p <= 1, fn, "top_p", "expected in (0, 1], got ", o.top_p);
  TNL_ARG_CHECK(o.repetition_penalty >= 1 && std::isfinite(o.repetition_penalty), fn,
                "repetition_penalty", "expected >= 1, got ", o.repetition_penalty);
}

void apply_repetition_penalty(float* logits, int64_t vocab, const std::vector<int32_t>& history, float p) {
  if (p == 1.0f) return;
  std::vector<char> seen(vocab, 0);
  for (int32_t t : history)
    if (t >= 0 && t < vocab) seen[t] = 1;
  for (int64_t v = 0; v < vocab; ++v)
    if (seen[v]) logits[v] = logits[v] > 0 ? logits[v] / p : logits[v] * p;
}

int32_t Sampler::next(float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  apply_repetition_penalty(logits, vocab, history, opt_.repetition_penalty);
  if (opt_.greedy) return (int32_t)(std::max_element(logits, logits + vocab) - logits);
  // Candidates by descending logit, cut by top-k, then softmax at the temperature, cut by top-p.
  std::vector<int32_t> idx(vocab);
  std::iota(idx.begin(), idx.end(), 0);
  const int64_t k = opt_.top_k > 0 ? std::min(opt_.top_k, vocab) : vocab;
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  idx.resize(k);
  std::vector<double> prob(k);
  const double top = logits[idx[0]];
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) sum += prob[i] = std::exp(((double)logits[idx[i]] - top) / opt_.temperature);
  int64_t keep = k;
  if (opt_.top_p < 1.0f) {  // smallest prefix whose mass reaches top_p
    double mass = 0;
    for (int64_t i = 0; i < k; ++i) {
      mass += prob[i] / sum;
      if (mass >= opt_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += prob[i];
  double u = std::uniform_real_distribution<double>(0.0, kept)(rng_);
  for (int64_t i = 0; i < keep; ++i) {
    u -= prob[i];
    if (u <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace tnl::model
