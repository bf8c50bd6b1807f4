// transnormer_cuda.h: the TransNormerLLM model on one CUDA GPU (spec transnormerllm.md), the twin
// of the CPU model (model/transnormer.h) with the same entry points:
//   weights in bf16 on the device (converted from the checkpoint's fp32/fp16/bf16, or the CPU
//   model's random init rounded to bf16); GEMMs through cuBLAS (bf16 in, fp32 accumulate) or,
//   for decode batches of at most 4 rows, a GEMV that forms its input (SRMS, gate, GLU product)
//   and, for the input projection, does SiLU/LRPE on its outputs, launched with programmatic
//   dependent launch on sm_90 (TNL_NO_PDL=1 / TNL_GEMV_PREP=0 turn those two off; TNL_GEMV_VEC=0
//   forms the input one feature per load instead of 16 bytes); the residual
//   stream h in fp32;
//   lightning attention through the public API on the model's stream (bf16 q/k/v, fp32 states);
//   the decode step's attention split over blocks of columns of each head (layers_cuda.h), so
//   that batch 1 fills the GPU, with programmatic dependent launch (TNL_ATTN_PDL=0: without);
//   TNL_PROFILE=1 times decode launches (without graphs) one by one.
// Generation keeps one fp32 state per layer, (B, H, D, E), on the device; the decode step is
// captured once per state in a CUDA graph and replayed. Plain C++ header (no CUDA types):
// builds without CUDA get stubs that throw (transnormer_cuda_none.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/sampler.h"

namespace tnl::model {

class TransNormerCuda;

// Generation state on the GPU: per layer (B, H, D, E) fp32, positions, decode scratch and the
// decode graph. Move-only; tied to the model that filled it.
class CudaGenState {
 public:
  CudaGenState();
  ~CudaGenState();
  CudaGenState(CudaGenState&&) noexcept;
  CudaGenState& operator=(CudaGenState&&) noexcept;

  int64_t batch() const;
  const std::vector<int64_t>& positions() const;  // per sequence: position of its next token
  size_t bytes() const;                           // the fp32 attention states on the device

 private:
  friend class TransNormerCuda;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class TransNormerCuda {
 public:
  // Throws tnl::Error when this build has no CUDA backend or no device is visible.
  explicit TransNormerCuda(const Checkpoint& ck, int device = 0);
  // The CPU model's random init (TransNormer(cfg, seed)), rounded to bf16.
  TransNormerCuda(const Config& cfg, uint64_t seed, int device = 0);
  ~TransNormerCuda();
  TransNormerCuda(const TransNormerCuda&) = delete;
  TransNormerCuda& operator=(const TransNormerCuda&) = delete;

  const Config& config() const;
  size_t weight_bytes() const;  // bf16 weights on the device (tied embedding once)

  // ids (B, N) host → logits (B, N, V) host fp32, every sequence from position 0, no state.
  void forward(const int32_t* ids, int64_t batch, int64_t seqlen, float* logits);
  // Starts `state` for prompts of any lengths >= 1, packed (cu_seqlens) in chunks of at most
  // `chunk` tokens per prompt; last_logits (B, V) host for each prompt's last token.
  void prefill(const std::vector<std::vector<int32_t>>& prompts, CudaGenState& state,
               float* last_logits, int64_t chunk = 4096);
  // Continues every sequence by n tokens: ids (B, n) host → logits (B, n, V) host.
  void extend(const int32_t* ids, int64_t n, CudaGenState& state, float* logits);
  // One token per sequence: ids (B) → logits (B, V) host (a CUDA graph replay).
  void decode(const int32_t* ids, float* logits, CudaGenState& state);
  // Greedy decode with the argmax on the GPU: ids (B) → next (B); only B ids cross the bus.
  void decode_greedy(const int32_t* ids, int32_t* next, CudaGenState& state);
  // One token per sequence chosen on the GPU: ids (B) → next (B) host, by `opt` (its seed
  // unused) as model::Sampler chooses from the logits: the repetition penalty (over every token
  // the state has seen: prompt, extend and decode inputs), then the greedy argmax, or a draw at
  // the temperature from the top-k tokens and the top-p of their mass (ties at a cut are all
  // kept) with uniforms[b] in [0, 1) (the caller's random numbers), by the inverse of the
  // distribution function. Only B ids cross the bus (what tnl generate uses on the GPU).
  void decode_sample(const int32_t* ids, const float* uniforms, const SamplingOptions& opt, int32_t* next,
                     CudaGenState& state);
  // Greedy decode of `steps` tokens per sequence with each step's tokens kept on the GPU as the
  // next step's input: ids (B) host, the tokens fed first → out (steps, B) host, the tokens
  // chosen. The host waits once per 64 steps instead of once per token (the same tokens as
  // `steps` calls of decode_greedy, each fed the previous one's output).
  void decode_greedy_steps(const int32_t* ids, int64_t steps, int32_t* out, CudaGenState& state);

  // Decode through CUDA graphs (default on); off runs the same launches directly.
  void set_graphs(bool on);
  // Decode batches up to this many rows use the fused GEMV instead of cuBLAS (0..4, default 4).
  void set_gemv_rows(int64_t rows);
  // Decode attention split over several blocks per head (default on; TNL_ATTN_SPLIT=0 turns
  // it off) or through the attention API's decode (one block per head).
  void set_attn_split(bool on);
  // Device memory this process has in use (cudaMemGetInfo), and the most seen so far by this
  // model's calls.
  size_t device_bytes_in_use() const;
  size_t peak_device_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tnl::model
