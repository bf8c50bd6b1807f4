// token_data.cpp: see token_data.h.
#include "train/token_data.h"

#include <dirent.h>

#include <algorithm>
#include <cstring>

#include "model/io/atomic_file.h"
#include "model/io/mapped_file.h"
#include "tnl/error.h"

namespace tnl::train {
namespace {

constexpr char kMagic[8] = {'T', 'N', 'L', 'T', 'O', 'K', 'S', '\0'};
constexpr uint32_t kVersion = 1;
constexpr int64_t kHeaderBytes = 32;

void put_le(unsigned char* p, uint64_t x, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = (unsigned char)(x >> (8 * i));
}

uint64_t get_le(const unsigned char* p, int bytes) {
  uint64_t x = 0;
  for (int i = bytes - 1; i >= 0; --i) x = (x << 8) | p[i];
  return x;
}

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, bound), bound >= 1: rejection of the biased tail.
uint64_t uniform_below(uint64_t& s, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do x = splitmix64(s);
  while (x >= limit);
  return x % bound;
}

}  // namespace

void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size) {
  const char* fn = "tnl::train::write_token_shard";
  TNL_ARG_CHECK(vocab_size >= 1 && vocab_size <= ((int64_t)1 << 31), fn, "vocab_size",
                "expected 1..2^31, got ", vocab_size);
  const int bytes = vocab_size <= 65536 ? 2 : 4;
  for (size_t i = 0; i < tokens.size(); ++i)
    TNL_ARG_CHECK(tokens[i] >= 0 && tokens[i] < vocab_size, fn, "tokens", "token ", i, " is ", tokens[i],
                  ", outside [0, ", vocab_size, ") (writing ", path, ")");
  unsigned char header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  put_le(header + 8, kVersion, 4);
  put_le(header + 12, (uint64_t)bytes, 4);
  put_le(header + 16, tokens.size(), 8);
  put_le(header + 24, (uint64_t)vocab_size, 8);
  io::write_file_atomically(path, [&](const std::function<void(const void*, size_t)>& out) {
    out(header, sizeof header);
    std::vector<unsigned char> buf;
    constexpr size_t kChunk = 1 << 16;
    for (size_t lo = 0; lo < tokens.size(); lo += kChunk) {
      const size_t hi = std::min(tokens.size(), lo + kChunk);
      buf.resize((hi - lo) * bytes);
      for (size_t i = lo; i < hi; ++i) put_le(buf.data() + (i - lo) * bytes, (uint32_t)tokens[i], bytes);
      out(buf.data(), buf.size());
    }
  });
}

TokenShard::TokenShard(const std::string& path) : file_(std::make_unique<io::MappedFile>(path)) {
  const unsigned char* p = file_->data();
  const int64_t size = (int64_t)file_->size();
  if (size < kHeaderBytes)
    throw Error(detail::cat(path, ": not a token shard (", size, " bytes, shorter than the ", kHeaderBytes,
                            "-byte header: truncated?)"));
  if (std::memcmp(p, kMagic, 8) != 0) throw Error(detail::cat(path, ": not a token shard (bad magic)"));
  const uint64_t version = get_le(p + 8, 4), dtype = get_le(p + 12, 4);
  if (version != kVersion)
    throw Error(detail::cat(path, ": token shard version ", version, ", this build reads version ", kVersion));
  if (dtype != 2 && dtype != 4)
    throw Error(detail::cat(path, ": token shard dtype ", dtype, ", expected 2 or 4 bytes"));
  const uint64_t count = get_le(p + 16, 8), vocab = get_le(p + 24, 8);
  if (vocab < 1 || vocab > ((uint64_t)1 << 31) || (dtype == 2 && vocab > 65536))
    throw Error(detail::cat(path, ": token shard vocab size ", vocab, " does not fit its dtype (", dtype, " bytes)"));
  if (count > (uint64_t)(size - kHeaderBytes) / dtype || kHeaderBytes + (int64_t)count * (int64_t)dtype != size)
    throw Error(detail::cat(path, ": token shard of ", count, " tokens should be ", kHeaderBytes, " + ", count, " x ",
                            dtype, " bytes, the file has ", size, " (truncated or corrupt)"));
  dtype_bytes_ = (int)dtype;
  count_ = (int64_t)count;
  vocab_ = (int64_t)vocab;
  tokens_ = p + kHeaderBytes;
  for (int64_t i = 0; i < count_; ++i) {
    const uint64_t t = get_le(tokens_ + i * dtype_bytes_, dtype_bytes_);
    if (t >= vocab) throw Error(detail::cat(path, ": token ", i, " is ", t, ", outside the vocabulary (", vocab, ")"));
  }
}

TokenShard::~TokenShard() = default;
TokenShard::TokenShard(TokenShard&&) noexcept = default;
TokenShard& TokenShard::operator=(TokenShard&&) noexcept = default;

const std::string& TokenShard::path() const { return file_->path(); }

int32_t TokenShard::operator[](int64_t i) const {
  return (int32_t)get_le(tokens_ + i * dtype_bytes_, dtype_bytes_);
}

