// test_sampler.cpp: sampling semantics checked by counting draws: greedy, top-k and top-p keep
// exactly the tokens they should, temperature sharpens, the repetition penalty follows Hugging
// Face's rule, the seed makes runs repeatable, and bad options are errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "model/sampler.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {

std::map<int32_t, int> draw(const SamplingOptions& o, const std::vector<float>& logits, int n,
                            const std::vector<int32_t>& history = {}) {
  Sampler s(o);
  std::map<int32_t, int> count;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = logits;
    ++count[s.next(l.data(), (int64_t)l.size(), history)];
  }
  return count;
}

TEST(Sampler, GreedyTakesTheArgmax) {
  SamplingOptions o;
  o.greedy = true;
  o.repetition_penalty = 1.0f;
  std::vector<float> l = {0.1f, 2.0f, -1.0f, 1.9f};
  EXPECT_EQ(Sampler(o).next(l.data(), 4, {}), 1);
  o.repetition_penalty = 1.5f;  // 2.0 / 1.5 < 1.9: the penalty changes the winner
  l = {0.1f, 2.0f, -1.0f, 1.9f};
  EXPECT_EQ(Sampler(o).next(l.data(), 4, {1}), 3);
}

TEST(Sampler, RepetitionPenaltyFollowsHuggingFace) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f};
  apply_repetition_penalty(l.data(), 3, {0, 1, 1}, 2.0f);
  EXPECT_FLOAT_EQ(l[0], 1.0f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], -4.0f);  // negative: multiplied (once, though seen twice)
  EXPECT_FLOAT_EQ(l[2], 1.0f);   // unseen: unchanged
}

TEST(Sampler, OneSamplerAlongAGrowingHistoryAsAFreshOneEachStep) {
  // The sampler keeps the distinct tokens seen (O(new tokens) a call): along one sequence its
  // penalized logits equal apply_repetition_penalty over the whole history, and a shorter
  // history (another sequence) or another vocabulary starts over.
  SamplingOptions o;
  o.greedy = true;
  o.repetition_penalty = 1.7f;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  const int64_t V = 50;
  Sampler along(o);
  std::vector<int32_t> history = {4, 9, 4};
  auto check = [&](int64_t vocab, const std::vector<int32_t>& h) {
    std::vector<float> l(vocab);
    for (float& x : l) x = u(rng);
    std::vector<float> want = l;
    apply_repetition_penalty(want.data(), vocab, h, o.repetition_penalty);
    const int32_t got = along.next(l.data(), vocab, h);
    EXPECT_EQ(l, want);  // the logits as penalized in place
    EXPECT_EQ(got, (int32_t)(std::max_element(want.begin(), want.end()) - want.begin()));
  };
  for (int step = 0; step < 40; ++step) {
    check(V, history);
    history.push_back((int32_t)(rng() % V));
  }
  check(V, {1, 2});       // shorter: starts over (tokens 4, 9, ... no longer penalized)
  check(V + 10, {1, 55}); // another vocabulary
}

TEST(Sampler, TopKAndTopPKeepTheRightTokens) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingOptions o;
  o.repetition_penalty = 1.0f;
  o.seed = std::random_device{}();
  o.top_k = 2;
  auto c = draw(o, logits, 4000);
  EXPECT_EQ(c.count(2) + c.count(3), 0u);
  EXPECT_NEAR(c[0] / 4000.0, 0.5 / 0.8, 0.03);  // renormalized over the two kept
  o.top_k = 0;
  o.top_p = 0.79f;  // 0.5 + 0.3 reaches it: tokens 0 and 1 only
  c = draw(o, logits, 4000);
  EXPECT_EQ(c.count(2) + c.count(3), 0u);
  o.top_p = 1.0f;
  c = draw(o, logits, 8000);
  EXPECT_NEAR(c[3] / 8000.0, 0.05, 0.015);  // plain sampling follows the softmax
  o.temperature = 0.25f;                    // sharper: the top token dominates
  c = draw(o, logits, 4000);
  EXPECT_GT(c[0] / 4000.0, 0.85);
}

TEST(Sampler, TopPOverALargeVocabularyKeepsTheSortedPrefix) {
  // 3000 tokens with mildly spread logits: the top-p prefix needs hundreds of candidates, so
  // the sampler sorts it in several rounds. The tokens drawn must be exactly within the prefix
  // a full sort gives (give or take the one at its edge), and the most likely ones must show up.
  const int64_t V = 3000;
  std::mt19937 rng(std::random_device{}());
  std::vector<float> logits(V);
  for (float& x : logits) x = std::normal_distribution<float>(0, 1)(rng);
  SamplingOptions o;
  o.repetition_penalty = 1.0f;
  o.seed = rng();
  o.top_p = 0.6f;
  std::vector<int32_t> order(V);
  for (int32_t i = 0; i < V; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  double sum = 0, mass = 0;
  for (float x : logits) sum += std::exp((double)x - logits[order[0]]);
  size_t keep = 0;
  while (mass < o.top_p) mass += std::exp((double)logits[order[keep++]] - logits[order[0]]) / sum;
  ASSERT_GT(keep, 256u);  // more than the first two rounds
  const std::map<int32_t, int> c = draw(o, logits, 4000);
  std::vector<char> kept(V, 0);
  for (size_t i = 0; i <= keep; ++i) kept[order[i]] = 1;  // one more: fp32 weights at the edge
  for (const auto& [tok, n] : c) EXPECT_TRUE(kept[tok]) << "token " << tok << " drawn " << n << " times, outside the top-p prefix";
  for (size_t i = 0; i < 10; ++i) EXPECT_GT(c.count(order[i]), 0u) << "the " << i << "th most likely token never drawn";
}

TEST(Sampler, SeedMakesRunsRepeatable) {
  std::vector<float> logits(50);
  std::mt19937 rng(std::random_device{}());
  for (float& x : logits) x = std::normal_distribution<float>(0, 2)(rng);
  SamplingOptions o;
  o.seed = 1234;
  EXPECT_EQ(draw(o, logits, 200), draw(o, logits, 200));
}

TEST(Sampler, BadOptionsNameTheOption) {
  auto msg = [](SamplingOptions o) {
    try {
      Sampler s(o);
    } catch (const ArgumentError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SamplingOptions o;
  o.temperature = 0;
  EXPECT_NE(msg(o).find("'temperature'"), std::string::npos);
  o = {};
  o.top_p = 1.5f;
  EXPECT_NE(msg(o).find("'top_p'"), std::string::npos);
  o = {};
  o.top_k = -1;
  EXPECT_NE(msg(o).find("'top_k'"), std::string::npos);
  o = {};
  o.repetition_penalty = 0.5f;
  EXPECT_NE(msg(o).find("'repetition_penalty'"), std::string::npos);
}

}  // namespace
}  // namespace tnl::model
