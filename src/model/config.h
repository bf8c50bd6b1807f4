// config.h: the TransNormerLLM configuration, read from a Hugging Face config.json
// (fields and released values: spec transnormerllm.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tnl::model {

struct Config {
  int64_t vocab_size = 64000;
  int64_t d_model = 1024;        // decoder_embed_dim
  int64_t hidden_dim = 1024;     // token-mixer width
  int64_t num_layers = 24;       // decoder_layers
  int64_t num_heads = 8;         // decoder_attention_heads
  int64_t glu_dim = 2816;
  bool no_scale_embedding = false;
  std::vector<int> use_lrpe;     // per layer, 1 = LRPE (layer 0 in every release)
  int64_t pad_id = 0, bos_id = 1, eos_id = 2;
  double init_std = 0.02;

  int64_t head_dim() const { return hidden_dim / num_heads; }
  double embed_scale() const;    // sqrt(d_model), or 1 with no_scale_embedding
  int64_t num_parameters() const;  // with the tied embedding counted once
};

// The released shapes (spec table): "385m", "1b", "7b"; also "tiny" (2 layers, d 128) and
// "small" (6 layers, d 256) for quick runs. Throws tnl::ArgumentError for other names.
Config config_preset(const std::string& name, int64_t vocab_size = 64000);

// Parses config.json text; `source` names it in errors. Unknown fields that change the model
// (a bias, another norm or activation, a different decay) are errors, not silently ignored.
Config parse_config(const std::string& json_text, const std::string& source);
Config load_config(const std::string& path);
// The config.json text of a Config (what a trained checkpoint writes).
std::string config_to_json(const Config& c);

}  // namespace tnl::model
