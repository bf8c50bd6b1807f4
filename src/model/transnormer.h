// transnormer.h: the TransNormerLLM model on the CPU in fp32 (spec transnormerllm.md):
//   h = e·Embed[ids];  per layer: h += TokenMixer(SRMS(h)); h += GLU(SRMS(h));
//   logits = SRMS(h)·Embedᵀ
// Generation keeps one fp32 attention state per layer and sequence, (B, H, D, E): the prefill
// runs lightning attention over the prompts (packed, of any lengths, in chunks), and each
// decoded token then costs O(1) time and memory in the context length.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"

namespace tnl::model {

struct GenState {
  int64_t batch = 0;
  std::vector<int64_t> positions;          // per sequence: absolute position of its next token
  std::vector<std::vector<float>> layers;  // per layer (B, H, D, E), D = 2·dh with LRPE
  size_t bytes() const;
};

class TransNormer {
 public:
  explicit TransNormer(const Checkpoint& ck);
  // Random weights for training from scratch or benchmarks: Linear and Embedding ~ N(0, init_std),
  // the pad row of the embedding zeroed, LRPE θ[h, c] = 10000^(-2(h·dh + c)/d_model).
  TransNormer(const Config& cfg, uint64_t seed);
  // fp32 weights from memory (a training run's parameters): `weight(name)` gives the data of each
  // tensor of expected_tensors(cfg) but the tied lm_head, contiguous in the shape listed there.
  TransNormer(const Config& cfg, const std::function<const float*(const std::string& name)>& weight);

  const Config& config() const { return cfg_; }

  // ids (B, N) → logits (B, N, V), every sequence from position 0, no state kept.
  void forward(const int32_t* ids, int64_t batch, int64_t seqlen, float* logits) const;
  // Starts `state` for prompts of any lengths >= 1 (packed, state resets between them), run in
  // chunks of at most `chunk` tokens per sequence; last_logits (B, V) for each prompt's last token.
  void prefill(const std::vector<std::vector<int32_t>>& prompts, GenState& state, float* last_logits,
               int64_t chunk = 4096) const;
  // Continues every sequence of `state` by n tokens: ids (B, n) → logits (B, n, V).
  void extend(const int32_t* ids, int64_t n, GenState& state, float* logits) const;
  // One token per sequence: ids (B) → logits (B, V).
  void decode(const int32_t* ids, float* logits, GenState& state) const { extend(ids, 1, state, logits); }

 private:
  struct Layer {
    std::vector<float> qkvu, out, l1, l2, l3;  // as stored: [4·hidden, d], [d, hidden], ...
    std::vector<float> theta;                  // [H, dh] when the layer has LRPE
    std::vector<float> slopes;                 // (H)
  };
  // How the T rows of h are laid out for attention: (batch, seqlen), or packed with cu_seqlens.
  struct Packing {
    int64_t batch = 1, seqlen = 0;
    const int32_t* cu_seqlens = nullptr;
    int64_t num_seqs = 0;
  };
  Config cfg_;
  std::vector<float> embed_;  // [V, d]
  std::vector<Layer> layers_;

  // The whole stack on T rows: h (T, d) from ids; `state` (or null) carries attention states.
  void run(const int32_t* ids, const Packing& pk, const int64_t* positions, GenState* state,
           std::vector<float>& h) const;
  void token_mixer(const Layer& L, int64_t layer, float* h, const Packing& pk,
                   const int64_t* positions, std::vector<float>* state) const;
  void channel_mixer(const Layer& L, float* h, int64_t rows) const;
  void head(const float* h, int64_t rows, float* logits) const;
};

}  // namespace tnl::model
