// sampler.h: next-token choice from logits: greedy, or sampling with temperature, top-k, top-p
// and a repetition penalty (the released defaults: temperature 1.0, repetition_penalty 1.03).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace tnl::model {

struct SamplingOptions {
  bool greedy = false;             // argmax (after the repetition penalty)
  float temperature = 1.0f;        // > 0
  int64_t top_k = 0;               // 0 = all
  float top_p = 1.0f;              // nucleus mass in (0, 1]
  float repetition_penalty = 1.03f;  // >= 1; 1 = off
  uint64_t seed = 0;
};

// Throws tnl::ArgumentError naming the option (and `fn`) when an option is out of its range.
void check_sampling_options(const SamplingOptions& o, const char* fn);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& o);  // throws tnl::ArgumentError naming the option
  // logits (V), modified in place; `history` are the tokens of this sequence so far. A sampler
  // follows one sequence whose history only grows between calls: it keeps the distinct tokens
  // seen, so that a call costs O(V + new tokens), not O(context). (A shorter history, or
  // another vocabulary size, starts over.)
  int32_t next(float* logits, int64_t vocab, const std::vector<int32_t>& history);

 private:
  void absorb(const std::vector<int32_t>& history, int64_t vocab);

  SamplingOptions opt_;
  std::mt19937_64 rng_;
  std::vector<char> seen_;          // (vocab): 1 for a token of the history
  std::vector<int32_t> distinct_;   // the distinct tokens of the history, first seen first
  size_t absorbed_ = 0;             // how many tokens of the history seen_ holds
  std::vector<int32_t> idx_;        // (vocab) candidate order, reused across calls
  std::vector<float> w_;            // (vocab) softmax weights by token id, reused across calls
};

// The repetition penalty as in Hugging Face: a seen token's logit l becomes l/p if l > 0, else l·p.
inline float penalized_logit(float l, float p) { return l > 0 ? l / p : l * p; }
void apply_repetition_penalty(float* logits, int64_t vocab, const std::vector<int32_t>& history, float p);

}  // namespace tnl::model
