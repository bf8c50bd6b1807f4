// train_cmd.cpp: `tnl train`: trains a TransNormerLLM from token shards (`tnl data prepare`) on the
// CPU, printing a progress line per log interval, validating, checkpointing, plotting the loss.
// Settings come from flags, or from --config FILE (a JSON object whose keys are the flag names
// without "--"; flags on the command line win). Ctrl-C saves a checkpoint and exits cleanly.
#include <omp.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "model/io/json.h"
#include "model/tokenizer.h"
#include "tnl/error.h"
#include "args.h"
#include "floor.h"
#include "train/trainer.h"

namespace tnl::cli {
namespace {

std::atomic<bool> g_stop{false};

void on_sigint(int) {
  if (g_stop.load()) std::_Exit(130);  // a second Ctrl-C: stop now
  g_stop.store(true);
}

const std::vector<std::string> kFlags = {
    "config", "data", "tokenizer", "out", "shape", "layers", "d-model", "hidden-dim", "heads",
    "glu-dim", "lrpe-layers", "seq-len", "batch", "accum", "steps", "time-budget", "lr", "min-lr",
    "warmup", "schedule", "beta1", "beta2", "eps", "weight-decay", "clip", "log-every", "eval-every",
    "eval-batches", "save-every", "keep", "seed", "threads", "init-from", "device"};
const std::vector<std::string> kBoolFlags = {"resume", "recompute", "no-floor"};

// argv plus the --config file's settings (before argv, so the command line wins).
std::vector<std::string> with_config_file(int argc, char** argv) {
  std::vector<std::string> out;
  std::string path;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) path = argv[i + 1];
    if (a.rfind("--config=", 0) == 0) path = a.substr(9);
  }
  if (!path.empty()) {
    std::ifstream f(path);
    require_argument(f.good(), "--config: cannot read " + path);
    std::stringstream ss;
    ss << f.rdbuf();
    const json::Value v = json::parse(ss.str(), path);
    for (const auto& [k, val] : v.as_object(path)) {
      if (val.is_bool()) {
        if (val.as_bool(k)) out.push_back("--" + k);
        continue;
      }
      out.push_back("--" + k);
      if (val.is_string()) {
        out.push_back(val.as_string(k));
      } else {
        const double d = val.as_number(path + ": " + k);
        char s[40];
        std::snprintf(s, sizeof s, "%.17g", d);
        out.push_back(s);
      }
    }
  }
  for (int i = 0; i < argc; ++i) out.push_back(argv[i]);
  return out;
}

double parse_duration(const std::string& s) {  // "600", "600s", "10m", "1.5h" → seconds
  require_argument(!s.empty(), "--time-budget: expected a duration like 600s, 10m or 1h");
  char unit = s.back();
  std::string n = s;
  double mult = 1;
  if (unit == 's' || unit == 'm' || unit == 'h') {
    n.pop_back();
    mult = unit == 'm' ? 60 : unit == 'h' ? 3600 : 1;
  }
  char* end = nullptr;
  const double v = std::strtod(n.c_str(), &end);
  require_argument(end != n.c_str() && *end == '\0' && v >= 0,
                   "--time-budget: expected a duration like 600s, 10m or 1h, got '" + s + "'");
  return v * mult;
}

std::string human_duration(double s) {
  char b[32];
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", (int)(s / 3600), (int)std::fmod(s / 60, 60));
  else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", (int)(s / 60), (int)std::fmod(s, 60));
  else std::snprintf(b, sizeof b, "%.0fs", s);
  return b;
}

std::string human_rate(double v) {
  char b[32];
  if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(b, sizeof b, "%.2fK", v / 1e3);
  else std::snprintf(b, sizeof b, "%.0f", v);
  return b;
}

