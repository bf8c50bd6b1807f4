// bench_train.cpp: `tnl bench train`. TransNormerLLM training steps with random weights and random
// tokens at a fixed number of tokens per step, for several sequence lengths (batch = tokens per
// step / sequence length): tokens/s, MFU (6 · parameters · tokens/s over the measured fp32 GEMM
// rate) and peak resident memory per sequence length. A linear-attention model should train at
// the same tokens/s whatever the sequence length; this table shows whether it does.
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
#include "tnl/error.h"
#include "train/optimizer.h"
#include "train/params.h"
#include "train/transnormer_grad.h"

namespace tnl::cli {
namespace {

// A bad setting: tnl::ArgumentError with the message (which names the setting).
void require_arg(bool ok, const std::string& message) {
  if (!ok) throw ArgumentError(message);
}
// A bad file or a failed run: tnl::Error with the message (which names the file).
[[maybe_unused]] void require_ok(bool ok, const std::string& message) {
  if (!ok) throw Error(message);
}

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

void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";  // resets VmHWM to the current RSS (Linux >= 4.0); harmless where unsupported
}

}  // namespace

int bench_train(int argc, char** argv) {
  const Args a(argc, argv,
               {"shape", "device", "seqlens", "tokens-per-step", "steps", "vocab", "seed", "threads"},
               {"recompute"});
  require_arg(a.str("device", "cpu") == "cpu",
                "--device: training runs on the CPU in this build (expected cpu); the GPU training "
                "path is not written yet");
  if (a.has("threads")) omp_set_num_threads((int)a.integer("threads", 0));
  const std::string shape = a.str("shape", "small");
  const model::Config cfg = model::config_preset(shape, a.integer("vocab", 8000));
  const std::vector<int64_t> lens = a.int_list("seqlens", {1024, 4096, 16384});
  const int64_t tokens_per_step = a.integer("tokens-per-step", 16384);
  const int64_t steps = a.integer("steps", 3);
  require_arg(steps >= 1, "--steps: expected >= 1");
  for (int64_t n : lens)
    require_arg(n >= 1 && tokens_per_step % n == 0,
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
    reset_peak_rss();
    double total = 0;
    for (int64_t s = 0; s <= steps; ++s) {  // step 0 warms up
      for (size_t i = 0; i < ids.size(); ++i) {  // fresh tokens each step
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        ids[i] = (int32_t)(3 + rng % (uint64_t)(cfg.vocab_size - 3));
      }
      for (size_t i = 0; i + 1 < ids.size(); ++i) targets[i] = ids[i + 1];
      targets.back() = ids.front();
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
    std::printf("| %lld | %lld | %.1f | %.0f | %.1f%% | %+.1f%% | %.0f |\n", (long long)n, (long long)B, ms,
                rate, 100.0 * flops_per_token * rate / (fl.gemm_gflops * 1e9), 100.0 * (rate / first_rate - 1),
                peak_rss_mib());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace tnl::cli
