// attn_case.h: one Lightning Attention test case, host side.
//
// Given the sizes, dtype, layout, slopes, scale and options, an AttnCase allocates fresh random
// inputs (q, k ~ N(0, 1/D); v, dO, S0, dS_final ~ N(0, 1)), their exact fp64 copies for the
// oracle (same strides, fp64 states), the outputs of the fast path and of the oracle, and fills
// the parameter structs of both. Outputs are poisoned (NaN) before each run; the gaps of odd
// layouts and a guard after every buffer hold a sentinel that must survive the run.
// Results are compared in a canonical order: per sequence, per head, (len, dim) rows for token
// tensors; (S, H, D, E) for states.
//
// A GPU test reuses it: copy the input buffers to the device, point the params at the copies,
// copy the outputs back into the host output buffers, then call fast_*_outputs().
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "testing/testing.h"
#include "tnl/attention.h"

namespace tnl::testing {

// Where the elements of a (B, N, H, dim) tensor live in its buffer.
enum class CaseLayout {
  bnhd,      // contiguous (B, N, H, dim)
  bhnd,      // contiguous (B, H, N, dim)
  padded,    // (B, N, H, dim) order with gaps: stride_head = dim + 3, odd seq/batch pads
  permuted,  // (H, N, B, dim) order with gaps: stride_batch = dim + 2, odd head stride
};
const char* layout_name(CaseLayout layout);

// A strided (B, N, H, dim) tensor in a host buffer. The buffer has `lead` elements before
// element (0, 0, 0, 0) and a guard after the last one; those and the layout's gaps are "gaps".
struct StridedTensor {
  int64_t batch = 0, seqlen = 0, heads = 0, dim = 0;
  int64_t stride_batch = 0, stride_seq = 0, stride_head = 0;
  int64_t lead = 0;
  HostTensor buf;

  StridedTensor() = default;
  StridedTensor(DType dtype, CaseLayout layout, int64_t b, int64_t n, int64_t h, int64_t d);
  DType dtype() const { return buf.dtype; }
  int64_t offset(int64_t b, int64_t n, int64_t h, int64_t d) const {  // into buf
    return lead + b * stride_batch + n * stride_seq + h * stride_head + d;
  }
  SeqTensor view();
  ConstSeqTensor view() const;
  std::vector<bool> covered() const;             // per buf element: part of the tensor
  void fill_normal(std::mt19937_64& rng, double stddev);  // tensor random, gaps sentinel
  void poison();                                 // tensor NaN, gaps sentinel
  StridedTensor converted(DType to) const;       // same strides, element-wise
};

// A contiguous (S, H, D, E) state buffer followed by a guard of sentinel values.
struct StateBuffer {
  int64_t numel = 0;
  HostTensor buf;

  StateBuffer() = default;
  StateBuffer(DType dtype, int64_t n);
  void* data() { return buf.data(); }
  const void* data() const { return buf.data(); }
  void fill_normal(std::mt19937_64& rng, double stddev);
  void poison();
  StateBuffer converted(DType to) const;
  std::vector<double> values() const;            // the numel state elements
};

// The sentinel the gaps and guards hold (rounded to the buffer's dtype).
constexpr double kGapSentinel = -12345.0;

struct AttnCaseConfig {
  int64_t batch = 1, seqlen = 1, heads = 1, dim_qk = 16, dim_v = 16;  // B, N, H, D, E
  DType dtype = DType::f32;
  CaseLayout layout = CaseLayout::bnhd;
  std::vector<int64_t> varlen;   // sequence lengths: packed, then batch = 1, seqlen = Σ
  std::vector<float> slopes;     // (H); empty: slope_mix(H)
  float scale = 1.0f;
  bool initial_state = false;    // pass S0
  bool d_final_state = false;    // pass dS_final to the backward
  bool final_state = true;       // ask for S_final
  bool d_initial_state = true;   // ask for dS0
  int num_threads = 0;
  bool backward = true;          // allocate dO and the gradients (off for long forward cases)