// The settings: flags over `base` (the defaults for a new run, the saved ones when resuming).
train::TrainConfig config_from_args(const Args& a, train::TrainConfig c, bool resume) {
  c.data_dir = a.str("data", c.data_dir);
  c.tokenizer_path = a.str("tokenizer", c.tokenizer_path);
  require_argument(!c.data_dir.empty(), "--data: expected the directory written by `tnl data prepare`");
  if (!resume) {
    require_argument(!c.tokenizer_path.empty(), "--tokenizer: expected the tokenizer.model of the data");
    const model::Tokenizer tok(c.tokenizer_path);
    c.model = model::config_preset(a.str("shape", "small"), tok.vocab_size());
    c.model.num_layers = a.integer("layers", c.model.num_layers);
    c.model.d_model = a.integer("d-model", c.model.d_model);
    c.model.hidden_dim = a.integer("hidden-dim", c.model.d_model);
    c.model.num_heads = a.integer("heads", c.model.num_heads);
    c.model.glu_dim = a.integer("glu-dim", c.model.glu_dim);
    const int64_t lrpe = a.integer("lrpe-layers", 1);  // the releases: LRPE in layer 0 only
    c.model.use_lrpe.assign(c.model.num_layers, 0);
    for (int64_t l = 0; l < std::min(lrpe, c.model.num_layers); ++l) c.model.use_lrpe[l] = 1;
    require_argument(c.model.num_heads >= 1 && c.model.hidden_dim % c.model.num_heads == 0,
                     "--heads: expected a divisor of the hidden dim " +
                         std::to_string(c.model.hidden_dim));
  } else {
    for (const char* f : {"shape", "layers", "d-model", "hidden-dim", "heads", "glu-dim", "lrpe-layers",
                          "init-from"})
      require_argument(!a.has(f), std::string("--") + f + ": the model of a resumed run cannot change");
  }
  c.seq_len = a.integer("seq-len", c.seq_len);
  c.batch = a.integer("batch", c.batch);
  c.accum = a.integer("accum", c.accum);
  if (a.has("time-budget")) c.time_budget_s = parse_duration(a.str("time-budget", ""));
  // Resuming: 0 keeps the saved count. A time budget alone: 0 fits the steps to it.
  c.steps = a.integer("steps", resume ? 0 : c.time_budget_s > 0 ? 0 : c.steps);
  if (a.has("schedule")) c.schedule.kind = train::parse_schedule_kind(a.str("schedule", ""), "--schedule");
  c.schedule.lr_max = a.real("lr", c.schedule.lr_max);
  c.schedule.lr_min = a.real("min-lr", resume ? c.schedule.lr_min : c.schedule.lr_max / 10);
  c.schedule.warmup_steps = a.integer("warmup", c.schedule.warmup_steps);
  c.adamw.beta1 = a.real("beta1", c.adamw.beta1);
  c.adamw.beta2 = a.real("beta2", c.adamw.beta2);
  c.adamw.eps = a.real("eps", c.adamw.eps);
  c.adamw.weight_decay = a.real("weight-decay", c.adamw.weight_decay);
  c.clip = a.real("clip", c.clip);
  c.log_every = a.integer("log-every", c.log_every);
  c.eval_every = a.integer("eval-every", c.eval_every);
  c.eval_batches = a.integer("eval-batches", c.eval_batches);
  c.save_every = a.integer("save-every", c.save_every);
  c.keep_checkpoints = a.integer("keep", c.keep_checkpoints);
  c.seed = (uint64_t)a.integer("seed", (int64_t)c.seed);
  c.recompute = c.recompute || a.flag("recompute");
  c.init_from = a.str("init-from", c.init_from);
  c.device = a.str("device", "cpu");
  return c;
}

}  // namespace