void TokenShard::copy(int64_t start, int64_t n, int32_t* out) const {
  TNL_ARG_CHECK(start >= 0 && n >= 0 && start + n <= count_, "tnl::train::TokenShard::copy", "start",
                "range [", start, ", ", start + n, ") outside the ", count_, " tokens of ", path());
  if (dtype_bytes_ == 2) {
    for (int64_t i = 0; i < n; ++i) out[i] = (int32_t)get_le(tokens_ + (start + i) * 2, 2);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = (int32_t)get_le(tokens_ + (start + i) * 4, 4);
  }
}

std::vector<std::string> list_shards(const std::string& dir, const std::string& split) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw ArgumentError(detail::cat("data directory '", dir, "': cannot open"));
  std::vector<std::string> names;
  const std::string prefix = split + "-", suffix = ".tok";
  while (const dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() > prefix.size() + suffix.size() && n.compare(0, prefix.size(), prefix) == 0 &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0)
      names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  if (names.empty())
    throw ArgumentError(
        detail::cat("data directory '", dir, "': no ", split, "-*.tok shards (made by `tnl data prepare`)"));
  for (std::string& n : names) n = dir + "/" + n;
  return names;
}

std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  uint64_t s = seed ^ (0xA24BAED4963EE407ull * (uint64_t)(epoch + 1));
  splitmix64(s);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[uniform_below(s, (uint64_t)i + 1)]);
  return order;
}

TokenLoader::TokenLoader(const std::string& dir, const std::string& split, int64_t seq_len, uint64_t seed,
                         bool shuffle)
    : seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  TNL_ARG_CHECK(seq_len >= 1, "tnl::train::TokenLoader", "seq_len", "expected >= 1, got ", seq_len);
  paths_ = list_shards(dir, split);
  for (const std::string& p : paths_) {
    shards_.emplace_back(p);
    const TokenShard& s = shards_.back();
    if (vocab_ == 0) vocab_ = s.vocab_size();
    if (s.vocab_size() != vocab_)
      throw Error(detail::cat(p, ": vocab size ", s.vocab_size(), ", but ", paths_[0], " has ", vocab_));
    total_tokens_ += s.size();
    const int32_t shard = (int32_t)(shards_.size() - 1);
    for (int64_t start = 0; start + seq_len + 1 <= s.size(); start += seq_len) starts_.emplace_back(shard, start);
  }
  if (starts_.empty())
    throw ArgumentError(detail::cat("data directory '", dir, "': the ", split, " shards (", total_tokens_,
                                    " tokens) hold no window of seq_len + 1 = ", seq_len + 1, " tokens"));
  scratch_.resize(seq_len + 1);
  shuffle_epoch();
}

void TokenLoader::shuffle_epoch() {
  if (shuffle_) {
    order_ = shuffled_order(num_windows(), seed_, epoch_);
  } else {
    order_.resize(num_windows());
    for (int64_t i = 0; i < num_windows(); ++i) order_[i] = i;
  }
}

void TokenLoader::set_state(const LoaderState& s) {
  TNL_ARG_CHECK(s.epoch >= 0 && s.cursor >= 0 && s.cursor <= num_windows() && (shuffle_ || s.epoch == 0),
                "tnl::train::TokenLoader::set_state", "state", "epoch ", s.epoch, ", cursor ", s.cursor,
                " outside this data (", num_windows(), " windows", shuffle_ ? "" : ", one pass", ")");
  const bool reshuffle = s.epoch != epoch_ || order_.empty();
  epoch_ = s.epoch;
  cursor_ = s.cursor;
  if (reshuffle) shuffle_epoch();
}

void TokenLoader::read_window(int64_t window, int32_t* ids, int32_t* targets) {
  const auto [shard, start] = starts_[window];
  int32_t* w = scratch_.data();
  shards_[shard].copy(start, seq_len_ + 1, w);
  std::memcpy(ids, w, seq_len_ * sizeof(int32_t));
  std::memcpy(targets, w + 1, seq_len_ * sizeof(int32_t));
}

int64_t TokenLoader::next_rows(int64_t batch, int32_t* ids, int32_t* targets) {
  TNL_ARG_CHECK(batch >= 1, "tnl::train::TokenLoader::next", "batch", "expected >= 1, got ", batch);
  TNL_ARG_CHECK(ids && targets, "tnl::train::TokenLoader::next", "ids", "null pointer");
  int64_t rows = 0;
  for (; rows < batch; ++rows) {
    if (cursor_ == num_windows()) {
      if (!shuffle_) break;
      ++epoch_;
      cursor_ = 0;
      shuffle_epoch();
    }
    read_window(order_[cursor_++], ids + rows * seq_len_, targets + rows * seq_len_);
  }
  return rows;
}

bool TokenLoader::next(int64_t batch, int32_t* ids, int32_t* targets) {
  if (!shuffle_ && num_windows() - cursor_ < batch) {
    TNL_ARG_CHECK(batch >= 1, "tnl::train::TokenLoader::next", "batch", "expected >= 1, got ", batch);
    return false;
  }
  return next_rows(batch, ids, targets) == batch;
}

}  // namespace tnl::train
