// trainer.h: the training loop of TransNormerLLM on the CPU (issue #5): token shards in, a Hugging
// Face model directory out.
//
//   per step: `accum` micro-batches of (batch, seq_len) windows → loss and gradient (fp32) →
//             clip by global norm → AdamW at the scheduled learning rate
//   every log_every steps: a LossPoint (loss, lr, grad norm, tokens/s, MFU) to the callback and
//             the loss curve (CSV + PNG) in the output directory
//   every eval_every steps: validation loss over the val shards
//   every save_every steps, at the end, and when `stop` is raised: a checkpoint
//
// Output directory:
//   OUT/checkpoints/step-000200/  config.json, model.safetensors, tokenizer.model (a model
//                                 directory `tnl generate` and `tnl eval` read), optimizer.safetensors,
//                                 trainer_state.json (step, data-loader position, the run's settings)
//   OUT/latest                    the name of the newest complete checkpoint (written last)
//   OUT/loss.csv, OUT/loss.png    the loss curve
// A checkpoint is written into a temporary directory and renamed into place, and `latest` is
// replaced atomically after it: a crash mid-save leaves the previous checkpoint as the latest.
// Resuming restores weights, optimizer moments, the step and the loader position, so the loss
// curve continues bit for bit as if the run had not stopped (same machine and thread count).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/optimizer.h"
#include "train/params.h"
#include "train/plot.h"
#include "train/schedule.h"
#include "train/token_data.h"

namespace tnl::train {

class CudaTrainer;

struct TrainConfig {
  model::Config model;         // the architecture (vocab_size must match the tokenizer)
  std::string data_dir;        // shards from `tnl data prepare` (train-*.tok, val-*.tok)
  std::string tokenizer_path;  // copied into every checkpoint
  std::string out_dir;
  int64_t seq_len = 256, batch = 8, accum = 1;  // tokens per step = seq_len · batch · accum
  int64_t steps = 1000;        // optimizer steps, which the schedule spans; 0 with a time
                               // budget: as many as fit in it (timed on the first steps)
  double time_budget_s = 0;    // > 0: stop (and save) once this much training time has passed
  LrSchedule schedule;
  AdamWConfig adamw;
  double clip = 1.0;           // max global gradient norm; <= 0 disables clipping
  int64_t log_every = 10, eval_every = 200, eval_batches = 32, save_every = 500;
  int64_t keep_checkpoints = 2;
  uint64_t seed = 1;           // weight init and data order
  bool recompute = false;      // activation recomputation (memory flat in seq_len)
  double peak_gflops = 0;      // the machine's measured fp32 GEMM rate, for MFU (0: not shown)
  std::string init_from;       // a model directory to start from instead of random weights
  std::string device = "cpu";  // cpu, or cuda: train/cuda/cuda_trainer.h (bf16 compute, fp32 master
                               // weights and AdamW state on the GPU; downloaded at each save). Not
                               // saved with the run: a run may resume on either device.
};

// Throws tnl::ArgumentError naming the field for a setting that cannot run.
void validate(const TrainConfig& c);

struct TrainResult {
  int64_t step = 0;            // optimizer steps done in total (with those before a resume)
  double train_loss = 0;       // the last logged one
  double val_loss = 0;         // the last evaluation (NaN when none)
  std::string checkpoint_dir;  // the newest checkpoint
  bool interrupted = false;    // stopped by `stop`
};

class Trainer {
 public:
  // A fresh run into cfg.out_dir (which must not already hold a run unless `resume`).
  explicit Trainer(const TrainConfig& cfg);
  ~Trainer();
  // Resumes from out_dir/latest; `override_cfg` may change only steps, time_budget_s and the
  // log/eval/save intervals (anything else that differs is an error naming it).
  static std::unique_ptr<Trainer> resume(const std::string& out_dir, const TrainConfig* override_cfg);

  // Trains until cfg.steps, the time budget, or *stop becomes true; on_log gets every log point.
  TrainResult run(const std::atomic<bool>* stop, const std::function<void(const LossPoint&)>& on_log,
                  const std::function<void(const std::string&)>& on_message = nullptr);
  // Mean validation loss (nats per token) over at most cfg.eval_batches batches.
  double evaluate() const;

  const TrainConfig& config() const { return cfg_; }
  const ParamSet& params() const { return params_; }
  int64_t step() const { return step_; }
  double flops_per_token() const;  // 6 · parameters (forward + backward)

 private:
  struct ResumeTag {};
  Trainer(const TrainConfig& cfg, ResumeTag);
  std::string save_checkpoint();
  void load_checkpoint(const std::string& dir);
  std::vector<ParamRange> ranges() const;

  TrainConfig cfg_;
  ParamSet params_;
  std::vector<float> grads_;
  AdamW opt_;
  TokenLoader train_data_;
  int64_t step_ = 0, tokens_ = 0;
  std::vector<LossPoint> curve_;
  int64_t last_saved_step_ = -1;
  std::unique_ptr<CudaTrainer> gpu_;  // device "cuda": the weights, gradients and AdamW state live here
};

// The newest checkpoint directory of a run (OUT/latest); throws naming out_dir when none.
std::string latest_checkpoint(const std::string& out_dir);
// The settings (and model config) of a run's newest checkpoint, with out_dir set.
TrainConfig saved_train_config(const std::string& out_dir);

// The training settings as JSON (what trainer_state.json holds) and back.
std::string train_config_to_json(const TrainConfig& c);
TrainConfig train_config_from_json(const std::string& text, const std::string& source);

}  // namespace tnl::train