  std::string describe() const;  // for SCOPED_TRACE
};

// Per-head slopes mixing the regimes of spec §4: 0, tiny (1e-4), 1, and ALiBi-like values.
std::vector<float> slope_mix(int64_t heads);

// Named outputs in canonical order (see the header comment).
using Outputs = std::map<std::string, std::vector<double>>;

// One output's error against the oracle: ‖out − ref‖/‖ref‖ over the tensor, and the worst of
// the same ratio over its (sequence, head) blocks, where a block's ‖ref‖ is floored at a tenth
// of its share of the tensor's norm (a block whose reference is a near-cancelling sum, e.g. dk
// = c (dO·v) q of a 1-token sequence, would otherwise measure rounding noise against ~0).
struct Measured {
  std::string output;
  double rel = 0;
  double worst_block = 0;
};

class AttnCase {
 public:
  AttnCase(const AttnCaseConfig& cfg, uint64_t seed);

  const AttnCaseConfig& config() const { return cfg_; }
  uint64_t seed() const { return seed_; }
  int64_t num_seqs() const { return (int64_t)seq_len_.size(); }     // S
  int64_t seq_len(int64_t s) const { return seq_len_[s]; }
  int64_t max_seq_len() const { return seq_len_.empty() ? 0 : *std::max_element(seq_len_.begin(), seq_len_.end()); }
  int64_t seq_begin(int64_t s) const { return seq_begin_[s]; }      // first token row
  int64_t seq_batch(int64_t s) const { return cfg_.varlen.empty() ? s : 0; }
  int64_t state_numel() const { return num_seqs() * cfg_.heads * cfg_.dim_qk * cfg_.dim_v; }
  const std::vector<float>& slopes() const { return slopes_; }
  const std::vector<int32_t>& cu_seqlens() const { return cu_seqlens_; }  // empty unless varlen

  // Fast-path parameters over the host buffers below (device cpu, dtype of the config).
  AttnForwardParams forward_params();
  AttnBackwardParams backward_params();
  // Decode of token row t of every batch entry: q, k, v of row t, o into row t of `o`,
  // in place on `state` ((B, H, D, E) fp32, fp64 for an f64 dtype). Fixed length only.
  AttnDecodeParams decode_params(int64_t t, void* state);

  void poison_fast_outputs();        // o, dq, dk, dv, final_state, d_initial_state
  void run_forward();                // poison, then tnl::attention_forward
  void run_backward();               // poison, then tnl::attention_backward
  void run_reference_forward();      // the quadratic fp64 oracle
  void run_reference_forward_recurrent();  // the fp64 recurrence (long N)
  void run_reference_backward();

  Outputs fast_forward_outputs() const;       // o (+ final_state)
  Outputs fast_backward_outputs() const;      // dq, dk, dv (+ d_initial_state)
  Outputs reference_forward_outputs() const;
  Outputs reference_backward_outputs() const;

  // Every output of `out` against the same one of `ref`.
  std::vector<Measured> compare(const Outputs& out, const Outputs& ref) const;

  // Empty when every gap and guard of the fast-path outputs still holds its sentinel;
  // else names the first buffer and element that changed.
  std::string check_gaps() const;

  // Canonical (len, dim) rows of one (sequence, head) of a token tensor, and (D, E) of a state.
  std::vector<double> head_rows(const StridedTensor& t, int64_t s, int64_t h) const;
  std::vector<double> state_block(const StateBuffer& st, int64_t s, int64_t h) const;
  std::vector<double> canonical(const StridedTensor& t) const;

  // Inputs, in the config's dtype (states fp32), and their fp64 copies for the oracle.
  StridedTensor q, k, v, d_o;                    // (B, N, H, D|E)
  StateBuffer initial_state, d_final_state;      // (S, H, D, E), empty when not used
  StridedTensor q64, k64, v64, d_o64;
  StateBuffer initial_state64, d_final_state64;
  // Outputs of the fast path and of the oracle.
  StridedTensor o, dq, dk, dv;
  StateBuffer final_state, d_initial_state;
  StridedTensor o64, dq64, dk64, dv64;
  StateBuffer final_state64, d_initial_state64;

 private:
  AttnShape shape() const;
  AttnForwardParams reference_forward_params();
  AttnBackwardParams reference_backward_params();
  int64_t block_size(const std::string& output, int64_t s) const;

  AttnCaseConfig cfg_;
  uint64_t seed_;
  std::vector<float> slopes_;
  std::vector<int64_t> seq_len_, seq_begin_;
  std::vector<int32_t> cu_seqlens_;
};

}  // namespace tnl::testing
