// bench_generate.cpp: `tnl bench generate`. A TransNormerLLM with random weights in a released
// shape: prefill prompts of several lengths, then decode; prints prefill and decode tokens/s
// per prompt length, the state size, resident memory before and after decoding, and decode
// speed as a percent of the floor set by reading the weights once per token.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <vector>

#include "args.h"
#include "floor.h"
#include "model/config.h"
#include "model/transnormer.h"
#include "tnl/error.h"

namespace tnl::cli {
namespace {

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double rss_mib() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

}  // namespace

int bench_generate(int argc, char** argv) {
  const Args a(argc, argv, {"shape", "device", "prompt-lens", "decode-tokens", "batch", "vocab", "chunk", "seed"}, {});
  if (a.str("device", "cpu") != "cpu")
    throw ArgumentError("flag '--device': the model runs on the cpu for now (the CUDA model path is not built yet)");
  const std::string shape = a.str("shape", "385m");
  const model::Config cfg = model::config_preset(shape, a.integer("vocab", 64000));
  const std::vector<int64_t> lens = a.int_list("prompt-lens", {1024, 4096, 16384});
  const int64_t steps = a.integer("decode-tokens", 32), B = a.integer("batch", 1);
  const int64_t chunk = a.integer("chunk", 4096);
  if (steps < 1 || B < 1) throw ArgumentError("flags '--decode-tokens' and '--batch': expected >= 1");
  for (int64_t n : lens)
    if (n < 1) throw ArgumentError("flag '--prompt-lens': expected lengths >= 1");

  std::fprintf(stderr, "building %s with random weights (%lld parameters)...\n", shape.c_str(),
               (long long)cfg.num_parameters());
  const model::TransNormer net(cfg, (uint64_t)a.integer("seed", 1));
  std::fprintf(stderr, "measuring the floor...\n");
  const Floor fl = measure_cpu_floor(0);
  const double weight_bytes = 4.0 * (double)cfg.num_parameters();  // fp32 on the CPU
  const double floor_tok_s = fl.bandwidth_gbs * 1e9 / weight_bytes * (double)B;
  std::printf("tnl bench generate: %s (%lld parameters, fp32 weights %.2f GiB), batch %lld, cpu\n",
              shape.c_str(), (long long)cfg.num_parameters(), weight_bytes / (1 << 30), (long long)B);
  std::printf("floor: copy %.1f GB/s -> decode at most %.1f tokens/s (weights read once per step)\n\n",
              fl.bandwidth_gbs, floor_tok_s);
  std::printf("| prompt | prefill s | prefill tok/s | decode tok/s | %% of floor | state MiB | RSS MiB before -> after decode |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  const int64_t V = cfg.vocab_size;
  std::vector<float> logits(B * V);
  for (int64_t n : lens) {
    std::vector<std::vector<int32_t>> prompts(B, std::vector<int32_t>(n));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n; ++t) prompts[b][t] = (int32_t)(3 + (t * 7919 + b * 104729) % (V - 3));
    model::GenState st;
    std::fprintf(stderr, "  prompt %lld: prefill...\n", (long long)n);
    double t0 = seconds();
    net.prefill(prompts, st, logits.data(), chunk);
    const double t_prefill = seconds() - t0;
    std::vector<int32_t> tok(B);
    for (int64_t b = 0; b < B; ++b) tok[b] = (int32_t)(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) - (logits.begin() + b * V));
    net.decode(tok.data(), logits.data(), st);  // warm-up step
    const double rss0 = rss_mib();
    t0 = seconds();
    for (int64_t s = 0; s < steps; ++s) {
      for (int64_t b = 0; b < B; ++b) tok[b] = (int32_t)(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) - (logits.begin() + b * V));
      net.decode(tok.data(), logits.data(), st);
    }
    const double t_decode = seconds() - t0;
    const double dec = (double)(steps * B) / t_decode;
    std::printf("| %lld | %.2f | %.0f | %.2f | %.0f%% | %.2f | %.0f -> %.0f |\n", (long long)n, t_prefill,
                (double)(n * B) / t_prefill, dec, 100.0 * dec / floor_tok_s, (double)st.bytes() / (1 << 20), rss0,
                rss_mib());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace tnl::cli
