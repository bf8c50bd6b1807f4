// test_config.cpp: config.json parsing, the released parameter counts (spec transnormerllm.md),
// and errors for fields this implementation does not compute.
#include <gtest/gtest.h>

#include <cmath>

#include "model/config.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {

std::string released(int64_t d, int64_t layers, int64_t heads, int64_t glu, bool no_scale) {
  std::string lrpe = "[1";
  for (int64_t i = 1; i < layers; ++i) lrpe += ", 0";
  lrpe += "]";
  return "{\"decoder_embed_dim\": " + std::to_string(d) + ", \"hidden_dim\": " + std::to_string(d) +
         ", \"decoder_layers\": " + std::to_string(layers) + ", \"decoder_attention_heads\": " +
         std::to_string(heads) + ", \"glu_dim\": " + std::to_string(glu) +
         ", \"no_scale_embedding\": " + (no_scale ? "true" : "false") +
         ", \"linear_use_lrpe_list\": " + lrpe +
         ", \"vocab_size\": 64000, \"linear_act_fun\": \"swish\", \"bias\": false, "
         "\"norm_type\": \"simplermsnorm\", \"init_std\": 0.02}";
}

TEST(Config, ReleasedParameterCounts) {
  // Published counts with the tied embedding (spec): 385M, 1B, 7B.
  EXPECT_EQ(parse_config(released(1024, 24, 8, 2816, false), "385m").num_parameters(), 398984192);
  EXPECT_EQ(parse_config(released(2048, 16, 16, 5632, false), "1b").num_parameters(), 1020266496);
  EXPECT_EQ(parse_config(released(4096, 30, 32, 11008, true), "7b").num_parameters(), 6836719616);
}

TEST(Config, FieldsAndDefaults) {
  const Config c = parse_config(released(2048, 16, 16, 5632, false), "1b");
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_EQ(c.use_lrpe.size(), 16u);
  EXPECT_EQ(c.use_lrpe[0], 1);
  EXPECT_EQ(c.use_lrpe[1], 0);
  EXPECT_DOUBLE_EQ(c.embed_scale(), std::sqrt(2048.0));
  EXPECT_DOUBLE_EQ(parse_config(released(4096, 30, 32, 11008, true), "7b").embed_scale(), 1.0);
  const Config round = parse_config(config_to_json(c), "round trip");
  EXPECT_EQ(round.num_parameters(), c.num_parameters());
  EXPECT_EQ(round.use_lrpe, c.use_lrpe);
}

TEST(Config, UnsupportedFieldsAreErrors) {
  for (const char* bad : {R"({"bias": true})", R"({"norm_type": "layernorm"})",
                          R"({"linear_act_fun": "relu"})", R"({"decoder_layers": 0})",
                          R"({"hidden_dim": 100, "decoder_attention_heads": 8})",
                          R"({"decoder_layers": 2, "linear_use_lrpe_list": [1]})",
                          R"({"decoder_layers": "two"})"}) {
    SCOPED_TRACE(bad);
    try {
      parse_config(bad, "config.json");
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tnl::model
