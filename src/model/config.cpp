// config.cpp: see config.h.
#include "model/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "model/io/json.h"
#include "tnl/error.h"

namespace tnl::model {

double Config::embed_scale() const { return no_scale_embedding ? 1.0 : std::sqrt((double)d_model); }

int64_t Config::num_parameters() const {
  int64_t lrpe = 0;
  for (int l : use_lrpe) lrpe += l ? num_heads * head_dim() : 0;
  const int64_t per_layer = 4 * hidden_dim * d_model + d_model * hidden_dim + 3 * glu_dim * d_model;
  return vocab_size * d_model + num_layers * per_layer + lrpe;
}

Config config_preset(const std::string& name, int64_t vocab) {
  Config c;
  c.vocab_size = vocab;
  auto set = [&](int64_t d, int64_t layers, int64_t heads, int64_t glu, bool no_scale) {
    c.d_model = c.hidden_dim = d;
    c.num_layers = layers;
    c.num_heads = heads;
    c.glu_dim = glu;
    c.no_scale_embedding = no_scale;
    c.use_lrpe.assign(layers, 0);
    c.use_lrpe[0] = 1;
  };
  if (name == "385m") set(1024, 24, 8, 2816, false);
  else if (name == "1b") set(2048, 16, 16, 5632, false);
  else if (name == "7b") set(4096, 30, 32, 11008, true);
  else if (name == "tiny") set(128, 2, 4, 352, false);
  else if (name == "small") set(256, 6, 4, 704, false);
  else throw ArgumentError(detail::cat("tnl::model::config_preset: argument 'name': expected 385m, 1b, 7b, "
                                       "tiny or small, got '", name, "'"));
  return c;
}

Config parse_config(const std::string& text, const std::string& src) {
  const json::Value root = json::parse(text, src);
  root.as_object(src);
  Config c;
  auto field = [&](const char* name) { return root.find(name); };
  auto int_field = [&](const char* name, int64_t* out, int64_t lo) {
    if (const json::Value* v = field(name)) {
      *out = v->as_int(src + ": " + name);
      if (*out < lo) throw Error(detail::cat(src, ": ", name, ": expected >= ", lo, ", got ", *out));
    }
  };
  int_field("vocab_size", &c.vocab_size, 1);
  int_field("decoder_embed_dim", &c.d_model, 1);
  c.hidden_dim = c.d_model;
  int_field("hidden_dim", &c.hidden_dim, 1);
  int_field("decoder_layers", &c.num_layers, 1);
  int_field("decoder_attention_heads", &c.num_heads, 1);
  int_field("glu_dim", &c.glu_dim, 1);
  int_field("pad_token_id", &c.pad_id, 0);
  int_field("bos_token_id", &c.bos_id, 0);
  int_field("eos_token_id", &c.eos_id, 0);
  if (const json::Value* v = field("no_scale_embedding")) c.no_scale_embedding = v->as_bool(src + ": no_scale_embedding");
  if (const json::Value* v = field("init_std")) c.init_std = v->as_number(src + ": init_std");
  if (c.hidden_dim % c.num_heads != 0)
    throw Error(detail::cat(src, ": hidden_dim ", c.hidden_dim, " is not a multiple of decoder_attention_heads ",
                            c.num_heads));
  c.use_lrpe.assign(c.num_layers, 0);
  if (c.num_layers > 0) c.use_lrpe[0] = 1;  // the released default: LRPE in layer 0 only
  if (const json::Value* v = field("linear_use_lrpe_list")) {
    const auto& list = v->as_array(src + ": linear_use_lrpe_list");
    if ((int64_t)list.size() != c.num_layers)
      throw Error(detail::cat(src, ": linear_use_lrpe_list has ", list.size(), " entries for ",
                              c.num_layers, " layers"));
    for (size_t i = 0; i < list.size(); ++i) c.use_lrpe[i] = list[i].as_int(src + ": linear_use_lrpe_list") != 0;
  }
  // Fields that would change the computation: only the released values are implemented.
  auto require = [&](const char* name, auto check, const char* expected) {
    if (const json::Value* v = field(name))
      if (!check(*v)) throw Error(detail::cat(src, ": ", name, ": only ", expected, " is supported"));
  };
  require("bias", [](const json::Value& v) { return v.is_bool() && !v.as_bool("bias"); }, "false");
  require("norm_type", [](const json::Value& v) { return v.is_string() && v.as_string("") == "simplermsnorm"; },
          "\"simplermsnorm\"");
  require("linear_act_fun", [](const json::Value& v) {
            return v.is_string() && (v.as_string("") == "silu" || v.as_string("") == "swish");
          }, "\"silu\" (or \"swish\")");
  require("glu_act", [](const json::Value& v) { return v.is_string() && v.as_string("") == "none"; }, "\"none\"");
  require("use_decay", [](const json::Value& v) { return v.is_bool() && v.as_bool(""); }, "true");
  require("tie_word_embeddings", [](const json::Value& v) { return v.is_bool() && v.as_bool(""); }, "true");
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(detail::cat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

std::string config_to_json(const Config& c) {
  std::ostringstream o;
  o << "{\n  \"model_type\": \"transnormer\",\n  \"architectures\": [\"TransnormerForCausalLM\"],\n"
    << "  \"vocab_size\": " << c.vocab_size << ",\n  \"decoder_embed_dim\": " << c.d_model
    << ",\n  \"hidden_dim\": " << c.hidden_dim << ",\n  \"decoder_layers\": " << c.num_layers
    << ",\n  \"decoder_attention_heads\": " << c.num_heads << ",\n  \"glu_dim\": " << c.glu_dim
    << ",\n  \"no_scale_embedding\": " << (c.no_scale_embedding ? "true" : "false")
    << ",\n  \"linear_use_lrpe_list\": [";
  for (size_t i = 0; i < c.use_lrpe.size(); ++i) o << (i ? ", " : "") << c.use_lrpe[i];
  o << "],\n  \"pad_token_id\": " << c.pad_id << ",\n  \"bos_token_id\": " << c.bos_id
    << ",\n  \"eos_token_id\": " << c.eos_id << ",\n  \"init_std\": " << c.init_std
    << ",\n  \"norm_type\": \"simplermsnorm\",\n  \"linear_act_fun\": \"silu\",\n  \"glu_act\": \"none\",\n"
    << "  \"bias\": false,\n  \"use_decay\": true,\n  \"tie_word_embeddings\": true\n}\n";
  return o.str();
}

}  // namespace tnl::model
