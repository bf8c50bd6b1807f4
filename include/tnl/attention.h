// tnl/attention.h: Lightning Attention, the public operator API.
//
// Causal linear attention with a per-head exponential decay (spec: lightning-attention.md §1):
//
//     S_t = λ S_{t-1} + k_tᵀ v_t      (S_{-1} = S0 or 0),  λ = exp(-slope)
//     o_t = scale · q_t S_t
//
// Kernels see plain parameter structs: pointers, sizes, element strides, dtype and device.
// Every entry point validates all of its arguments before it writes anything and throws
// tnl::ArgumentError naming the bad argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tnl/dtype.h"
#include "tnl/error.h"

namespace tnl {

// The two named layouts of a (batch, sequence, head, dim) tensor. Any other strides work too,
// as long as the innermost dim is contiguous.
enum class Layout : int {
  bnhd = 0,  // (B, N, H, D): sequence-major, FlashAttention / FLA style
  bhnd = 1,  // (B, H, N, D): head-major, the paper's code
};

// A strided view of a (B, N, H, dim) tensor; dim (innermost) is contiguous.
// Strides are in elements and must be >= 0. For the decode step stride_seq is unused.
template <class Ptr>
struct SeqTensorT {
  Ptr data = nullptr;
  int64_t stride_batch = 0;
  int64_t stride_seq = 0;
  int64_t stride_head = 0;

