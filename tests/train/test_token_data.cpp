// test_token_data.cpp: token shards (round trip in both dtypes; truncated, bad-magic and corrupt
// files rejected naming the file) and the loader (every window once per epoch, a new order each
// epoch, the same order for the same seed, exact resume from a saved state, the validation pass).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "testing/testing.h"
#include "tnl/error.h"
#include "train/token_data.h"

namespace tnl::train {
namespace {

std::string temp_dir() {
  const std::string d = ::testing::TempDir() + "tnl_tok_" + std::to_string(std::random_device{}());
  ::mkdir(d.c_str(), 0755);
  return d;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), (std::streamsize)bytes.size());
}

void expect_error_naming(const std::string& path, const std::string& what) {
  try {
    TokenShard s(path);
    FAIL() << what << ": accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << what << ": " << e.what();
  }
}

TEST(TokenShard, RoundTripBothDtypes) {
  const std::string dir = temp_dir();
  std::mt19937_64 rng(testing::test_seed());
  for (int64_t vocab : {int64_t{320}, int64_t{65536}, int64_t{100000}}) {
    std::vector<int32_t> tokens(1001);
    for (int32_t& t : tokens) t = (int32_t)(rng() % (uint64_t)vocab);
    tokens[0] = (int32_t)vocab - 1;
    tokens[1] = 0;
    const std::string path = dir + "/s-" + std::to_string(vocab) + ".tok";
    write_token_shard(path, tokens, vocab);
    const TokenShard s(path);
    EXPECT_EQ(s.size(), 1001);
    EXPECT_EQ(s.vocab_size(), vocab);
    EXPECT_EQ(s.dtype_bytes(), vocab <= 65536 ? 2 : 4);
    EXPECT_EQ((int64_t)read_bytes(path).size(), 32 + 1001 * s.dtype_bytes());
    std::vector<int32_t> back(1001);
    s.copy(0, 1001, back.data());
    EXPECT_EQ(back, tokens);
    EXPECT_EQ(s[500], tokens[500]);
    EXPECT_THROW(s.copy(1000, 2, back.data()), ArgumentError);
  }
  const std::string empty = dir + "/empty.tok";
  write_token_shard(empty, {}, 10);
  EXPECT_EQ(TokenShard(empty).size(), 0);
  EXPECT_THROW(write_token_shard(dir + "/bad.tok", {1, 2, 10}, 10), ArgumentError);  // 10 >= vocab
  EXPECT_THROW(write_token_shard(dir + "/bad.tok", {-1}, 10), ArgumentError);
}

TEST(TokenShard, TruncatedBadMagicAndCorruptFilesNameTheFile) {
  const std::string dir = temp_dir(), path = dir + "/a.tok";
  write_token_shard(path, {1, 2, 3, 4, 5}, 50);
  const std::string good = read_bytes(path);
  write_bytes(path, good.substr(0, good.size() - 1));
  expect_error_naming(path, "truncated by one byte");
  write_bytes(path, good.substr(0, 20));
  expect_error_naming(path, "truncated header");
  std::string bad = good;
  bad[0] = 'X';
  write_bytes(path, bad);
  expect_error_naming(path, "bad magic");
  bad = good;
  bad[8] = 9;  // version
  write_bytes(path, bad);
  expect_error_naming(path, "bad version");
  bad = good;
  bad[32] = 60;  // first token 60 >= vocab 50
  write_bytes(path, bad);
  expect_error_naming(path, "token outside the vocabulary");
  bad = good + "xx";
  write_bytes(path, bad);
  expect_error_naming(path, "trailing bytes");
  expect_error_naming(dir + "/missing.tok", "missing file");
}

// Shards whose token i is a distinct number, so a window is known by its first token.
struct Corpus {
  std::string dir;
  std::vector<int64_t> sizes = {50, 64, 23, 8};  // the last holds no window of 9 tokens
  std::set<int32_t> window_firsts;               // first token of every window, seq_len 8
};

Corpus make_corpus(int64_t seq_len) {
  Corpus c;
  c.dir = temp_dir();
  int32_t next = 0;
  for (size_t s = 0; s < c.sizes.size(); ++s) {
    std::vector<int32_t> t(c.sizes[s]);
    for (int32_t& x : t) x = next++;
    char name[64];
    std::snprintf(name, sizeof name, "/train-%05zu.tok", s);
    write_token_shard(c.dir + name, t, 1000);
    for (int64_t start = 0; start + seq_len + 1 <= c.sizes[s]; start += seq_len) c.window_firsts.insert(t[start]);
  }
  write_token_shard(c.dir + "/val-00000.tok", std::vector<int32_t>(30, 7), 1000);
  return c;
}

