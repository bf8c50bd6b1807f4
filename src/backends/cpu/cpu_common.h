// cpu_common.h: shared pieces of the fast CPU backend: the block size, padding rules, per-thread
// scratch, the per-head decay table, the (sequence, head) task ranges and the thread count.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "ops/attention/validate.h"
#include "tnl/attention.h"
#include "tnl/device.h"

namespace tnl::cpu {

// Block length C of the intra/inter-block algorithm (tokens per tile). Tunable; a multiple of 16.
constexpr int kBlock = 64;
static_assert(kBlock % 16 == 0 && kBlock >= 16, "kBlock must be a positive multiple of 16");

// Most heads one task walks together (see choose_head_group).
constexpr int kMaxGroup = 8;

constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Threads to use: p.num_threads, or every hardware thread when 0.
inline int resolve_threads(int num_threads) {
  return num_threads > 0 ? num_threads : cpu_thread_count();
}

// Token range of sequence `s` and the batch index its rows live in.
struct SeqRange {
  int64_t batch, begin, len;
};
inline SeqRange seq_range(const AttnShape& shape, const int32_t* cu, int64_t s) {
  if (cu) return {0, cu[s], (int64_t)cu[s + 1] - cu[s]};
  return {s, 0, shape.seqlen};
}

// Rows [begin, begin+len) of head h of batch b of a strided (B, N, H, dim) view, as a byte
// pointer to row `begin` and a row stride in bytes.
struct RowView {
  const char* base;
  int64_t stride_bytes;  // between consecutive tokens
  const void* row(int64_t i) const { return base + i * stride_bytes; }
};
template <class Ptr>
RowView row_view(const SeqTensorT<Ptr>& t, DType dt, const SeqRange& r, int64_t h) {
  const int64_t es = dtype_size(dt);
  const char* p = static_cast<const char*>(static_cast<const void*>(t.data));
  return {p + (r.batch * t.stride_batch + r.begin * t.stride_seq + h * t.stride_head) * es,
          t.stride_seq * es};
}

// Software prefetch of the next block's rows, spread over the current block's compute: the rows
// of a (B, N, H, dim) view are strided (one 4 KiB page per token or two), so the hardware
// prefetchers miss them, and issuing all of them at once stalls on the miss buffers. The
// kernels queue the next block's rows (inputs to read, outputs to write) and the GEMM driver
// issues a few cache lines per row panel.
class Prefetcher {
 public:
  void clear() { n_ = cur_ = 0, pos_ = 0, lines_ = 0; }
  // Bytes [off, off + bytes) of rows [row0, row0 + rows) of v; `write`: for an output.
  void add_rows(const RowView& v, int64_t row0, int rows, int64_t off, int64_t bytes, bool write) {
    for (int r = 0; r < rows && n_ < kMaxRows; ++r, ++n_) {
      ptr_[n_] = static_cast<const char*>(v.row(row0 + r)) + off;
      bytes_[n_] = bytes;
      write_[n_] = write;
      lines_ += ceil_div(bytes, 64);
    }
  }
  // Spread what is queued over about `steps` calls of step().
  void plan(int steps) { per_step_ = (int)ceil_div(lines_, std::max(1, steps)) + 1; }
  void step() {
    for (int i = 0; i < per_step_ && cur_ < n_; ++i) {
      const char* p = ptr_[cur_] + pos_;
      if (write_[cur_]) __builtin_prefetch(p, 1, 3);
      else __builtin_prefetch(p, 0, 3);
      pos_ += 64;
      if (pos_ >= bytes_[cur_]) pos_ = 0, ++cur_;
    }
  }

 private:
  static constexpr int kMaxRows = 6 * kBlock;
  const char* ptr_[kMaxRows];
  int64_t bytes_[kMaxRows];
  bool write_[kMaxRows];
  int n_ = 0, cur_ = 0, per_step_ = 0;
  int64_t pos_ = 0, lines_ = 0;
};

// Heads per task. In the (B, N, H, D) layout a token's heads sit side by side, so a task that
// walks G heads block by block reads G·D contiguous elements per token: G times fewer pages
// touched per byte (page walks dominate strided reads, worse under virtualization). G divides H,
// leaves at least `min_tasks` of the `per_group · H/G` tasks, a multiple of the thread count
// (or plenty), and keeps the group's states in scratch within 8 MiB.
inline int64_t choose_head_group(int64_t per_group, int64_t H, int64_t min_tasks, int threads,
                                 int64_t Dp, int64_t Ep) {
  int64_t best = 1;
  for (int64_t g = 2; g <= std::min<int64_t>(H, kMaxGroup); ++g) {
    if (H % g) continue;
    const int64_t tasks = per_group * (H / g);
    const bool balanced = tasks % threads == 0 || tasks >= 4 * threads;
    if (tasks >= min_tasks && balanced && g * 3 * Dp * Ep * 4 <= (8 << 20)) best = g;
  }
  return best;
}

// Per-thread scratch: one 64-byte aligned allocation carved into tiles. Kept by each (pooled)
// OpenMP thread across calls, zeroed when it grows, so short calls pay no allocation or page
// faults. Use through Scratch::local().
class Scratch {
 public:
  // This thread's scratch, with room for at least `floats` floats; every tile is handed out anew.
  static Scratch& local(size_t floats) {
    thread_local Scratch s;
    s.reserve(round_up((int64_t)floats, 16) + 16 * 32);
    s.used_ = 0;
    return s;
  }
  ~Scratch() { std::free(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  // A tile of n floats, 64-byte aligned.
  float* take(int64_t n) {
    float* p = data_ + used_;
    used_ += round_up(n, 16);
    if (used_ > cap_) throw std::bad_alloc();  // a sizing bug: never silently overrun
    return p;
  }

 private:
  Scratch() = default;
  void reserve(int64_t cap) {
    if (cap <= cap_) return;
    std::free(data_);
    data_ = static_cast<float*>(std::aligned_alloc(64, cap * sizeof(float)));
    if (!data_) cap_ = 0, throw std::bad_alloc();
    std::memset(data_, 0, cap * sizeof(float));
    cap_ = cap;
  }
  int64_t cap_ = 0, used_ = 0;
  float* data_ = nullptr;
};

// Decay factors of one head: every factor the kernels use is exp(-s·Δ) with 0 ≤ Δ ≤ C.
// Factors below the smallest normal float are flushed to 0 (no denormals in the hot loops).
struct DecayTable {
  float pw[kBlock + 1];       // pw[j] = λ^j = exp(-s·j), j = 0..C
  float rev[2 * kBlock + 16];  // rev[j] = λ^{C-1-j} for j < C, else 0: mask row a is rev + C-1-a

  explicit DecayTable(float slope) {
    for (int j = 0; j <= kBlock; ++j) {
      const double x = std::exp(-(double)slope * (double)j);
      pw[j] = x < (double)std::numeric_limits<float>::min() ? 0.0f : (float)x;
    }
    for (int j = 0; j < 2 * kBlock + 16; ++j) rev[j] = j < kBlock ? pw[kBlock - 1 - j] : 0.0f;
  }
  // M[a, b] = λ^{a-b} for b <= a, else 0, as a row: mask_row(a)[b].
  const float* mask_row(int a) const { return rev + (kBlock - 1 - a); }
};

}  // namespace tnl::cpu
