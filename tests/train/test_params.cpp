// test_params.cpp: the flat parameter set of training: its layout (HF names and shapes),
// random init equal to model::TransNormer(cfg, seed), save_hf → Checkpoint → the same logits as
// make_inference_model, from_checkpoint round trips, unknown names refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/transnormer.h"
#include "tnl/error.h"
#include "train/params.h"

namespace tnl::train {
namespace {

model::Config small_config(bool lrpe_all) {
  model::Config c = model::config_preset("tiny", 53);
  c.d_model = c.hidden_dim = 24;
  c.num_heads = 3;
  c.glu_dim = 40;
  c.num_layers = 2;
  c.use_lrpe = {1, lrpe_all ? 1 : 0};
  return c;
}

std::string temp_dir(const std::string& tag) {
  return ::testing::TempDir() + "tnl_params_" + tag + "_" + std::to_string(std::random_device{}());
}

std::vector<float> logits_of(const model::TransNormer& m, const std::vector<int32_t>& ids, int64_t B,
                             int64_t N) {
  std::vector<float> out(B * N * m.config().vocab_size, NAN);
  m.forward(ids.data(), B, N, out.data());
  return out;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = (int32_t)(rng() % vocab);
  return ids;
}

TEST(ParamSet, LayoutHasEveryTensorOnceWithHfNamesAndShapes) {
  const model::Config c = small_config(false);
  const ParamSet p(c);
  EXPECT_EQ(p.size(), c.num_parameters());  // tied embedding counted once
  int64_t offset = 0;
  for (const ParamInfo& i : p.infos()) {
    EXPECT_EQ(i.offset, offset) << i.name;
    int64_t n = 1;
    for (int64_t s : i.shape) n *= s;
    EXPECT_EQ(i.numel, n) << i.name;
    offset += i.numel;
    EXPECT_EQ(i.weight_decay, i.name.find("theta") == std::string::npos) << i.name;
  }
  EXPECT_EQ(offset, p.size());
  EXPECT_EQ(p.info("model.layers.0.token_mixer.lrpe.theta").shape, (std::vector<int64_t>{3, 1, 8}));
  EXPECT_EQ(p.info("model.layers.1.channel_mixer.l3.weight").shape, (std::vector<int64_t>{24, 40}));
  for (int64_t i = 0; i < p.size(); ++i) ASSERT_EQ(p.data()[i], 0.0f);
}

TEST(ParamSet, UnknownNameThrowsNamingIt) {
  ParamSet p(small_config(false));
  try {
    p.get("model.layers.1.token_mixer.lrpe.theta");  // layer 1 has no LRPE here
    FAIL() << "expected tnl::ArgumentError";
  } catch (const ArgumentError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("model.layers.1.token_mixer.lrpe.theta"), std::string::npos) << what;
  }
  const ParamSet& cp = p;
  EXPECT_THROW(cp.get("lm_head.weight"), ArgumentError);
}

TEST(ParamSet, InitRandomEqualsTheModelsRandomInit) {
  for (bool lrpe_all : {false, true}) {
    const model::Config c = small_config(lrpe_all);
    ParamSet p(c);
    p.init_random(1234);
    const model::TransNormer want(c, 1234);
    const int64_t B = 2, N = 9;
    const std::vector<int32_t> ids = random_ids(B * N, c.vocab_size, 7);
    const std::vector<float> a = logits_of(make_inference_model(p), ids, B, N);
    const std::vector<float> b = logits_of(want, ids, B, N);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "logit " << i;  // same weights: bitwise
    // The pad row is zero, the rest is N(0, 0.02): check the spread, not only equality.
    const float* e = p.get("model.embed_tokens.weight");
    for (int64_t j = 0; j < c.d_model; ++j) EXPECT_EQ(e[c.pad_id * c.d_model + j], 0.0f);
    double ss = 0;
    const int64_t n = p.info("model.layers.0.channel_mixer.l1.weight").numel;
    const float* w = p.get("model.layers.0.channel_mixer.l1.weight");
    for (int64_t i = 0; i < n; ++i) ss += (double)w[i] * w[i];
    EXPECT_NEAR(std::sqrt(ss / n), 0.02, 0.002);
    const float* theta = p.get("model.layers.0.token_mixer.lrpe.theta");
    EXPECT_FLOAT_EQ(theta[1 * 8 + 2], (float)std::pow(10000.0, -2.0 * 10 / 24));
    // A different seed gives different weights.
    ParamSet q(c);
    q.init_random(1235);
    EXPECT_NE(q.get("model.layers.1.token_mixer.out_proj.weight")[5],
              p.get("model.layers.1.token_mixer.out_proj.weight")[5]);
  }
}

TEST(ParamSet, SaveHfLoadsAsCheckpointWithTheSameLogits) {
  const model::Config c = small_config(true);
  ParamSet p(c);
  p.init_random(99);
  for (int64_t i = 0; i < p.size(); ++i) p.data()[i] *= 5.0f;  // larger weights: every layer matters
  const std::string dir = temp_dir("save") + "/nested/ckpt";  // parents are created
  p.save_hf(dir);
  const model::Checkpoint ck(dir);
  EXPECT_EQ(ck.weights_format(), "safetensors");
  EXPECT_EQ(ck.config().num_layers, c.num_layers);
  EXPECT_EQ(ck.config().use_lrpe, c.use_lrpe);
  const int64_t B = 2, N = 70;  // crosses attention blocks
  const std::vector<int32_t> ids = random_ids(B * N, c.vocab_size, 3);
  const std::vector<float> a = logits_of(model::TransNormer(ck), ids, B, N);
  const std::vector<float> b = logits_of(make_inference_model(p), ids, B, N);
  double maxabs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i], b[i]) << "logit " << i;  // same fp32 weights, same code: bitwise
    maxabs = std::max(maxabs, (double)std::fabs(a[i]));
  }
  EXPECT_GT(maxabs, 0.1);
  // from_checkpoint round trip: every float back.
  const ParamSet back = ParamSet::from_checkpoint(ck);
  ASSERT_EQ(back.size(), p.size());
  for (int64_t i = 0; i < p.size(); ++i) ASSERT_EQ(back.data()[i], p.data()[i]) << i;
  // Saving again over the same directory works (atomic replace), no temporaries left behind.
  p.save_hf(dir);
  EXPECT_EQ(std::remove((dir + "/model.safetensors").c_str()), 0);
  EXPECT_EQ(std::remove((dir + "/config.json").c_str()), 0);
  EXPECT_NE(std::remove(dir.c_str()), -1);  // empty now: nothing else was written there
}

TEST(ParamSet, SaveHfIntoAFileIsAnError) {
  ParamSet p(small_config(false));
  const std::string dir = temp_dir("file");
  p.save_hf(dir);
  EXPECT_THROW(p.save_hf(dir + "/config.json/sub"), Error);
}

}  // namespace
}  // namespace tnl::train
