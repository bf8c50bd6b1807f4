// optimizer.h: AdamW (PyTorch torch.optim.AdamW semantics: decoupled weight decay, bias-corrected
// moments, eps added after the square root) over one flat fp32 parameter buffer, with fp32 state,
// and gradient clipping by the global L2 norm (fp64 accumulation, deterministic in any thread count).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tnl::train {

// A contiguous part of the flat parameter buffer and whether it gets weight decay.
struct ParamRange {
  int64_t offset = 0, numel = 0;
  bool weight_decay = true;
};

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
};

// Throws tnl::ArgumentError naming the field: betas in [0, 1), eps > 0, weight_decay >= 0.
void validate(const AdamWConfig& c);

class AdamW {
 public:
  AdamW(int64_t num_params, AdamWConfig cfg);

  // One update of params (num_params) with grads (num_params) at learning rate lr:
  //   p ← p·(1 − lr·wd)        (only where the range has weight_decay)
  //   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
  //   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
  // `ranges` must tile [0, num_params) exactly, in order (checked; an ArgumentError names it).
  void step(float* params, const float* grads, double lr, const std::vector<ParamRange>& ranges);

  int64_t steps() const { return step_; }
  int64_t num_params() const { return (int64_t)m_.size(); }
  const AdamWConfig& config() const { return cfg_; }
  const std::vector<float>& exp_avg() const { return m_; }     // (num_params)
  const std::vector<float>& exp_avg_sq() const { return v_; }  // (num_params)
  // Replaces the moments and the step count (e.g. with the GPU trainer's); m and v must hold
  // num_params() values each (tnl::ArgumentError otherwise).
  void set_state(int64_t steps, std::vector<float> m, std::vector<float> v);

  // The state (m, v, step count, config) as a safetensors file ("exp_avg", "exp_avg_sq", F32,
  // the rest in the metadata), written atomically. load() replaces all of it, config included,
  // and throws tnl::Error naming the file when it is not an AdamW state of num_params() values.
  void save(const std::string& path) const;
  void load(const std::string& path);

 private:
  AdamWConfig cfg_;
  int64_t step_ = 0;
  std::vector<float> m_, v_;
};

// sqrt(Σ g²) accumulated in fp64 over fixed blocks (the same bits for any thread count).
double global_grad_norm(const float* g, int64_t n);

// Scales g by max_norm / (norm + 1e-6) when that is below 1 (PyTorch's clip_grad_norm_); returns
// the norm before clipping. A non-finite norm leaves g untouched (the caller should skip the step).
double clip_grad_norm(float* g, int64_t n, double max_norm);

}  // namespace tnl::train