  SeqTensorT() = default;
  SeqTensorT(Ptr d, int64_t sb, int64_t sn, int64_t sh)
      : data(d), stride_batch(sb), stride_seq(sn), stride_head(sh) {}
  // A writable view converts to a read-only one.
  template <class P2>
  SeqTensorT(const SeqTensorT<P2>& o)  // NOLINT(google-explicit-constructor)
      : data(o.data), stride_batch(o.stride_batch), stride_seq(o.stride_seq),
        stride_head(o.stride_head) {}
};
using SeqTensor = SeqTensorT<void*>;             // written by the op
using ConstSeqTensor = SeqTensorT<const void*>;  // read by the op

// Contiguous strides for a tensor of the given layout and sizes.
SeqTensor seq_tensor(void* data, Layout layout, int64_t batch, int64_t seqlen, int64_t heads,
                     int64_t dim);
ConstSeqTensor seq_tensor(const void* data, Layout layout, int64_t batch, int64_t seqlen,
                          int64_t heads, int64_t dim);

// Sizes shared by forward and backward.
//   Fixed length: q, k: (B, N, H, D); v, o: (B, N, H, E).
//   Variable length: batch == 1, seqlen == T (total tokens), cu_seqlens has num_seqs + 1
//   non-decreasing int32 entries from 0 to T; the state resets at each boundary.
// States (S0, S_final and their gradients) are contiguous (S, H, D, E), S = num_seqs when
// cu_seqlens is given, else B; fp32 (fp64 when dtype is f64, reference only).
struct AttnShape {
  int64_t batch = 0;    // B
  int64_t seqlen = 0;   // N (T when varlen)
  int64_t heads = 0;    // H
  int64_t dim_qk = 0;   // D, 1..256
  int64_t dim_v = 0;    // E, 1..256
};

// fp16/bf16 inputs on the GPU: how the intermediates computed inside a chunk (masked scores,
// the state, decay-weighted values) enter the 16-bit tensor-core products.
//   compensated: as a hi + lo pair of 16-bit values, fp32-level error plus the rounding of the
//                output (the default);
//   rounded:     rounded once to the input dtype, as PyTorch or Triton kernels at that dtype
//                do (spec §4's bar: <= 2x the error of that math), with ~40% fewer products.
// fp32 inputs and the CPU backend compute in fp32 or better either way.
enum class Intermediates : int { compensated = 0, rounded = 1 };

struct AttnForwardParams {
  DType dtype = DType::f32;    // of q, k, v, o
  Device device = Device::cpu;
  AttnShape shape;
  ConstSeqTensor q;            // (B, N, H, D)
  ConstSeqTensor k;            // (B, N, H, D)
  ConstSeqTensor v;            // (B, N, H, E)
  SeqTensor o;                 // (B, N, H, E)
  const float* slopes = nullptr;  // (H), >= 0, finite; host memory on every device
  float scale = 1.0f;          // c
  const int32_t* cu_seqlens = nullptr;  // (num_seqs + 1) or null; memory of `device`
  int64_t num_seqs = 0;
  // With cu_seqlens: the longest sequence's length when the caller knows it (FlashAttention's
  // max_seqlen), 0 when not. A hint only, results never depend on it: the CUDA backend then
  // splits a sequence much longer than the others into segments even when the batch fills the
  // GPU (the offsets live on the device, where the host cannot see them without a sync).
  int64_t max_seqlen = 0;
  const void* initial_state = nullptr;  // (S, H, D, E) or null (zeros)
  void* final_state = nullptr;          // (S, H, D, E) or null (not written)
  int num_threads = 0;         // CPU: 0 = all hardware threads
  void* stream = nullptr;      // CUDA: a cudaStream_t; null = the default stream
  Intermediates intermediates = Intermediates::compensated;  // CUDA, fp16/bf16
  // Training: where the forward keeps the state each sequence segment starts from, for the
  // backward (attention_segment_starts_bytes says how many bytes; memory of `device`, 16-byte
  // aligned), or null. Ignored when that size is 0.
  void* segment_starts = nullptr;
  size_t segment_starts_bytes = 0;
};

struct AttnBackwardParams {
  DType dtype = DType::f32;
  Device device = Device::cpu;
  AttnShape shape;
  ConstSeqTensor q;            // (B, N, H, D)
  ConstSeqTensor k;            // (B, N, H, D)
  ConstSeqTensor v;            // (B, N, H, E)
  ConstSeqTensor d_o;          // (B, N, H, E): gradient of o
  SeqTensor dq;                // (B, N, H, D)
  SeqTensor dk;                // (B, N, H, D)
  SeqTensor dv;                // (B, N, H, E)
  const float* slopes = nullptr;
  float scale = 1.0f;
  const int32_t* cu_seqlens = nullptr;
  int64_t num_seqs = 0;
  int64_t max_seqlen = 0;  // as in AttnForwardParams
  const void* initial_state = nullptr;    // (S, H, D, E) S0 used by the forward, or null
  const void* d_final_state = nullptr;    // (S, H, D, E) gradient of S_final, or null (zero)
  void* d_initial_state = nullptr;        // (S, H, D, E) gradient of S0, or null (not written)
  int num_threads = 0;
  void* stream = nullptr;
  Intermediates intermediates = Intermediates::compensated;  // CUDA, fp16/bf16
  // The forward's segment_starts, unchanged since a forward of the same q, k, v, slopes, scale,
  // initial_state, cu_seqlens and max_seqlen, or null: the backward then skips its dq scan's
  // pre-pass (a read of K and V). Not checked against the inputs: a buffer from another
  // forward gives a wrong dq.
  const void* segment_starts = nullptr;
  size_t segment_starts_bytes = 0;
};

// One recurrent step per (sequence, head), in place on the state:
//   S ← λ S + kᵀ v;  o = scale · q S
struct AttnDecodeParams {
  DType dtype = DType::f32;
  Device device = Device::cpu;
  int64_t batch = 0, heads = 0, dim_qk = 0, dim_v = 0;  // B, H, D, E
  ConstSeqTensor q;            // (B, H, D): stride_batch, stride_head used
  ConstSeqTensor k;            // (B, H, D)
  ConstSeqTensor v;            // (B, H, E)
  SeqTensor o;                 // (B, H, E)
  void* state = nullptr;       // (B, H, D, E), contiguous, read and written
  const float* slopes = nullptr;
  float scale = 1.0f;
  int num_threads = 0;
  void* stream = nullptr;
};

// The fast paths: tiled CPU backend, or the CUDA backend when built with it.
void attention_forward(const AttnForwardParams& p);
void attention_backward(const AttnBackwardParams& p);
void attention_decode(const AttnDecodeParams& p);

// Segment starts, for training on the CUDA backend. A long sequence that would leave
// multiprocessors idle runs as segments: a pre-pass computes each segment's local state from K
// and V, a short scan turns those into the state each segment starts from, and every segment
// runs from its true start. The backward's dq scan needs the same states (transposed). The
// bytes a forward with these parameters keeps for its backward (segment_starts), or 0 when it
// keeps none (CPU, no split, or the dq scan splits differently): then pass null.
size_t attention_segment_starts_bytes(const AttnForwardParams& p);

// The backward of forward `f`: every field the two share (dtype, device, shape, q, k, v,
// slopes, scale, cu_seqlens, num_seqs, max_seqlen, initial_state, num_threads, stream,
// intermediates, and the segment starts f keeps); the caller adds d_o, dq, dk, dv and, when it
// has them, d_final_state and d_initial_state.
AttnBackwardParams attention_backward_params(const AttnForwardParams& f);

// Largest head dim the operator accepts.
constexpr int64_t kMaxHeadDim = 256;

// The oracle: the naive quadratic form of spec §1, in fp64, on the CPU (device must be cpu).
// Same structs; also accepts dtype f64 (then states are f64 too).
namespace reference {
void attention_forward(const AttnForwardParams& p);
void attention_backward(const AttnBackwardParams& p);
void attention_decode(const AttnDecodeParams& p);
// The token-by-token recurrence in fp64, O(N·D·E): the oracle for long sequences (itself
// tested against the quadratic form).
void attention_forward_recurrent(const AttnForwardParams& p);
}  // namespace reference

// Slope conventions (spec §3), for `heads` heads in layer `layer` of `num_layers`.
// TransNormerLLM: ALiBi ladder 2^(-8(h+1)/H) (ALiBi interleave for H not a power of two),
//   times (1 - layer/(num_layers-1) + 1e-5).
std::vector<float> slopes_transnormer(int64_t heads, int64_t layer, int64_t num_layers);
// MiniMax / FLA: (8/H) (1 - layer/num_layers) h, h = 0..H-1.
std::vector<float> slopes_minimax(int64_t heads, int64_t layer, int64_t num_layers);
// The bare ALiBi ladder (no layer factor).
std::vector<float> alibi_slopes(int64_t heads);

}  // namespace tnl
