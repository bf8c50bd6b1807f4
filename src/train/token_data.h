// token_data.h: binary token shards and the training data loader.
//
// Shard file (little-endian): a 32-byte header, then `count` tokens of `dtype` bytes each.
//   offset 0  magic "TNLTOKS\0" (8 bytes)   offset 8  version u32 (= 1)
//   offset 12 dtype u32: 2 (u16) or 4 (u32)  offset 16 count u64   offset 24 vocab_size u64
// Written atomically; read memory-mapped; a truncated or corrupt file (bad magic, version, dtype,
// size, or a token >= vocab_size) is an error naming the file.
//
// TokenLoader streams fixed windows of seq_len + 1 tokens from every shard DIR/<split>-*.tok
// (name order). Window w of a shard covers tokens [w·seq_len, w·seq_len + seq_len + 1): ids are
// its first seq_len tokens, targets its last seq_len (so consecutive windows share one token and
// every token but a shard's first is a target once). Windows never cross shards.
// Shuffled (training): each epoch visits every window once, in an order that depends only on
// (seed, epoch); the stream runs on across epochs. Not shuffled (validation): every window once,
// in file order, then next() returns false until rewind().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tnl::io {
class MappedFile;
}

namespace tnl::train {

// Writes a shard atomically; u16 when vocab_size <= 65536, else u32. Throws tnl::ArgumentError
// for a token outside [0, vocab_size).
void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens, int64_t vocab_size);

class TokenShard {
 public:
  explicit TokenShard(const std::string& path);  // maps and checks the whole file
  ~TokenShard();
  TokenShard(TokenShard&&) noexcept;
  TokenShard& operator=(TokenShard&&) noexcept;

  int64_t size() const { return count_; }
  int64_t vocab_size() const { return vocab_; }
  int dtype_bytes() const { return dtype_bytes_; }
  const std::string& path() const;
  int32_t operator[](int64_t i) const;                 // 0 <= i < size(), unchecked
  void copy(int64_t start, int64_t n, int32_t* out) const;  // checked range

 private:
  std::unique_ptr<io::MappedFile> file_;
  const unsigned char* tokens_ = nullptr;
  int64_t count_ = 0, vocab_ = 0;
  int dtype_bytes_ = 2;
};

// DIR/<split>-*.tok in name order; throws tnl::ArgumentError naming dir and split when none.
std::vector<std::string> list_shards(const std::string& dir, const std::string& split);

struct LoaderState {
  int64_t epoch = 0, cursor = 0;  // cursor: windows of this epoch already handed out
};

class TokenLoader {
 public:
  TokenLoader(const std::string& dir, const std::string& split, int64_t seq_len, uint64_t seed, bool shuffle);

  // Fills ids and targets, each (batch, seq_len) row-major, with the next `batch` windows.
  // Shuffled: always true (runs into the next epoch as needed). Not shuffled: true while a full
  // batch was left; a last partial batch is only given by next_rows().
  bool next(int64_t batch, int32_t* ids, int32_t* targets);
  // Like next(), but returns the rows filled: `batch`, fewer at the end of a validation pass, 0
  // once the pass is done. Shuffled: always `batch`.
  int64_t next_rows(int64_t batch, int32_t* ids, int32_t* targets);
  void rewind() { set_state(LoaderState{}); }

  LoaderState state() const { return {epoch_, cursor_}; }
  void set_state(const LoaderState& s);  // resumes the identical stream; checks the range

  int64_t num_windows() const { return (int64_t)starts_.size(); }
  int64_t total_tokens() const { return total_tokens_; }  // in all shards of the split
  int64_t vocab_size() const { return vocab_; }
  int64_t seq_len() const { return seq_len_; }
  int64_t epoch() const { return epoch_; }
  const std::vector<std::string>& shard_paths() const { return paths_; }

 private:
  void shuffle_epoch();
  void read_window(int64_t window, int32_t* ids, int32_t* targets);

  std::vector<std::string> paths_;
  std::vector<TokenShard> shards_;
  std::vector<std::pair<int32_t, int64_t>> starts_;  // (shard, first token) of each window, file order
  std::vector<int64_t> order_;                        // this epoch's window order
  int64_t seq_len_ = 0, total_tokens_ = 0, vocab_ = 0, epoch_ = 0, cursor_ = 0;
  uint64_t seed_ = 0;
  bool shuffle_ = true;
  std::vector<int32_t> scratch_;  // (seq_len + 1) one window
};

// The permutation of [0, n) for (seed, epoch): Fisher–Yates driven by splitmix64 (the same on
// every platform and standard library).
std::vector<int64_t> shuffled_order(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace tnl::train
