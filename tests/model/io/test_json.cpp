// test_json.cpp: the JSON reader on valid documents, and its errors on broken ones.
#include <gtest/gtest.h>

#include "model/io/json.h"
#include "tnl/error.h"

namespace tnl::json {
namespace {

TEST(Json, ParsesConfigLikeDocument) {
  const Value v = parse(R"({"decoder_layers": 16, "init_std": 0.02, "no_scale_embedding": false,
      "linear_use_lrpe_list": [1, 0, 0], "name": "tn\u00e9\n", "x": null, "big": 1e3})", "t");
  EXPECT_EQ(v.find("decoder_layers")->as_int("layers"), 16);
  EXPECT_DOUBLE_EQ(v.find("init_std")->as_number("std"), 0.02);
  EXPECT_FALSE(v.find("no_scale_embedding")->as_bool("nse"));
  const auto& lrpe = v.find("linear_use_lrpe_list")->as_array("lrpe");
  ASSERT_EQ(lrpe.size(), 3u);
  EXPECT_EQ(lrpe[0].as_int("x"), 1);
  EXPECT_EQ(v.find("name")->as_string("name"), "tn\xc3\xa9\n");
  EXPECT_TRUE(v.find("x")->is_null());
  EXPECT_EQ(v.find("big")->as_int("big"), 1000);
  EXPECT_EQ(v.find("absent"), nullptr);
}

TEST(Json, SurrogatePairsBecomeUtf8) {
  EXPECT_EQ(parse(R"("\ud83d\ude00")", "t").as_string("s"), "\xf0\x9f\x98\x80");
}

TEST(Json, RejectsBrokenDocuments) {
  for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "{\"a\":1,\"a\":2}", "\"abc", "01",
                          "1.", "tru", "{} x", "\"\\x\"", "[\"\\ud800\"]", "-"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse(bad, "doc"), Error);
  }
}

TEST(Json, DeepNestingIsAnErrorNotACrash) {
  const std::string deep(100000, '[');
  try {
    parse(deep, "deep.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("deep.json"), std::string::npos);
  }
}

TEST(Json, KindErrorsNameTheField) {
  const Value v = parse(R"({"n": "x"})", "t");
  try {
    v.find("n")->as_int("config.json: decoder_layers");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decoder_layers"), std::string::npos);
  }
  EXPECT_THROW(parse("1.5", "t").as_int("x"), Error);
}

}  // namespace
}  // namespace tnl::json
