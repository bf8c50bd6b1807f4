// params.h: every trainable tensor of a TransNormerLLM in one flat fp32 buffer (the layout the
// gradient, the optimizer and the checkpoints share), under its Hugging Face name and shape
// (spec transnormerllm.md, "Checkpoint format"; the tied lm_head is the embedding, stored once).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/transnormer.h"

namespace tnl::train {

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;  // in floats, into ParamSet::data()
  bool weight_decay = true;       // false for LRPE θ (a 1-D-like parameter)
};

// The tensors of a config, in buffer order: the embedding, then per layer qkvu, out, [θ], l1,
// l2, l3 (the order of model::expected_tensors, without the tied lm_head).
std::vector<ParamInfo> param_layout(const model::Config& cfg);

class ParamSet {
 public:
  explicit ParamSet(const model::Config& cfg);  // HF names and shapes, zero-filled

  const model::Config& config() const { return cfg_; }
  const std::vector<ParamInfo>& infos() const { return infos_; }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  int64_t size() const { return (int64_t)data_.size(); }  // total floats

  // The tensor's first float; throws tnl::ArgumentError naming `name` when there is none.
  float* get(const std::string& name);
  const float* get(const std::string& name) const;
  const ParamInfo& info(const std::string& name) const;

  // Linear and Embedding ~ N(0, init_std), the pad row of the embedding zeroed,
  // θ[h, c] = 10000^(-2(h·dh + c)/d_model): the same values as model::TransNormer(cfg, seed).
  void init_random(uint64_t seed);

  // Any stored dtype (F32, BF16, F16) converted to fp32.
  static ParamSet from_checkpoint(const model::Checkpoint& ck);

  // Writes config.json and model.safetensors (F32, no lm_head: tied) into `dir` (created if
  // needed), each file atomically.
  void save_hf(const std::string& dir) const;

 private:
  model::Config cfg_;
  std::vector<ParamInfo> infos_;
  std::vector<float> data_;
};

// The inference model with the current weights (for eval and generation during training).
model::TransNormer make_inference_model(const ParamSet& p);

}  // namespace tnl::train