int train_cmd(int argc, char** argv) {
  const std::vector<std::string> words = with_config_file(argc, argv);
  std::vector<char*> ptrs;
  for (const std::string& w : words) ptrs.push_back(const_cast<char*>(w.c_str()));
  const Args a((int)ptrs.size(), ptrs.data(), kFlags, kBoolFlags);
  const std::string device = a.str("device", "cpu");
  require_argument(device == "cpu" || device == "cuda",
                   "--device: expected cpu or cuda, got '" + device + "'");
  if (a.has("threads")) omp_set_num_threads((int)a.integer("threads", 0));

  const bool resume = a.flag("resume");
  const std::string out_dir = a.str("out", "");
  require_argument(!out_dir.empty(), "--out: expected an output directory");
  train::TrainConfig base;  // a new run's defaults (those not set in TrainConfig itself)
  if (resume) {
    base = train::saved_train_config(out_dir);
  } else {
    base.out_dir = out_dir;
    base.schedule.lr_max = 1e-3;
    base.schedule.warmup_steps = 100;
  }
  train::TrainConfig cfg = config_from_args(a, base, resume);
  if (!a.flag("no-floor")) {
    const Floor f = device == "cuda" ? measure_cuda_floor() : measure_cpu_floor(omp_get_max_threads());
    cfg.peak_gflops = f.gemm_gflops;
  }
  std::unique_ptr<train::Trainer> trainer;
  if (resume) {
    trainer = train::Trainer::resume(cfg.out_dir, &cfg);
    std::printf("resuming %s at step %lld\n", cfg.out_dir.c_str(), (long long)trainer->step());
  } else {
    trainer = std::make_unique<train::Trainer>(cfg);
  }
  const train::TrainConfig& tc = trainer->config();
  const model::Config& m = tc.model;
  const int64_t tokens_per_step = tc.seq_len * tc.batch * tc.accum;
  std::printf("model: %lld layers, d %lld, %lld heads, glu %lld, vocab %lld: %.2fM parameters\n",
              (long long)m.num_layers, (long long)m.d_model, (long long)m.num_heads,
              (long long)m.glu_dim, (long long)m.vocab_size, trainer->params().size() / 1e6);
  std::string mfu_note;
  if (cfg.peak_gflops > 0)
    mfu_note = ", MFU against " + std::to_string((int)cfg.peak_gflops) +
               (device == "cuda" ? " GFLOP/s (measured bf16 GEMM), cuda" : " GFLOP/s (measured SGEMM)");
  std::printf("training: %lld tokens per step (%lld × %lld × accum %lld), %s steps, lr %.3g (%s), "
              "%d threads%s\n",
              (long long)tokens_per_step, (long long)tc.batch, (long long)tc.seq_len, (long long)tc.accum,
              tc.steps > 0 ? std::to_string(tc.steps).c_str() : "time-fitted", tc.schedule.lr_max,
              train::schedule_kind_name(tc.schedule.kind), omp_get_max_threads(),
              mfu_note.c_str());
  std::fflush(stdout);

  std::signal(SIGINT, on_sigint);
  const double flops_per_token = trainer->flops_per_token();
  const train::TrainResult r = trainer->run(
      &g_stop,
      [&](const train::LossPoint& p) {
        const int64_t total = trainer->config().steps;
        const double step_s = (double)tokens_per_step / std::max(p.tokens_per_s, 1e-9);
        const double eta = (double)(total - p.step) * step_s;
        std::printf("step %6lld/%lld  loss %.4f  lr %.2e  gnorm %.3f  %s tok/s", (long long)p.step,
                    (long long)total, p.train_loss, p.lr, p.grad_norm, human_rate(p.tokens_per_s).c_str());
        if (cfg.peak_gflops > 0)
          std::printf("  MFU %.1f%%", 100.0 * flops_per_token * p.tokens_per_s / (cfg.peak_gflops * 1e9));
        std::printf("  ETA %s", human_duration(eta).c_str());
        if (!std::isnan(p.val_loss))
          std::printf("  | val loss %.4f  ppl %.2f", p.val_loss, std::exp(p.val_loss));
        std::printf("\n");
        std::fflush(stdout);
      },
      [](const std::string& msg) {
        std::printf("%s\n", msg.c_str());
        std::fflush(stdout);
      });
  std::signal(SIGINT, SIG_DFL);
  if (r.interrupted) std::printf("interrupted: ");
  std::printf("%lld steps; last train loss %.4f", (long long)r.step, r.train_loss);
  if (!std::isnan(r.val_loss))
    std::printf("; val loss %.4f, perplexity %.2f", r.val_loss, std::exp(r.val_loss));
  std::printf("\ncheckpoint: %s\n", r.checkpoint_dir.c_str());
  std::printf("loss curve: %s/loss.csv, %s/loss.png\n", tc.out_dir.c_str(), tc.out_dir.c_str());
  if (r.interrupted) std::printf("resume with: tnl train --out %s --resume\n", tc.out_dir.c_str());
  std::printf("generate with: tnl generate --model %s%s --prompt \"...\"\n", r.checkpoint_dir.c_str(),
              device == "cuda" ? " --device cuda" : "");
  return 0;
}

}  // namespace tnl::cli