// The first tokens of `batches` batches of `batch` windows, each window checked.
std::vector<int32_t> draw(TokenLoader& L, int64_t batches, int64_t batch) {
  const int64_t T = L.seq_len();
  std::vector<int32_t> ids(batch * T), tg(batch * T), firsts;
  for (int64_t b = 0; b < batches; ++b) {
    EXPECT_TRUE(L.next(batch, ids.data(), tg.data()));
    for (int64_t r = 0; r < batch; ++r) {
      for (int64_t i = 0; i < T; ++i) {
        EXPECT_EQ(ids[r * T + i], ids[r * T] + i) << "a window is consecutive tokens of one shard";
        EXPECT_EQ(tg[r * T + i], ids[r * T] + i + 1) << "targets are the ids shifted by one";
      }
      firsts.push_back(ids[r * T]);
    }
  }
  return firsts;
}

TEST(TokenLoader, EveryWindowOncePerEpochInANewOrder) {
  constexpr int64_t T = 8;
  const Corpus c = make_corpus(T);
  TokenLoader L(c.dir, "train", T, 42, true);
  const int64_t W = (int64_t)c.window_firsts.size();
  ASSERT_EQ(L.num_windows(), W);
  EXPECT_EQ(L.total_tokens(), 50 + 64 + 23 + 8);
  EXPECT_EQ(L.vocab_size(), 1000);
  const std::vector<int32_t> stream = draw(L, W, 3);  // three epochs, batches crossing epochs
  EXPECT_EQ(L.state().epoch, 2) << "the next epoch starts when its first window is taken";
  EXPECT_EQ(L.state().cursor, W);
  std::vector<std::vector<int32_t>> epochs;
  for (int e = 0; e < 3; ++e) {
    std::vector<int32_t> ep(stream.begin() + e * W, stream.begin() + (e + 1) * W);
    EXPECT_EQ(std::set<int32_t>(ep.begin(), ep.end()), c.window_firsts) << "epoch " << e;
    epochs.push_back(ep);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);

  TokenLoader same(c.dir, "train", T, 42, true), other(c.dir, "train", T, 43, true);
  EXPECT_EQ(draw(same, W, 3), stream) << "same seed, same stream";
  EXPECT_NE(draw(other, W, 3), stream) << "another seed, another order";
}

TEST(TokenLoader, SetStateResumesTheIdenticalStream) {
  constexpr int64_t T = 8;
  const Corpus c = make_corpus(T);
  TokenLoader A(c.dir, "train", T, 7, true);
  draw(A, 5, 4);  // 20 of the 15 windows: into the second epoch
  const LoaderState st = A.state();
  const std::vector<int32_t> rest = draw(A, 8, 4);
  TokenLoader B(c.dir, "train", T, 7, true);
  B.set_state(st);
  EXPECT_EQ(B.state().epoch, st.epoch);
  EXPECT_EQ(B.state().cursor, st.cursor);
  EXPECT_EQ(draw(B, 8, 4), rest);
  EXPECT_THROW(B.set_state(LoaderState{0, B.num_windows() + 1}), ArgumentError);
  EXPECT_THROW(B.set_state(LoaderState{-1, 0}), ArgumentError);
}

TEST(TokenLoader, ValidationPassIsSequentialAndEnds) {
  constexpr int64_t T = 8;
  const Corpus c = make_corpus(T);
  TokenLoader V(c.dir, "train", T, 0, false);
  const int64_t W = V.num_windows();
  std::vector<int32_t> ids(5 * T), tg(5 * T), firsts;
  int64_t rows, calls = 0;
  while ((rows = V.next_rows(5, ids.data(), tg.data())) > 0) {
    ++calls;
    for (int64_t r = 0; r < rows; ++r) firsts.push_back(ids[r * T]);
  }
  EXPECT_EQ(calls, (W + 4) / 5);
  EXPECT_EQ(std::vector<int32_t>(c.window_firsts.begin(), c.window_firsts.end()), firsts)
      << "file order, every window once";
  EXPECT_FALSE(V.next(1, ids.data(), tg.data()));
  V.rewind();
  int64_t full = 0;
  while (V.next(5, ids.data(), tg.data())) ++full;
  EXPECT_EQ(full, W / 5) << "next() gives only full batches";
  TokenLoader val(c.dir, "val", T, 0, false);
  EXPECT_EQ(val.num_windows(), 3);
}

TEST(TokenLoader, MissingOrTooShortDataIsNamed) {
  const std::string dir = temp_dir();
  try {
    TokenLoader L(dir, "train", 8, 0, true);
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("train"), std::string::npos) << e.what();
  }
  write_token_shard(dir + "/train-00000.tok", {1, 2, 3}, 10);
  EXPECT_THROW(TokenLoader(dir, "train", 8, 0, true), ArgumentError);  // no window of 9 tokens
  write_token_shard(dir + "/train-00001.tok", std::vector<int32_t>(20, 1), 11);
  EXPECT_THROW(TokenLoader(dir, "train", 8, 0, true), Error);  // vocab sizes differ
}

}  // namespace
}  // namespace tnl::train
