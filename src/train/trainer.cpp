// trainer.cpp: see trainer.h.
#include "train/trainer.h"

#include "train/cuda/cuda_trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/io/atomic_file.h"
#include "model/io/json.h"
#include "tnl/error.h"
#include "train/transnormer_grad.h"

namespace tnl::train {
namespace fs = std::filesystem;
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  require(f.good(), "cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string num(double v) {
  char s[40];
  std::snprintf(s, sizeof s, "%.17g", v);
  return s;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

void copy_file_atomically(const std::string& from, const std::string& to) {
  const std::string bytes = read_text(from);
  io::write_file_atomically(to, [&](const std::function<void(const void*, size_t)>& put) {
    put(bytes.data(), bytes.size());
  });
}

// "step-000200" for 200.
std::string checkpoint_name(int64_t step) {
  char s[32];
  std::snprintf(s, sizeof s, "step-%06lld", (long long)step);
  return s;
}

}  // namespace

void validate(const TrainConfig& c) {
  require_argument(!c.data_dir.empty(), "data_dir (--data): expected the directory of `tnl data prepare`");
  require_argument(!c.out_dir.empty(), "out_dir (--out): expected an output directory");
  require_argument(!c.tokenizer_path.empty(), "tokenizer_path (--tokenizer): expected a tokenizer.model");
  require_argument(c.seq_len >= 1, "seq_len (--seq-len): expected >= 1, got " + std::to_string(c.seq_len));
  require_argument(c.batch >= 1, "batch (--batch): expected >= 1, got " + std::to_string(c.batch));
  require_argument(c.accum >= 1, "accum (--accum): expected >= 1, got " + std::to_string(c.accum));
  require_argument(c.steps >= 1 || (c.steps == 0 && c.time_budget_s > 0),
                   "steps (--steps): expected >= 1, or 0 with a time budget (fit to it), got " +
                       std::to_string(c.steps));
  require_argument(c.log_every >= 1, "log_every (--log-every): expected >= 1");
  require_argument(c.eval_every >= 0, "eval_every (--eval-every): expected >= 0 (0 = never)");
  require_argument(c.save_every >= 0, "save_every (--save-every): expected >= 0 (0 = only at the end)");
  require_argument(c.eval_batches >= 1, "eval_batches (--eval-batches): expected >= 1");
  require_argument(c.keep_checkpoints >= 1, "keep_checkpoints (--keep): expected >= 1");
  require_argument(c.device == "cpu" || c.device == "cuda",
                   "device (--device): expected cpu or cuda, got '" + c.device + "'");
  require_argument(c.schedule.lr_max > 0 && std::isfinite(c.schedule.lr_max),
                   "lr (--lr): expected a positive learning rate, got " + num(c.schedule.lr_max));
  require_argument(c.schedule.lr_min >= 0 && c.schedule.lr_min <= c.schedule.lr_max,
                   "min_lr (--min-lr): expected 0 <= min_lr <= lr");
  require_argument(c.schedule.warmup_steps >= 0, "warmup (--warmup): expected >= 0 steps");
  require_argument(c.adamw.beta1 >= 0 && c.adamw.beta1 < 1, "beta1 (--beta1): expected in [0, 1)");
  require_argument(c.adamw.beta2 >= 0 && c.adamw.beta2 < 1, "beta2 (--beta2): expected in [0, 1)");
  require_argument(c.adamw.eps > 0, "eps (--eps): expected > 0");
  require_argument(c.adamw.weight_decay >= 0, "weight_decay (--weight-decay): expected >= 0");
  if (c.steps > 0) {
    LrSchedule sched = c.schedule;
    sched.total_steps = c.steps;
    sched.validate();
  }
  require_argument(c.model.num_layers >= 1 && c.model.d_model >= 1 && c.model.num_heads >= 1,
                   "model: expected at least one layer, head and feature");
}

std::string train_config_to_json(const TrainConfig& c) {
  std::string s = "{\n";
  auto field = [&](const std::string& k, const std::string& v, bool last = false) {
    s += "  " + quote(k) + ": " + v + (last ? "\n" : ",\n");
  };
  field("data_dir", quote(c.data_dir));
  field("tokenizer_path", quote(c.tokenizer_path));
  field("seq_len", num(c.seq_len));
  field("batch", num(c.batch));
  field("accum", num(c.accum));
  field("steps", num(c.steps));
  field("time_budget_s", num(c.time_budget_s));
  field("schedule", quote(schedule_kind_name(c.schedule.kind)));
  field("lr", num(c.schedule.lr_max));
  field("min_lr", num(c.schedule.lr_min));
  field("warmup", num(c.schedule.warmup_steps));
  field("beta1", num(c.adamw.beta1));
  field("beta2", num(c.adamw.beta2));
  field("eps", num(c.adamw.eps));
  field("weight_decay", num(c.adamw.weight_decay));
  field("clip", num(c.clip));
  field("log_every", num(c.log_every));
  field("eval_every", num(c.eval_every));
  field("eval_batches", num(c.eval_batches));
  field("save_every", num(c.save_every));
  field("keep_checkpoints", num(c.keep_checkpoints));
  field("seed", num((double)c.seed));
  field("recompute", c.recompute ? "true" : "false");
  field("init_from", quote(c.init_from), true);
  return s + "}\n";
}

TrainConfig train_config_from_json(const std::string& text, const std::string& source) {
  const json::Value v = json::parse(text, source);
  auto get = [&](const char* k) -> const json::Value& {
    const json::Value* f = v.find(k);
    require(f != nullptr, source + ": missing field \"" + k + "\"");
    return *f;
  };
  TrainConfig c;
  c.data_dir = get("data_dir").as_string("data_dir");
  c.tokenizer_path = get("tokenizer_path").as_string("tokenizer_path");
  c.seq_len = get("seq_len").as_int("seq_len");
  c.batch = get("batch").as_int("batch");
  c.accum = get("accum").as_int("accum");
  c.steps = get("steps").as_int("steps");
  c.time_budget_s = get("time_budget_s").as_number("time_budget_s");
  c.schedule.kind = parse_schedule_kind(get("schedule").as_string("schedule"), "schedule");
  c.schedule.lr_max = get("lr").as_number("lr");
  c.schedule.lr_min = get("min_lr").as_number("min_lr");
  c.schedule.warmup_steps = get("warmup").as_int("warmup");
  c.adamw.beta1 = get("beta1").as_number("beta1");
  c.adamw.beta2 = get("beta2").as_number("beta2");
  c.adamw.eps = get("eps").as_number("eps");
  c.adamw.weight_decay = get("weight_decay").as_number("weight_decay");
  c.clip = get("clip").as_number("clip");
  c.log_every = get("log_every").as_int("log_every");
  c.eval_every = get("eval_every").as_int("eval_every");
  c.eval_batches = get("eval_batches").as_int("eval_batches");
  c.save_every = get("save_every").as_int("save_every");
  c.keep_checkpoints = get("keep_checkpoints").as_int("keep_checkpoints");
  c.seed = (uint64_t)get("seed").as_int("seed");
  c.recompute = get("recompute").as_bool("recompute");
  c.init_from = get("init_from").as_string("init_from");
  return c;
}

namespace {
const TrainConfig& validated(const TrainConfig& c) {
  validate(c);
  return c;
}
}  // namespace

Trainer::Trainer(const TrainConfig& cfg, ResumeTag)
    : cfg_(validated(cfg)),
      params_(cfg.model),
      grads_(params_.size()),
      opt_(params_.size(), cfg.adamw),
      train_data_(cfg.data_dir, "train", cfg.seq_len, cfg.seed, /*shuffle=*/true) {
  cfg_.schedule.total_steps = cfg_.steps;
  require_argument(train_data_.vocab_size() <= cfg_.model.vocab_size,
                   "data_dir: " + cfg_.data_dir + " holds tokens of a vocabulary of " +
                       std::to_string(train_data_.vocab_size()) + ", larger than the model's " +
                       std::to_string(cfg_.model.vocab_size));
  require_argument(train_data_.num_windows() >= 1,
                   "data_dir: " + cfg_.data_dir + " holds fewer than seq_len + 1 = " +
                       std::to_string(cfg_.seq_len + 1) + " training tokens");
}

Trainer::Trainer(const TrainConfig& cfg) : Trainer(cfg, ResumeTag{}) {
  require_argument(!fs::exists(fs::path(cfg_.out_dir) / "latest"),
                   "out_dir: " + cfg_.out_dir + " already holds a training run (resume it, or choose "
                   "another directory)");
  if (!cfg_.init_from.empty()) {
    const model::Checkpoint ck(cfg_.init_from);
    require_argument(ck.config().vocab_size == cfg_.model.vocab_size &&
                         ck.config().d_model == cfg_.model.d_model &&
                         ck.config().num_layers == cfg_.model.num_layers,
                     "init_from: " + cfg_.init_from + " has another shape than the model asked for");
    params_ = ParamSet::from_checkpoint(ck);
  } else {
    params_.init_random(cfg_.seed);
  }
  fs::create_directories(cfg_.out_dir);
}

Trainer::~Trainer() = default;

std::string latest_checkpoint(const std::string& out_dir) {
  const fs::path latest = fs::path(out_dir) / "latest";
  require_argument(fs::exists(latest), "resume: " + out_dir + " holds no checkpoint (no `latest` file)");
  std::string name = read_text(latest.string());
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  return (fs::path(out_dir) / name).string();
}

TrainConfig saved_train_config(const std::string& out_dir) {
  const std::string dir = latest_checkpoint(out_dir);
  TrainConfig cfg = train_config_from_json(read_text(dir + "/train_settings.json"),
                                           dir + "/train_settings.json");
  cfg.model = model::load_config(dir + "/config.json");
  cfg.out_dir = out_dir;
  return cfg;
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& out_dir, const TrainConfig* override_cfg) {
  const std::string dir = latest_checkpoint(out_dir);
  TrainConfig cfg = saved_train_config(out_dir);
  if (override_cfg != nullptr) {
    const TrainConfig& o = *override_cfg;
    auto same = [&](bool eq, const char* what) {
      require_argument(eq, std::string(what) + ": differs from the run being resumed (" + dir +
                            "); only steps, time budget and the log/eval/save intervals may change");
    };
    same(o.seq_len == cfg.seq_len, "seq_len");
    same(o.batch == cfg.batch, "batch");
    same(o.accum == cfg.accum, "accum");
    same(o.seed == cfg.seed, "seed");
    same(o.schedule.lr_max == cfg.schedule.lr_max, "lr");
    if (o.steps > 0) cfg.steps = o.steps;
    cfg.time_budget_s = o.time_budget_s;
    cfg.log_every = o.log_every;
    cfg.eval_every = o.eval_every;
    cfg.save_every = o.save_every;
    cfg.device = o.device;
  }
  std::unique_ptr<Trainer> t(new Trainer(cfg, ResumeTag{}));
  t->load_checkpoint(dir);
  return t;
}

std::vector<ParamRange> Trainer::ranges() const {
  std::vector<ParamRange> r;
  for (const ParamInfo& p : params_.infos()) r.push_back({p.offset, p.numel, p.weight_decay});
  std::sort(r.begin(), r.end(), [](const ParamRange& a, const ParamRange& b) { return a.offset < b.offset; });
  return r;
}

double Trainer::flops_per_token() const { return 6.0 * (double)params_.size(); }

double Trainer::evaluate() const {
  TokenLoader val(cfg_.data_dir, "val", cfg_.seq_len, cfg_.seed, /*shuffle=*/false);
  std::vector<int32_t> ids(cfg_.batch * cfg_.seq_len), targets(ids.size());
  double nats = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < cfg_.eval_batches; ++b) {
    const int64_t rows = val.next_rows(cfg_.batch, ids.data(), targets.data());
    if (rows == 0) break;
    const auto [s, n] = gpu_ ? gpu_->loss_sum(ids.data(), targets.data(), rows, cfg_.seq_len)
                             : loss_sum(params_, ids.data(), targets.data(), rows, cfg_.seq_len);
    nats += s;
    count += n;
  }
  return count > 0 ? nats / (double)count : NAN;
}

