// test_tokenizer.cpp: a BPE tokenizer with byte fallback trained here on generated text:
// special ids as released, exact round trips (also of characters never seen in training),
// streamed detokenization equal to the whole decode.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>

#include "model/tokenizer.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {

std::string g_model;

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = ::testing::TempDir() + "tnl_tok_" + std::to_string(std::random_device{}());
    const std::string text = dir + ".txt";
    std::ofstream f(text);
    std::mt19937 rng(std::random_device{}());
    const char* words[] = {"the", "lightning", "attention", "linear", "state", "decay", "token",
                           "model", "constant", "speed", "sequence", "length", "of", "and", "a"};
    for (int line = 0; line < 3000; ++line) {
      for (int w = 0; w < 12; ++w) f << words[rng() % 15] << (w == 11 ? ".\n" : " ");
    }
    f.close();
    TokenizerTrainOptions o;
    o.inputs = {text};
    o.model_prefix = dir;
    o.vocab_size = 400;
    train_tokenizer(o);
    g_model = dir + ".model";
  }
};

TEST_F(TokenizerTest, SpecialIdsAndRoundTrips) {
  const Tokenizer t(g_model);
  EXPECT_EQ(t.vocab_size(), 400);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  for (const std::string s : {"the lightning attention model.", "constant speed, any length!",
                              "unseen: Zürich \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87 42"}) {
    const std::vector<int32_t> ids = t.encode(s);
    EXPECT_FALSE(ids.empty());
    for (int32_t id : ids) EXPECT_NE(id, 0) << "byte fallback should leave no <unk> in: " << s;
    EXPECT_EQ(t.decode(ids), s);
  }
  EXPECT_LT(t.encode("the lightning attention").size(), 10u);  // merges were learned
}

TEST_F(TokenizerTest, StreamingDecodeEqualsWholeDecode) {
  const Tokenizer t(g_model);
  const std::string s = "state decay \xf0\x9f\x98\x80 token \xc3\xa9t\xc3\xa9 model";
  const std::vector<int32_t> ids = t.encode(s);
  DetokenizeStream stream(t);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    // Never emit half a UTF-8 character.
    if (!piece.empty()) {
      EXPECT_NE((unsigned char)piece.back() & 0xc0, 0xc0u);
    }
    EXPECT_EQ(piece.find("\xef\xbf\xbd"), std::string::npos) << "a replacement character was streamed";
    out += piece;
  }
  out += stream.flush();
  EXPECT_EQ(out, s);
}

// Streaming a continuation with its prompt as context renders what decoding prompt + continuation
// renders (a leading space is kept), over more tokens than the stream's window.
TEST_F(TokenizerTest, StreamingAfterAPromptKeepsTheSpaceAndLongStreamsStayExact) {
  const Tokenizer t(g_model);
  std::mt19937 rng(std::random_device{}());
  const char* words[] = {"decay", "state", "\xc3\xa9t\xc3\xa9", "token", "\xf0\x9f\x98\x80", "model", "a"};
  std::string prompt = "the lightning", rest;
  for (int w = 0; w < 150; ++w) rest += std::string(" ") + words[rng() % 7];
  const std::vector<int32_t> p_ids = t.encode(prompt), r_ids = t.encode(rest);
  std::vector<int32_t> all = p_ids;
  all.insert(all.end(), r_ids.begin(), r_ids.end());
  const std::string whole = t.decode(all);
  ASSERT_EQ(whole.compare(0, prompt.size(), prompt), 0);
  DetokenizeStream stream(t, p_ids);
  std::string out;
  for (int32_t id : r_ids) out += stream.push(id);
  out += stream.flush();
  EXPECT_GT(r_ids.size(), 64u);  // longer than the window
  EXPECT_EQ(prompt + out, whole);
  EXPECT_EQ(out[0], ' ');
}

TEST_F(TokenizerTest, Errors) {
  EXPECT_THROW(Tokenizer("/nonexistent/tokenizer.model"), Error);
  const Tokenizer t(g_model);
  EXPECT_THROW(t.decode({5, 100000}), ArgumentError);
}

}  // namespace
}  // namespace tnl::model
