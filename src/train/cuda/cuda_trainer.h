// cuda_trainer.h: TransNormerLLM training on one CUDA GPU (issue #5), the twin of
// train/transnormer_grad.h + train/optimizer.h:
//   fp32 master weights, fp32 gradients and fp32 AdamW moments on the device, in the ParamSet
//   layout (so checkpoints and the CPU code interoperate: upload / download); a bf16 copy of
//   the weights for the GEMMs (refreshed by the AdamW kernel); bf16 activations; fp32 residual
//   stream, norms, loss and weight-gradient accumulation (cuBLAS bf16 GEMMs with fp32 output);
//   lightning attention forward and backward through the public API (bf16, CUDA backend);
//   the tied head and cross-entropy fused in chunks of rows; gradient norm (fp64 partials),
//   clipping and AdamW as kernels, with train/optimizer.cpp's arithmetic.
// Saved activations per layer (bf16: SRMS(h), [q|k|v|u] before SiLU, the attention output,
// SRMS(h_mid), [a|b]; fp32: the three 1/rms), 25.6 KB per token per layer at d = hid = 1024,
// g = 2816; with recompute only each layer's fp32 input is kept and the layer's forward runs
// again before its backward. Every kernel is deterministic (no atomics), so two runs on the
// same inputs give the same bits. Plain C++ header (no CUDA types): builds without CUDA get
// stubs that throw (cuda_trainer_none.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "train/optimizer.h"
#include "train/params.h"
#include "train/transnormer_grad.h"

namespace tnl::train {

class CudaTrainer {
 public:
  // Uploads the weights (master fp32 + bf16 copy), zero gradients and zero AdamW moments.
  // Throws tnl::Error when this build has no CUDA backend or no device is visible.
  CudaTrainer(const ParamSet& params, AdamWConfig adamw, int device = 0);
  ~CudaTrainer();
  CudaTrainer(const CudaTrainer&) = delete;
  CudaTrainer& operator=(const CudaTrainer&) = delete;

  const model::Config& config() const;
  int64_t num_params() const;

  // ids, targets: (batch, seqlen) int32 on the host (target −1 = ignored), as
  // train::loss_and_grad: returns the mean cross-entropy and ADDS opt.loss_scale·d(mean)/dθ into
  // the device gradients (opt.recompute: per-layer recomputation; opt.num_threads is unused).
  double loss_and_grad(const int32_t* ids, const int32_t* targets, int64_t batch, int64_t seqlen,
                       const GradOptions& opt = {});
  // {Σ nats, count of non-ignored targets}, no gradient (validation).
  std::pair<double, int64_t> loss_sum(const int32_t* ids, const int32_t* targets, int64_t batch,
                                      int64_t seqlen);

  void zero_grads();
  double grad_norm();                      // global L2 norm of the gradients (fp64 sums)
  double clip_grad_norm(double max_norm);  // train::clip_grad_norm on the device; the norm before
  // One AdamW update at learning rate lr (train::AdamW::step's arithmetic, weight decay off for
  // the tensors whose ParamInfo says so); refreshes the bf16 copy.
  void adamw_step(double lr);
  int64_t steps() const;  // AdamW steps taken (or set by set_optimizer)

  // Host <-> device, synchronous. The ParamSet must have this trainer's config.
  void upload(const ParamSet& p);
  void download(ParamSet& p) const;
  void set_grads(const float* g);  // (num_params) host
  void get_grads(float* g) const;  // (num_params) host
  void set_optimizer(const AdamW& opt);  // moments and step count (opt.config() is not taken)
  void get_optimizer(AdamW& opt) const;  // into opt (its config is kept)

  void synchronize();  // waits for the trainer's queued work (adamw_step and zero_grads are queued)

  // Device memory this process has in use (cudaMemGetInfo), and the most seen by this trainer.
  size_t device_bytes_in_use() const;
  size_t peak_device_bytes() const;
  void reset_peak();
  void release_workspace();  // frees the activation buffers (grown again on the next call)
  // Bytes a layer's attention forward kept for its backward in the last gradient call (the
  // segment starts of tnl::attention_segment_starts_bytes; 0 when it did not split).
  size_t attention_starts_bytes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tnl::train