std::string Trainer::save_checkpoint() {
  const std::string name = checkpoint_name(step_);
  const fs::path root = fs::path(cfg_.out_dir) / "checkpoints";
  const fs::path final_dir = root / name;
  const fs::path tmp = root / (name + ".tmp-" + std::to_string(::getpid()));
  fs::create_directories(root);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  if (gpu_) {  // the device holds the current weights and optimizer state
    gpu_->download(params_);
    gpu_->get_optimizer(opt_);
  }
  params_.save_hf(tmp.string());
  copy_file_atomically(cfg_.tokenizer_path, (tmp / "tokenizer.model").string());
  opt_.save((tmp / "optimizer.safetensors").string());
  const LoaderState ls = train_data_.state();
  io::write_text_atomically((tmp / "train_settings.json").string(), train_config_to_json(cfg_));
  io::write_text_atomically((tmp / "trainer_state.json").string(),
                            "{\n  \"step\": " + num(step_) + ",\n  \"tokens\": " + num(tokens_) +
                                ",\n  \"loader_epoch\": " + num(ls.epoch) +
                                ",\n  \"loader_cursor\": " + num(ls.cursor) +
                                ",\n  \"settings\": \"train_settings.json\"\n}\n");
  write_loss_csv((tmp / "loss.csv").string(), curve_);
  // The whole directory appears at once; then `latest` moves to it.
  if (fs::exists(final_dir)) fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  io::write_text_atomically((fs::path(cfg_.out_dir) / "latest").string(),
                            "checkpoints/" + name + "\n");
  last_saved_step_ = step_;
  // Keep the newest keep_checkpoints complete checkpoints.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) == 0 && n.find(".tmp-") == std::string::npos) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i + (size_t)cfg_.keep_checkpoints < names.size(); ++i)
    fs::remove_all(root / names[i]);
  return final_dir.string();
}

