// bench_train.cpp: `tnl bench train`. TransNormerLLM training steps with random weights and random
// tokens at a fixed number of tokens per step, for several sequence lengths (batch = tokens per
// step / sequence length): tokens/s, MFU (6 · parameters · tokens/s over the measured GEMM rate:
// OpenBLAS fp32 on the CPU, cuBLAS bf16 on the GPU) and peak memory per sequence length (resident
// on the CPU, device memory in use on the GPU). A linear-attention model should train at the same
// tokens/s whatever the sequence length; this table shows whether it does.
//   --device cuda: train/cuda/cuda_trainer.h (bf16 compute, fp32 master weights and AdamW state);
//   defaults there: shape 385m, vocab 64000, 65536 tokens per step, seqlens 1K, 4K, 16K, 64K.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "args.h"
#include "floor.h"
#include "model/config.h"
#include "tnl/device.h"
#include "tnl/error.h"
#include "train/cuda/cuda_trainer.h"
#include "train/optimizer.h"
#include "train/params.h"
#include "train/transnormer_grad.h"

namespace tnl::cli {
namespace {

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Peak resident memory since the last reset_peak_rss(), in MiB (Linux VmHWM).
double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false where the kernel refuses it (then the
// peak also holds the floor measurement's buffers, so it is not reported).
bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool wrote = std::fputs("5", f) >= 0;
  return (std::fclose(f) == 0) && wrote;
}

// Fresh random tokens for one step: ids (B·n), targets = ids shifted by one.
void random_tokens(uint64_t& rng, int64_t vocab, std::vector<int32_t>& ids, std::vector<int32_t>& targets) {
  for (size_t i = 0; i < ids.size(); ++i) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    ids[i] = (int32_t)(3 + rng % (uint64_t)(vocab - 3));
  }
  for (size_t i = 0; i + 1 < ids.size(); ++i) targets[i] = ids[i + 1];
  targets.back() = ids.front();
}

int bench_train_cuda(const Args& a) {
  const std::string shape = a.str("shape", "385m");
  const model::Config cfg = model::config_preset(shape, a.integer("vocab", 64000));
  const std::vector<int64_t> lens = a.int_list("seqlens", {1024, 4096, 16384, 65536});
  const int64_t tokens_per_step = a.integer("tokens-per-step", 65536);
  const int64_t steps = a.integer("steps", 3);
  require_argument(steps >= 1, "--steps: expected >= 1");
  for (int64_t n : lens)
    require_argument(n >= 1 && tokens_per_step % n == 0,
                "--seqlens: expected lengths that divide --tokens-per-step (" + std::to_string(tokens_per_step) +
                    "), got " + std::to_string(n));
  require_argument(cuda_device_count() > 0, "--device cuda: no CUDA device is visible (or this build has no CUDA)");
  const CudaDeviceInfo dev = cuda_device_info(0);
  train::ParamSet params(cfg);
  params.init_random((uint64_t)a.integer("seed", 1));
  std::fprintf(stderr, "measuring the floor...\n");
  const Floor fl = measure_cuda_floor();
  train::CudaTrainer trainer(params, train::AdamWConfig{}, 0);
  const double flops_per_token = 6.0 * (double)params.size();
  const bool recompute = a.flag("recompute");
  std::printf("tnl bench train: %s (%.2fM parameters, vocab %lld), %lld tokens per step, %lld timed steps after "
              "one warm-up, cuda: %s, bf16 compute, fp32 master weights and AdamW%s\n",
              shape.c_str(), params.size() / 1e6, (long long)cfg.vocab_size, (long long)tokens_per_step,
              (long long)steps, dev.name.c_str(), recompute ? ", recompute" : ", saved activations");
  std::printf("floor: bf16 GEMM %.0f TFLOP/s (%s); MFU = 6 · parameters · tokens/s / floor; a step = "
              "forward + backward + clip + AdamW\n\n",
              fl.gemm_gflops / 1e3, fl.gemm_how.c_str());
  std::printf("| seq len | batch | ms/step | tokens/s | MFU | vs first row | loss | peak GPU GiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  train::GradOptions gopt;
  gopt.recompute = recompute;
  double first_rate = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (int64_t n : lens) {
    const int64_t B = tokens_per_step / n;
    std::vector<int32_t> ids(B * n), targets(B * n);  // (B, n)
    trainer.release_workspace();
    trainer.reset_peak();
    double total = 0, loss = 0;
    for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up
      random_tokens(rng, cfg.vocab_size, ids, targets);
      const double t0 = seconds();
      trainer.zero_grads();
      loss = trainer.loss_and_grad(ids.data(), targets.data(), B, n, gopt);
      trainer.clip_grad_norm(1.0);
      trainer.adamw_step(1e-4);
      trainer.synchronize();
      if (s > 0) total += seconds() - t0;
    }
    const double ms = total / (double)steps * 1e3;
    const double rate = (double)tokens_per_step / (ms / 1e3);
    if (first_rate == 0) first_rate = rate;
    std::printf("| %lld | %lld | %.1f | %.0f | %.1f%% | %+.1f%% | %.3f | %.1f |\n", (long long)n, (long long)B, ms, rate,
                100.0 * flops_per_token * rate / (fl.gemm_gflops * 1e9), 100.0 * (rate / first_rate - 1), loss,
                trainer.peak_device_bytes() / (double)(1ull << 30));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int bench_train(int argc, char** argv) {
  const Args a(argc, argv,
               {"shape", "device", "seqlens", "tokens-per-step", "steps", "vocab", "seed", "threads"},
               {"recompute"});
  const std::string device = a.str("device", "cpu");
  require_argument(device == "cpu" || device == "cuda", "--device: expected cpu or cuda, got '" + device + "'");
  if (device == "cuda") return bench_train_cuda(a);
  if (a.has("threads")) omp_set_num_threads((int)a.integer("threads", 0));
  const std::string shape = a.str("shape", "small");
  const model::Config cfg = model::config_preset(shape, a.integer("vocab", 8000));
  const std::vector<int64_t> lens = a.int_list("seqlens", {1024, 4096, 16384});
  const int64_t tokens_per_step = a.integer("tokens-per-step", 16384);
  const int64_t steps = a.integer("steps", 3);
  require_argument(steps >= 1, "--steps: expected >= 1");
  for (int64_t n : lens)
    require_argument(n >= 1 && tokens_per_step % n == 0,
                  "--seqlens: expected lengths that divide --tokens-per-step (" +
                      std::to_string(tokens_per_step) + "), got " + std::to_string(n));

  train::ParamSet params(cfg);
  params.init_random((uint64_t)a.integer("seed", 1));
  std::vector<train::ParamRange> ranges;
  for (const train::ParamInfo& p : params.infos()) ranges.push_back({p.offset, p.numel, p.weight_decay});
  std::sort(ranges.begin(), ranges.end(),
            [](const train::ParamRange& x, const train::ParamRange& y) { return x.offset < y.offset; });
  std::vector<float> grads(params.size());
  train::AdamW opt(params.size(), train::AdamWConfig{});
  std::fprintf(stderr, "measuring the floor...\n");
  const Floor fl = measure_cpu_floor(omp_get_max_threads());
  const double flops_per_token = 6.0 * (double)params.size();
  std::printf("tnl bench train: %s (%.2fM parameters, vocab %lld), %lld tokens per step, %lld timed steps "
              "after one warm-up, cpu, %d threads%s\n",
              shape.c_str(), params.size() / 1e6, (long long)cfg.vocab_size, (long long)tokens_per_step,
              (long long)steps, omp_get_max_threads(), a.flag("recompute") ? ", recompute" : "");
  std::printf("floor: SGEMM %.1f GFLOP/s (%s); MFU = 6 · parameters · tokens/s / floor\n\n",
              fl.gemm_gflops, fl.gemm_how.c_str());
  std::printf("| seq len | batch | ms/step | tokens/s | MFU | vs first row | peak RSS MiB |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  train::GradOptions gopt;
  gopt.recompute = a.flag("recompute");
  double first_rate = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ull;
  for (int64_t n : lens) {
    const int64_t B = tokens_per_step / n;
    std::vector<int32_t> ids(B * n), targets(B * n);  // (B, n)
    const bool peak_known = reset_peak_rss();
    double total = 0;
    for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up
      random_tokens(rng, cfg.vocab_size, ids, targets);  // fresh tokens each step
      const double t0 = seconds();
      std::fill(grads.begin(), grads.end(), 0.0f);
      train::loss_and_grad(params, ids.data(), targets.data(), B, n, grads.data(), gopt);
      train::clip_grad_norm(grads.data(), (int64_t)grads.size(), 1.0);
      opt.step(params.data(), grads.data(), 1e-4, ranges);
      if (s > 0) total += seconds() - t0;
    }
    const double ms = total / (double)steps * 1e3;
    const double rate = (double)tokens_per_step / (ms / 1e3);
    if (first_rate == 0) first_rate = rate;
    char peak[32] = "n/a (reset refused)";
    if (peak_known) std::snprintf(peak, sizeof peak, "%.0f", peak_rss_mib());
    std::printf("| %lld | %lld | %.1f | %.0f | %.1f%% | %+.1f%% | %s |\n", (long long)n, (long long)B, ms,
                rate, 100.0 * flops_per_token * rate / (fl.gemm_gflops * 1e9), 100.0 * (rate / first_rate - 1),
                peak);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace tnl::cli
