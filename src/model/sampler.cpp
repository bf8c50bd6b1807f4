// sampler.cpp: see sampler.h.
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tnl/error.h"

namespace tnl::model {

Sampler::Sampler(const SamplingOptions& o) : opt_(o), rng_(o.seed) {
  check_sampling_options(o, "tnl::model::Sampler");
}

void check_sampling_options(const SamplingOptions& o, const char* fn) {
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
    if (seen[v]) logits[v] = penalized_logit(logits[v], p);
}

void Sampler::absorb(const std::vector<int32_t>& history, int64_t vocab) {
  if ((int64_t)seen_.size() != vocab || history.size() < absorbed_) {
    seen_.assign(vocab, 0);
    distinct_.clear();
    absorbed_ = 0;
  }
  for (size_t i = absorbed_; i < history.size(); ++i) {
    const int32_t t = history[i];
    if (t >= 0 && t < vocab && !seen_[t]) {
      seen_[t] = 1;
      distinct_.push_back(t);
    }
  }
  absorbed_ = history.size();
}

int32_t Sampler::next(float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  const float p = opt_.repetition_penalty;
  if (p != 1.0f) {  // as apply_repetition_penalty, over the distinct tokens kept
    absorb(history, vocab);
    for (int32_t t : distinct_) logits[t] = penalized_logit(logits[t], p);
  }
  if (opt_.greedy) return (int32_t)(std::max_element(logits, logits + vocab) - logits);
  // The softmax at the temperature: weights w[i] = exp((l[i] - top) / T), top the largest
  // logit, in fp32 (summed in fp64).
  const float inv_t = 1.0f / opt_.temperature;
  float top = 0.f;
  w_.resize(vocab);
  auto set_weight = [&](int32_t i) { return w_[i] = std::exp((logits[i] - top) * inv_t); };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  if (opt_.top_k == 0 && opt_.top_p >= 1.0f) {  // plain sampling: one pass, no sort
    top = *std::max_element(logits, logits + vocab);
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += set_weight((int32_t)i);
    double u = unit(rng_) * sum;
    int64_t last = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      if (w_[i] <= 0) continue;
      last = i;
      u -= w_[i];
      if (u <= 0) return (int32_t)i;
    }
    return (int32_t)last;
  }
  // Candidates by descending logit (ties: lower id first), cut by top-k, then by top-p: the
  // smallest prefix whose share of the candidates' mass reaches top_p. Without top-k the
  // prefix is sorted in growing rounds (64, 256, ... candidates) rather than all of V.
  auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  idx_.resize(vocab);
  std::iota(idx_.begin(), idx_.end(), 0);
  const int64_t k = opt_.top_k > 0 ? std::min(opt_.top_k, vocab) : vocab;
  double sum = 0;
  int64_t sorted = 0;  // idx_[0, sorted) in candidate order
  if (k < vocab) {
    std::partial_sort(idx_.begin(), idx_.begin() + k, idx_.end(), before);
    sorted = k;
    top = logits[idx_[0]];
    for (int64_t i = 0; i < k; ++i) sum += set_weight(idx_[i]);
  } else {
    top = *std::max_element(logits, logits + vocab);
    for (int64_t i = 0; i < vocab; ++i) sum += set_weight((int32_t)i);
  }
  int64_t keep = k;
  if (opt_.top_p < 1.0f) {
    double mass = 0;
    keep = 0;
    for (int64_t i = 0; i < k && keep == 0; ++i) {
      if (i == sorted) {  // sort the next round of candidates
        const int64_t m = std::min<int64_t>(k, std::max<int64_t>(64, 4 * sorted));
        std::partial_sort(idx_.begin() + sorted, idx_.begin() + m, idx_.end(), before);
        sorted = m;
      }
      mass += w_[idx_[i]] / sum;
      if (mass >= opt_.top_p) keep = i + 1;
    }
    if (keep == 0) keep = k;  // rounding: the whole mass short of top_p
  }
  double kept = 0;
  for (int64_t i = 0; i < keep; ++i) kept += w_[idx_[i]];
  double u = unit(rng_) * kept;
  for (int64_t i = 0; i < keep; ++i) {
    u -= w_[idx_[i]];
    if (u <= 0) return idx_[i];
  }
  return idx_[keep - 1];
}

}  // namespace tnl::model