void Trainer::load_checkpoint(const std::string& dir) {
  params_ = ParamSet::from_checkpoint(model::Checkpoint(dir));
  require(params_.size() == (int64_t)grads_.size(),
            dir + ": the checkpoint's parameters do not match its config.json");
  opt_.load(dir + "/optimizer.safetensors");
  const std::string state_path = dir + "/trainer_state.json";
  const json::Value st = json::parse(read_text(state_path), state_path);
  auto field = [&](const char* k) {
    const json::Value* f = st.find(k);
    require(f != nullptr, state_path + ": missing field \"" + k + "\"");
    return f->as_int(k);
  };
  step_ = field("step");
  tokens_ = field("tokens");
  train_data_.set_state({field("loader_epoch"), field("loader_cursor")});
  curve_ = read_loss_csv(dir + "/loss.csv");
  last_saved_step_ = step_;
}

TrainResult Trainer::run(const std::atomic<bool>* stop, const std::function<void(const LossPoint&)>& on_log,
                         const std::function<void(const std::string&)>& on_message) {
  auto message = [&](const std::string& m) {
    if (on_message) on_message(m);
  };
  const std::vector<ParamRange> param_ranges = ranges();
  const int64_t B = cfg_.batch, N = cfg_.seq_len;
  std::vector<int32_t> ids(B * N), targets(B * N);  // (B, N)
  GradOptions gopt;
  gopt.recompute = cfg_.recompute;
  gopt.loss_scale = 1.0 / (double)cfg_.accum;
  TrainResult res;
  res.val_loss = NAN;
  if (cfg_.device == "cuda" && !gpu_) {
    gpu_ = std::make_unique<CudaTrainer>(params_, cfg_.adamw);
    gpu_->set_optimizer(opt_);  // zero on a fresh run, the checkpoint's on a resumed one
  }
  const double t_start = now_s();
  double t_window = t_start, loss_window = 0;
  int64_t tokens_window = 0, steps_window = 0;
  const fs::path csv = fs::path(cfg_.out_dir) / "loss.csv", png = fs::path(cfg_.out_dir) / "loss.png";
  // steps = 0 with a time budget: time the first steps, then set the schedule's length.
  constexpr int64_t kTimingSteps = 4;
  const bool fit_steps = cfg_.steps == 0 && step_ == 0;
  if (fit_steps) {
    cfg_.steps = kTimingSteps;
    cfg_.schedule.total_steps = int64_t(1) << 40;  // warmup, else lr_max, while timing
  }
  while (step_ < cfg_.steps) {
    if (stop != nullptr && stop->load()) {
      res.interrupted = true;
      break;
    }
    // A fitted run ends with its schedule; the budget stays a hard stop, with room for the
    // evaluations and saves the timing did not see.
    const double budget = fit_steps ? 1.25 * cfg_.time_budget_s : cfg_.time_budget_s;
    if (budget > 0 && now_s() - t_start >= budget) {
      message("time budget of " + num(budget) + " s reached");
      break;
    }
    if (gpu_) gpu_->zero_grads();
    else std::fill(grads_.begin(), grads_.end(), 0.0f);
    double loss = 0;
    for (int64_t a = 0; a < cfg_.accum; ++a) {
      train_data_.next(B, ids.data(), targets.data());
      loss += (gpu_ ? gpu_->loss_and_grad(ids.data(), targets.data(), B, N, gopt)
                    : loss_and_grad(params_, ids.data(), targets.data(), B, N, grads_.data(), gopt)) /
              (double)cfg_.accum;
    }
    require(std::isfinite(loss), "training diverged: the loss at step " + std::to_string(step_ + 1) +
                                       " is " + num(loss) + " (lower the learning rate?)");
    double norm;
    const double lr = cfg_.schedule.at(step_);
    if (gpu_) {
      norm = cfg_.clip > 0 ? gpu_->clip_grad_norm(cfg_.clip) : gpu_->grad_norm();
      gpu_->adamw_step(lr);
    } else {
      norm = cfg_.clip > 0 ? clip_grad_norm(grads_.data(), (int64_t)grads_.size(), cfg_.clip)
                           : global_grad_norm(grads_.data(), (int64_t)grads_.size());
      opt_.step(params_.data(), grads_.data(), lr, param_ranges);
    }
    ++step_;
    tokens_ += B * N * cfg_.accum;
    if (fit_steps && step_ == kTimingSteps) {  // steps = 0 with a time budget: fit the schedule to it
      const double per_step = (now_s() - t_start) / (double)kTimingSteps;
      cfg_.steps = std::max<int64_t>(kTimingSteps + 1, (int64_t)(cfg_.time_budget_s / per_step));
      std::string note;
      if (cfg_.schedule.warmup_steps >= cfg_.steps / 2) {  // keep warmup a small part of the run
        cfg_.schedule.warmup_steps = std::max<int64_t>(1, cfg_.steps / 10);
        note = ", warmup shortened to " + std::to_string(cfg_.schedule.warmup_steps);
      }
      cfg_.schedule.total_steps = cfg_.steps;
      char s[128];
      std::snprintf(s, sizeof s, "fitting the run to the time budget: %lld steps of %.3f s%s",
                    (long long)cfg_.steps, per_step, note.c_str());
      message(s);
    }
    tokens_window += B * N * cfg_.accum;
    loss_window += loss;
    ++steps_window;

    const bool eval_now = cfg_.eval_every > 0 && (step_ % cfg_.eval_every == 0 || step_ == cfg_.steps);
    if (step_ % cfg_.log_every == 0 || eval_now || step_ == cfg_.steps) {
      const double t = now_s();
      LossPoint pt;
      pt.step = step_;
      pt.tokens = tokens_;
      pt.train_loss = loss;  // this step's loss: what a resumed run must reproduce exactly
      pt.lr = lr;
      pt.grad_norm = norm;
      pt.tokens_per_s = (double)tokens_window / std::max(t - t_window, 1e-9);
      if (eval_now) {
        pt.val_loss = evaluate();
        res.val_loss = pt.val_loss;
      }
      curve_.push_back(pt);
      res.train_loss = loss_window / (double)steps_window;
      on_log(pt);
      write_loss_csv(csv.string(), curve_);
      if (eval_now || step_ == cfg_.steps || step_ % (cfg_.log_every * 10) == 0)
        write_loss_png(png.string(), curve_, "TransNormerLLM training loss");
      t_window = now_s();  // evaluation and plotting are not training time
      tokens_window = 0;
      loss_window = 0;
      steps_window = 0;
    }
    if (cfg_.save_every > 0 && step_ % cfg_.save_every == 0) {
      res.checkpoint_dir = save_checkpoint();
      message("saved " + res.checkpoint_dir);
    }
  }
  if (last_saved_step_ != step_) res.checkpoint_dir = save_checkpoint();
  else res.checkpoint_dir = (fs::path(cfg_.out_dir) / "checkpoints" / checkpoint_name(step_)).string();
  res.step = step_;
  return res;
}

}  // namespace tnl::train
