// transnormer.h: the TransNormerLLM model on the CPU in fp32 (spec transnormerllm.md):
//   h = e·Embed[ids];  per layer: h += TokenMixer(SRMS(h)); h += GLU(SRMS(h));
//   logits = SRMS(h)·Embedᵀ
// The prefill runs lightning attention over the prompt and keeps one fp32 state per layer
// (B, H, D, E); each decoded token then costs O(1) in the context length.
#pragma once

#include <cstdint>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"

namespace tnl::model {

// What generation carries between tokens: one attention state per layer and the next position.
struct GenState {
  int64_t batch = 0;
  int64_t position = 0;                    // absolute position of the next token
  std::vector<std::vector<float>> layers;  // per layer (B, H, D, E), D = 2·dh with LRPE
};

class TransNormer {
 public:
  explicit TransNormer(const Checkpoint& ck);

  const Config& config() const { return cfg_; }

  // ids (B, N) → logits (B, N, V). When `state` is given it is (re)initialized and left holding
  // the per-layer states after the N tokens (a prefill), ready for decode().
  void forward(const int32_t* ids, int64_t batch, int64_t seqlen, float* logits,
               GenState* state = nullptr) const;
  // One token per sequence: ids (B) → logits (B, V), advancing `state`.
  void decode(const int32_t* ids, float* logits, GenState& state) const;

 private:
  struct Layer {
    std::vector<float> qkvu, out, l1, l2, l3;  // as stored: [4·hidden, d], [d, hidden], ...
    std::vector<float> theta;                  // [H, dh] when the layer has LRPE
    std::vector<float> slopes;                 // (H)
  };
  Config cfg_;
  std::vector<float> embed_;                   // [V, d]
  std::vector<Layer> layers_;

  // The blocks shared by forward and decode, on T = batch·seqlen rows of h (T, d).
  void token_mixer(const Layer& L, int64_t layer, float* h, int64_t batch, int64_t seqlen,
                   const int64_t* positions, float* state_in, float* state_out) const;
  void channel_mixer(const Layer& L, float* h, int64_t rows) const;
  void embed(const int32_t* ids, int64_t rows, float* h) const;
  void head(const float* h, int64_t rows, float* logits) const;
};

}  // namespace tnl::model
