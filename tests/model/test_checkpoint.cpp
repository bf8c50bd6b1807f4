// test_checkpoint.cpp: checkpoint directories written here (config.json + safetensors, single
// and sharded): a good one loads with its bytes intact; missing, extra, mis-shaped, NaN and
// mis-indexed tensors are errors naming the file and the tensor.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <unistd.h>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/io/atomic_file.h"
#include "tnl/dtype.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {

Config tiny_config() {
  Config c;
  c.vocab_size = 50;
  c.d_model = 16;
  c.hidden_dim = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.glu_dim = 24;
  c.use_lrpe = {1, 0};
  return c;
}

struct Dir {
  std::string path;
  Dir() {
    path = ::testing::TempDir() + "tnl_ckpt_dir_" + std::to_string(std::random_device{}());
    ::mkdir(path.c_str(), 0755);
  }
};

// Random bf16 weights for every expected tensor (optionally dropping / adding / reshaping one).
struct Weights {
  std::vector<std::vector<uint16_t>> storage;
  std::vector<io::TensorToWrite> list;
  explicit Weights(const Config& c) {
    std::mt19937 rng(std::random_device{}());
    std::normal_distribution<float> dist(0.f, 0.02f);
    for (const ExpectedTensor& e : expected_tensors(c)) {
      int64_t n = 1;
      for (int64_t d : e.shape) n *= d;
      storage.emplace_back(n);
      for (uint16_t& x : storage.back()) x = f32_to_bf16_bits(dist(rng));
      list.push_back({e.name, "BF16", e.shape, storage.back().data(), 2 * n});
    }
  }
};

std::string load_error(const std::string& dir) {
  try {
    Checkpoint c(dir);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error loading " << dir;
  return "";
}

TEST(Checkpoint, LoadsSafetensorsDirectory) {
  const Config c = tiny_config();
  Dir d;
  io::write_text_atomically(d.path + "/config.json", config_to_json(c));
  Weights w(c);
  io::write_safetensors(d.path + "/model.safetensors", w.list, {{"format", "pt"}});
  const Checkpoint ck(d.path);
  EXPECT_EQ(ck.weights_format(), "safetensors");
  EXPECT_EQ(ck.config().num_layers, 2);
  for (const io::TensorToWrite& t : w.list) {
    const io::TensorEntry& e = ck.tensor(t.name);
    EXPECT_EQ(e.shape, t.shape) << t.name;
    EXPECT_EQ(std::memcmp(e.data, t.data, t.bytes), 0) << t.name;
  }
}

TEST(Checkpoint, LoadsShardedSafetensors) {
  const Config c = tiny_config();
  Dir d;
  io::write_text_atomically(d.path + "/config.json", config_to_json(c));
  Weights w(c);
  const size_t half = w.list.size() / 2;
  std::vector<io::TensorToWrite> a(w.list.begin(), w.list.begin() + half), b(w.list.begin() + half, w.list.end());
  io::write_safetensors(d.path + "/model-00001-of-00002.safetensors", a);
  io::write_safetensors(d.path + "/model-00002-of-00002.safetensors", b);
  std::string index = "{\"metadata\": {}, \"weight_map\": {";
  for (size_t i = 0; i < w.list.size(); ++i)
    index += (i ? ", \"" : "\"") + w.list[i].name + "\": \"model-0000" + (i < half ? "1" : "2") +
             "-of-00002.safetensors\"";
  io::write_text_atomically(d.path + "/model.safetensors.index.json", index + "}}");
  const Checkpoint ck(d.path);
  EXPECT_EQ(std::memcmp(ck.tensor(w.list.back().name).data, w.list.back().data, w.list.back().bytes), 0);
  // An index that maps a tensor to the wrong shard is an error naming the tensor.
  std::string wrong = index;
  const std::string first = "\"" + w.list[0].name + "\": \"model-00001";
  wrong.replace(wrong.find(first), first.size(), "\"" + w.list[0].name + "\": \"model-00002");
  io::write_text_atomically(d.path + "/model.safetensors.index.json", wrong + "}}");
  EXPECT_NE(load_error(d.path).find(w.list[0].name), std::string::npos);
}

TEST(Checkpoint, ReportsBadTensors) {
  const Config c = tiny_config();
  const std::string victim = "model.layers.1.channel_mixer.l2.weight";
  struct Case {
    const char* what;
    std::function<void(Weights&)> mutate;
    std::string expect;
  };
  std::vector<float> nan_storage;
  const std::vector<Case> cases = {
      {"missing", [&](Weights& w) {
         for (size_t i = 0; i < w.list.size(); ++i)
           if (w.list[i].name == victim) w.list.erase(w.list.begin() + i);
       }, "is missing"},
      {"wrong shape", [&](Weights& w) {
         for (auto& t : w.list)
           if (t.name == victim) { t.shape = {t.shape[1], t.shape[0]}; }
       }, "has shape"},
      {"extra", [&](Weights& w) { w.list.push_back({"model.layers.1.token_mixer.bias", "BF16", {1}, w.storage[0].data(), 2}); },
       "unexpected tensor"},
      {"nan", [&](Weights& w) {
         for (size_t i = 0; i < w.list.size(); ++i)
           if (w.list[i].name == victim) w.storage[i][5] = 0x7fc0;
       }, "NaN"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    Dir d;
    io::write_text_atomically(d.path + "/config.json", config_to_json(c));
    Weights w(c);
    k.mutate(w);
    io::write_safetensors(d.path + "/model.safetensors", w.list);
    const std::string msg = load_error(d.path);
    EXPECT_NE(msg.find(k.expect), std::string::npos) << msg;
    const std::string named = std::string(k.what) == "extra" ? "token_mixer.bias" : victim;
    EXPECT_NE(msg.find(named), std::string::npos) << msg;
  }
  Dir empty;
  io::write_text_atomically(empty.path + "/config.json", config_to_json(c));
  EXPECT_NE(load_error(empty.path).find("no weights found"), std::string::npos);
}

TEST(AtomicFile, ReplacesWholeFileAndLeavesNoTemporary) {
  Dir d;
  const std::string path = d.path + "/x.txt";
  io::write_text_atomically(path, "old");
  EXPECT_THROW(io::write_file_atomically(path, [](const auto& sink) {
                 sink("partial", 7);
                 throw Error("crash in the middle of a save");
               }),
               Error);
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(s, "old");  // the failed save left the last good file
  struct stat st {};
  EXPECT_NE(::stat((path + ".tmp." + std::to_string(::getpid())).c_str(), &st), 0);
}

}  // namespace
}  // namespace tnl::model
