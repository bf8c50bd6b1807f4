// bench_generate.cpp: `tnl bench generate`. A TransNormerLLM with random weights in a released
// shape: prefill prompts of several lengths, then decode; prints prefill and decode tokens/s
// per prompt length, the state size, resident memory before and after decoding, and decode
// speed as a percent of the floor set by reading the weights once per token.
// --device cuda (bf16 weights on the GPU): the same table at batch 1 (decode greedy on the GPU
// and with logits to the host), a table of decode by batch (1, 16, 64), the floor from a
// device copy (weights once + the fp32 states read and written once per step), prefill as a
// percent of the cuBLAS bf16 GEMM rate (2 FLOP per parameter per token), and peak GPU memory.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <vector>

#include "args.h"
#include "floor.h"
#include "model/config.h"
#include "model/cuda/transnormer_cuda.h"
#include "model/sampler.h"
#include "model/transnormer.h"
#include "tnl/device.h"
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

int bench_generate_cuda(const Args& a);

}  // namespace

bool use_cuda(const Args& a);  // model_cmds.cpp

int bench_generate(int argc, char** argv) {
  const Args a(argc, argv, {"shape", "device", "prompt-lens", "decode-tokens", "batch", "batches", "vocab", "chunk", "seed",
                                 "report-every"}, {});
  if (use_cuda(a)) return bench_generate_cuda(a);
  const std::string shape = a.str("shape", "385m");
  const model::Config cfg = model::config_preset(shape, a.integer("vocab", 64000));
  const std::vector<int64_t> lens = a.int_list("prompt-lens", {1024, 4096, 16384});
  const int64_t steps = a.integer("decode-tokens", 32), B = a.integer("batch", 1);
  const int64_t chunk = a.integer("chunk", 4096);
  const int64_t report_every = a.integer("report-every", 0);  // 0: no progress lines
  if (steps < 1 || B < 1) throw ArgumentError("flags '--decode-tokens' and '--batch': expected >= 1");
  if (report_every < 0) throw ArgumentError("flag '--report-every': expected >= 0 (0 = off)");
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
  std::printf("| prompt | prefill s | prefill tok/s | decode tok/s (median step) | decode tok/s (mean) | "
              "%% of floor (median) | state MiB | RSS MiB before -> after decode |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
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
    std::vector<double> step_s(steps);  // each step timed: the median resists a busy machine
    for (int64_t s = 0; s < steps; ++s) {
      for (int64_t b = 0; b < B; ++b) tok[b] = (int32_t)(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) - (logits.begin() + b * V));
      t0 = seconds();
      net.decode(tok.data(), logits.data(), st);
      step_s[s] = seconds() - t0;
      if (report_every > 0 && (s + 1) % report_every == 0) {  // long runs: speed and memory as they go
        const double window = std::accumulate(step_s.begin() + (s + 1 - report_every), step_s.begin() + s + 1, 0.0);
        std::fprintf(stderr, "    step %lld/%lld: %.2f tokens/s over the last %lld, RSS %.0f MiB\n", (long long)(s + 1),
                     (long long)steps, (double)(report_every * B) / window, (long long)report_every, rss_mib());
      }
    }
    const double mean_s = std::accumulate(step_s.begin(), step_s.end(), 0.0) / (double)steps;
    std::nth_element(step_s.begin(), step_s.begin() + steps / 2, step_s.end());
    const double dec = (double)B / step_s[steps / 2], dec_mean = (double)B / mean_s;
    std::printf("| %lld | %.2f | %.0f | %.2f | %.2f | %.0f%% | %.2f | %.0f -> %.0f |\n", (long long)n, t_prefill,
                (double)(n * B) / t_prefill, dec, dec_mean, 100.0 * dec / floor_tok_s,
                (double)st.bytes() / (1 << 20), rss0, rss_mib());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace tnl::cli

namespace tnl::cli {
namespace {

double mib(double bytes) { return bytes / (1 << 20); }

// How the timed decode gets its tokens: the argmax on the GPU with the tokens kept there
// between steps (the host waits once for all of them), the argmax on the GPU with a host round
// trip per token, the logits to the host (then the argmax there), or a draw with the released
// defaults (temperature 1, repetition penalty 1.03 over the prompt and the tokens so far) on the
// GPU (decode_sample, what `tnl generate` does) or on the host from the logits (model::Sampler).
enum class DecodeMode { chained, greedy, logits, gpu_sampled, host_sampled };

// Decode `steps` tokens per sequence after `prompts`; returns tokens/s over all sequences.
double time_decode(model::TransNormerCuda& net, model::CudaGenState& st, std::vector<int32_t> tok,
                   int64_t steps, DecodeMode mode, const std::vector<std::vector<int32_t>>& prompts) {
  const int64_t B = (int64_t)tok.size(), V = net.config().vocab_size;
  if (mode == DecodeMode::chained) {
    std::vector<int32_t> warm(2 * B), out(steps * B);
    net.decode_greedy_steps(tok.data(), 2, warm.data(), st);  // warm-up (captures the graph)
    const double t0 = seconds();
    net.decode_greedy_steps(warm.data() + B, steps, out.data(), st);
    return (double)(steps * B) / (seconds() - t0);
  }
  std::vector<float> logits(B * V);
  std::vector<int32_t> next(B);
  std::vector<model::Sampler> samplers;
  std::vector<std::vector<int32_t>> history = prompts;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<float> uniform(B);
  for (int64_t b = 0; b < B; ++b) {
    model::SamplingOptions o;
    o.seed = (uint64_t)b;
    samplers.emplace_back(o);
  }
  auto step = [&] {
    if (mode == DecodeMode::greedy) {
      net.decode_greedy(tok.data(), next.data(), st);
      tok = next;
    } else if (mode == DecodeMode::gpu_sampled) {
      for (int64_t b = 0; b < B; ++b) uniform[b] = std::min((float)unit(rng), 0x1.fffffep-1f);
      net.decode_sample(tok.data(), uniform.data(), model::SamplingOptions{}, next.data(), st);
      tok = next;
    } else if (mode == DecodeMode::host_sampled) {
      net.decode(tok.data(), logits.data(), st);
      for (int64_t b = 0; b < B; ++b) {
        tok[b] = samplers[b].next(logits.data() + b * V, V, history[b]);
        history[b].push_back(tok[b]);
      }
    } else {
      net.decode(tok.data(), logits.data(), st);
      for (int64_t b = 0; b < B; ++b)
        tok[b] = (int32_t)(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) - (logits.begin() + b * V));
    }
  };
  step();  // warm-up (captures the decode graph)
  step();
  const double t0 = seconds();
  for (int64_t s = 0; s < steps; ++s) step();
  return (double)(steps * B) / (seconds() - t0);
}

std::vector<std::vector<int32_t>> bench_prompts(int64_t B, int64_t n, int64_t V) {
  std::vector<std::vector<int32_t>> prompts(B, std::vector<int32_t>(n));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < n; ++t) prompts[b][t] = (int32_t)(3 + (t * 7919 + b * 104729) % (V - 3));
  return prompts;
}

int bench_generate_cuda(const Args& a) {
  const std::string shape = a.str("shape", "1b");
  const model::Config cfg = model::config_preset(shape, a.integer("vocab", 64000));
  const std::vector<int64_t> lens = a.int_list("prompt-lens", {1024, 4096, 16384, 65536, 262144});
  const std::vector<int64_t> batches = a.int_list("batches", {1, 16, 64});
  const int64_t steps = a.integer("decode-tokens", 64), chunk = a.integer("chunk", 8192);
  const int64_t batch_prompt = 1024;  // prompt length of the by-batch table
  if (steps < 1 || chunk < 1) throw ArgumentError("flags '--decode-tokens' and '--chunk': expected >= 1");
  for (int64_t n : lens)
    if (n < 1) throw ArgumentError("flag '--prompt-lens': expected lengths >= 1");
  for (int64_t b : batches)
    if (b < 1) throw ArgumentError("flag '--batches': expected batch sizes >= 1");
  const CudaDeviceInfo dev = cuda_device_info(0);

  std::fprintf(stderr, "measuring the floor...\n");
  const Floor fl = measure_cuda_floor();
  std::fprintf(stderr, "building %s with random weights (%lld parameters) on %s...\n", shape.c_str(),
               (long long)cfg.num_parameters(), dev.name.c_str());
  model::TransNormerCuda net(cfg, (uint64_t)a.integer("seed", 1));
  const double weight_bytes = (double)net.weight_bytes();
  const int64_t V = cfg.vocab_size;
  // Bytes a decode step must move: the weights once, each sequence's fp32 states read + written.
  double state_bytes_per_seq = 0;
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    state_bytes_per_seq += 4.0 * cfg.num_heads * (cfg.use_lrpe[l] ? 2 : 1) * cfg.head_dim() * cfg.head_dim();
  auto floor_tok_s = [&](int64_t B) {
    return fl.bandwidth_gbs * 1e9 / (weight_bytes + 2.0 * state_bytes_per_seq * (double)B) * (double)B;
  };
  const double prefill_floor = fl.gemm_gflops * 1e9 / (2.0 * (double)cfg.num_parameters());
  std::printf("tnl bench generate: %s (%lld parameters, bf16 weights %.2f GiB), cuda: %s\n", shape.c_str(),
              (long long)cfg.num_parameters(), weight_bytes / (1 << 30), dev.name.c_str());
  std::printf("floor: copy %.0f GB/s -> decode at batch 1 at most %.0f tokens/s (weights + state read once per step); "
              "bf16 GEMM %.0f TFLOP/s -> prefill at most %.0f tokens/s\n\n",
              fl.bandwidth_gbs, floor_tok_s(1), fl.gemm_gflops / 1e3, prefill_floor);

  std::printf("batch 1, prefill in chunks of %lld:\n\n", (long long)chunk);
  // Decode columns: greedy with the tokens kept on the GPU (the step's time), greedy with a host
  // round trip per token (one decode_greedy call per token), logits to the host.
  std::printf("| prompt | prefill s | prefill tok/s | %% of GEMM floor | decode tok/s (greedy, tokens on GPU) | %% of floor "
              "| greedy, a host round trip per token | logits to host | state MiB | GPU MiB in use |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<float> logits;
  std::vector<double> decode_rates;
  for (int64_t n : lens) {
    const auto prompts = bench_prompts(1, n, V);
    logits.assign(V, 0.f);
    model::CudaGenState st;
    std::fprintf(stderr, "  prompt %lld: prefill...\n", (long long)n);
    double t0 = seconds();
    net.prefill(prompts, st, logits.data(), chunk);
    const double t_prefill = seconds() - t0;
    const std::vector<int32_t> tok = {(int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin())};
    const double chained = time_decode(net, st, tok, steps, DecodeMode::chained, prompts);
    const double greedy = time_decode(net, st, tok, steps, DecodeMode::greedy, prompts);
    const double host = time_decode(net, st, tok, steps, DecodeMode::logits, prompts);
    decode_rates.push_back(chained);
    std::printf("| %lld | %.3f | %.0f | %.0f%% | %.0f | %.0f%% | %.0f | %.0f | %.1f | %.0f |\n", (long long)n, t_prefill,
                (double)n / t_prefill, 100.0 * n / t_prefill / prefill_floor, chained, 100.0 * chained / floor_tok_s(1),
                greedy, host, mib((double)st.bytes()), mib((double)net.device_bytes_in_use()));
    std::fflush(stdout);
  }
  if (decode_rates.size() > 1) {
    const auto [lo, hi] = std::minmax_element(decode_rates.begin(), decode_rates.end());
    const double mid = (*hi + *lo) / 2;
    std::printf("\ndecode across prompt lengths %lld..%lld: %.0f..%.0f tokens/s (±%.1f%%)\n", (long long)lens.front(),
                (long long)lens.back(), *lo, *hi, 100.0 * (*hi - *lo) / 2 / mid);
  }

  std::printf("\ndecode by batch (prompts of %lld tokens, %lld steps):\n\n", (long long)batch_prompt, (long long)steps);
  std::printf("| batch | decode tok/s (greedy, tokens on GPU) | ms/step | %% of floor | greedy, a host round trip per token "
              "| logits to host | sampled on the GPU (tnl generate's defaults) | sampled on the host from the logits "
              "| round trip per token, no CUDA graph | state MiB |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t B : batches) {
    const auto prompts = bench_prompts(B, batch_prompt, V);
    logits.assign(B * V, 0.f);
    model::CudaGenState st;
    std::fprintf(stderr, "  batch %lld: prefill...\n", (long long)B);
    net.prefill(prompts, st, logits.data(), chunk);
    std::vector<int32_t> tok(B);
    for (int64_t b = 0; b < B; ++b)
      tok[b] = (int32_t)(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) - (logits.begin() + b * V));
    const double chained = time_decode(net, st, tok, steps, DecodeMode::chained, prompts);
    const double greedy = time_decode(net, st, tok, steps, DecodeMode::greedy, prompts);
    const double host = time_decode(net, st, tok, steps, DecodeMode::logits, prompts);
    const double gpu_sampled = time_decode(net, st, tok, steps, DecodeMode::gpu_sampled, prompts);
    const double host_sampled = time_decode(net, st, tok, steps, DecodeMode::host_sampled, prompts);
    net.set_graphs(false);
    const double direct = time_decode(net, st, tok, steps, DecodeMode::greedy, prompts);
    net.set_graphs(true);
    std::printf("| %lld | %.0f | %.3f | %.0f%% | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f |\n", (long long)B, chained,
                1e3 * (double)B / chained, 100.0 * chained / floor_tok_s(B), greedy, host, gpu_sampled, host_sampled,
                direct, mib((double)st.bytes()));
    std::fflush(stdout);
  }
  {  // the same decode with cuBLAS in place of the fused GEMV, for comparison
    const auto prompts = bench_prompts(1, batch_prompt, V);
    logits.assign(V, 0.f);
    model::CudaGenState st;
    net.set_gemv_rows(0);
    net.prefill(prompts, st, logits.data(), chunk);
    const std::vector<int32_t> tok = {(int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin())};
    const double blas = time_decode(net, st, tok, steps, DecodeMode::chained, prompts);
    net.set_gemv_rows(4);
    std::printf("\nbatch 1 decode (greedy, tokens on GPU) with cuBLAS GEMMs in place of the fused GEMV: %.0f tokens/s "
                "(%.0f%% of floor)\n", blas,
                100.0 * blas / floor_tok_s(1));
  }
  std::printf("\npeak GPU memory in use: %.0f MiB (bf16 weights %.0f MiB)\n", mib((double)net.peak_device_bytes()),
              mib(weight_bytes));
  return 0;
}

}  // namespace
}  // namespace tnl::cli
