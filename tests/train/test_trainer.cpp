// test_trainer.cpp: the training loop end to end on a tiny model and synthetic token shards:
// the loss falls; a run stopped half-way and resumed reproduces the uninterrupted loss curve bit
// for bit; a checkpoint is a model directory the inference model loads with the trained weights;
// a crash mid-save (a leftover temporary directory) leaves `latest` on the last good checkpoint;
// bad settings are named.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/transnormer.h"
#include "tnl/error.h"
#include "train/trainer.h"

namespace tnl::train {
namespace {
namespace fs = std::filesystem;

constexpr int64_t kVocab = 61;

// A data directory with train and val shards of a learnable sequence: a noisy counter modulo
// the vocabulary (next token = previous + 1, except 10% random tokens).
std::string make_data(uint64_t seed) {
  const std::string dir = ::testing::TempDir() + "tnl_trainer_" + std::to_string(std::random_device{}());
  fs::create_directories(dir);
  std::mt19937_64 rng(seed);
  auto make = [&](int64_t n) {
    std::vector<int32_t> t(n);
    int32_t x = 3;
    for (int64_t i = 0; i < n; ++i) {
      x = (rng() % 10 == 0) ? (int32_t)(3 + rng() % (kVocab - 3)) : (int32_t)(3 + (x - 3 + 1) % (kVocab - 3));
      t[i] = x;
    }
    return t;
  };
  write_token_shard(dir + "/train-00000.tok", make(20000), kVocab);
  write_token_shard(dir + "/val-00000.tok", make(3000), kVocab);
  std::ofstream(dir + "/tokenizer.model") << "not parsed by the trainer; copied into checkpoints";
  return dir;
}

TrainConfig tiny_config(const std::string& data, const std::string& out) {
  TrainConfig c;
  c.model = model::config_preset("tiny", kVocab);
  c.model.num_layers = 2;
  c.model.d_model = c.model.hidden_dim = 32;
  c.model.num_heads = 2;
  c.model.glu_dim = 48;
  c.model.use_lrpe = {1, 0};
  c.data_dir = data;
  c.tokenizer_path = data + "/tokenizer.model";
  c.out_dir = out;
  c.seq_len = 32;
  c.batch = 4;
  c.accum = 2;
  c.steps = 24;
  c.schedule.lr_max = 1e-2;
  c.schedule.lr_min = 1e-3;
  c.schedule.warmup_steps = 4;
  c.log_every = 1;
  c.eval_every = 8;
  c.eval_batches = 4;
  c.save_every = 0;
  c.seed = 7;
  return c;
}

TEST(Trainer, LossFallsAndCheckpointIsAModelDirectory) {
  const std::string data = make_data(1);
  const TrainConfig cfg = tiny_config(data, data + "/run");
  Trainer t(cfg);
  std::vector<LossPoint> pts;
  const TrainResult r = t.run(nullptr, [&](const LossPoint& p) { pts.push_back(p); });
  ASSERT_EQ(r.step, cfg.steps);
  ASSERT_EQ((int64_t)pts.size(), cfg.steps);
  // ln(61) = 4.11 at the start; the counter pattern is learnable well below that.
  EXPECT_GT(pts.front().train_loss, 3.5);
  EXPECT_LT(pts.back().train_loss, pts.front().train_loss - 1.0);
  EXPECT_FALSE(std::isnan(r.val_loss));
  EXPECT_LT(r.val_loss, std::log((double)kVocab) - 1.0);
  // The checkpoint: `latest` names it, and the inference model built from it computes the same
  // validation loss as the trainer's weights.
  std::ifstream latest(cfg.out_dir + "/latest");
  std::string name;
  latest >> name;
  EXPECT_EQ(cfg.out_dir + "/" + name, r.checkpoint_dir);
  const model::Checkpoint ck(r.checkpoint_dir);
  const ParamSet loaded = ParamSet::from_checkpoint(ck);
  ASSERT_EQ(loaded.size(), t.params().size());
  for (int64_t i = 0; i < loaded.size(); ++i) ASSERT_EQ(loaded.data()[i], t.params().data()[i]) << i;
  EXPECT_TRUE(fs::exists(r.checkpoint_dir + "/tokenizer.model"));
  EXPECT_TRUE(fs::exists(cfg.out_dir + "/loss.csv"));
  EXPECT_GT(fs::file_size(cfg.out_dir + "/loss.png"), 1000u);
  EXPECT_EQ(read_loss_csv(cfg.out_dir + "/loss.csv").size(), pts.size());
  // A second fresh run into the same directory is refused (it would mix two runs).
  EXPECT_THROW(Trainer{cfg}, ArgumentError);
}

TEST(Trainer, ResumeReproducesTheLossCurveBitForBit) {
  const std::string data = make_data(2);
  // The uninterrupted run.
  std::vector<LossPoint> full;
  {
    Trainer t(tiny_config(data, data + "/full"));
    t.run(nullptr, [&](const LossPoint& p) { full.push_back(p); });
  }
  // The same run stopped after step 11 (as Ctrl-C does: the stop flag, then a checkpoint) ...
  const TrainConfig cfg = tiny_config(data, data + "/cut");
  std::vector<LossPoint> cut;
  {
    Trainer t(cfg);
    std::atomic<bool> stop{false};
    const TrainResult r = t.run(&stop, [&](const LossPoint& p) {
      cut.push_back(p);
      if (p.step == 11) stop = true;
    });
    EXPECT_TRUE(r.interrupted);
    EXPECT_EQ(r.step, 11);
  }
  // ... and a crash during a later save: a half-written temporary checkpoint directory, which
  // must not be taken for a checkpoint.
  fs::create_directories(cfg.out_dir + "/checkpoints/step-000012.tmp-999");
  std::ofstream(cfg.out_dir + "/checkpoints/step-000012.tmp-999/model.safetensors") << "half";
  // ... then resumed to the end.
  std::unique_ptr<Trainer> t = Trainer::resume(cfg.out_dir, nullptr);
  EXPECT_EQ(t->step(), 11);
  t->run(nullptr, [&](const LossPoint& p) { cut.push_back(p); });
  ASSERT_EQ(cut.size(), full.size());
  for (size_t i = 0; i < full.size(); ++i) {
    EXPECT_EQ(cut[i].step, full[i].step);
    EXPECT_EQ(cut[i].train_loss, full[i].train_loss) << "step " << full[i].step;  // bitwise
    EXPECT_EQ(cut[i].grad_norm, full[i].grad_norm) << "step " << full[i].step;
    if (!std::isnan(full[i].val_loss)) {
      EXPECT_EQ(cut[i].val_loss, full[i].val_loss) << "step " << full[i].step;
    }
  }
  // The resumed run's CSV holds the whole curve, the part before the stop included.
  EXPECT_EQ(read_loss_csv(cfg.out_dir + "/loss.csv").size(), full.size());
}

TEST(Trainer, ResumeRefusesChangedSettingsAndMissingRuns) {
  const std::string data = make_data(3);
  TrainConfig cfg = tiny_config(data, data + "/run");
  cfg.steps = 2;
  cfg.schedule.warmup_steps = 1;
  Trainer(cfg).run(nullptr, [](const LossPoint&) {});
  TrainConfig changed = cfg;
  changed.seq_len = 16;
  try {
    Trainer::resume(cfg.out_dir, &changed);
    FAIL() << "a changed seq_len was accepted";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("seq_len"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Trainer::resume(data + "/nothing-here", nullptr), ArgumentError);
}

TEST(Trainer, BadSettingsAreNamed) {
  const std::string data = make_data(4);
  auto expect_named = [&](const std::function<void(TrainConfig&)>& edit, const std::string& name) {
    TrainConfig c = tiny_config(data, data + "/bad");
    edit(c);
    try {
      Trainer t(c);
      FAIL() << name << ": accepted";
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  };
  expect_named([](TrainConfig& c) { c.seq_len = 0; }, "seq_len");
  expect_named([](TrainConfig& c) { c.batch = -1; }, "batch");
  expect_named([](TrainConfig& c) { c.schedule.lr_max = -1; }, "lr");
  expect_named([](TrainConfig& c) { c.adamw.beta2 = 1.0; }, "beta2");
  expect_named([](TrainConfig& c) { c.steps = 3; }, "total_steps");  // shorter than the warmup
  expect_named([](TrainConfig& c) { c.model.vocab_size = 10; }, "vocabulary");
  expect_named([](TrainConfig& c) { c.seq_len = 100000; }, "seq_len + 1");
}

}  // namespace
}  // namespace tnl::train
