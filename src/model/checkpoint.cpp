// checkpoint.cpp: see checkpoint.h.
#include "model/checkpoint.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "model/io/json.h"
#include "model/io/torch_checkpoint.h"
#include "tnl/dtype.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(detail::cat(path, ": cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Index of the first non-finite element, or -1.
int64_t first_non_finite(const io::TensorEntry& t) {
  const int64_t n = t.numel();
  int64_t found = -1;
#pragma omp parallel for schedule(static) reduction(max : found)
  for (int64_t i = 0; i < n; ++i) {
    float x;
    if (t.dtype == "F32") std::memcpy(&x, t.data + 4 * i, 4);
    else {
      uint16_t h;
      std::memcpy(&h, t.data + 2 * i, 2);
      x = t.dtype == "BF16" ? bf16_bits_to_f32(h) : f16_bits_to_f32(h);
    }
    if (!std::isfinite(x)) found = found < 0 ? i : found;
  }
  return found;
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const Config& c) {
  std::vector<ExpectedTensor> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, c.d_model}});
  out.push_back({"lm_head.weight", {c.vocab_size, c.d_model}, true});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    out.push_back({p + "token_mixer.qkvu_proj.weight", {4 * c.hidden_dim, c.d_model}});
    out.push_back({p + "token_mixer.out_proj.weight", {c.d_model, c.hidden_dim}});
    if (c.use_lrpe[l]) out.push_back({p + "token_mixer.lrpe.theta", {c.num_heads, 1, c.head_dim()}});
    out.push_back({p + "channel_mixer.l1.weight", {c.glu_dim, c.d_model}});
    out.push_back({p + "channel_mixer.l2.weight", {c.glu_dim, c.d_model}});
    out.push_back({p + "channel_mixer.l3.weight", {c.d_model, c.glu_dim}});
  }
  return out;
}

Checkpoint::Checkpoint(const std::string& dir, bool check_finite) {
  config_ = load_config(dir + "/config.json");
  // Which weight files, and which tensors each is said to hold (sharded: from the index).
  std::map<std::string, std::set<std::string>> shards;  // file -> names (empty: all)
  std::string index_path;
  for (const char* fmt : {"safetensors", "pytorch"}) {
    const std::string single = dir + (fmt[0] == 's' ? "/model.safetensors" : "/pytorch_model.bin");
    if (exists(single)) {
      shards[single] = {};
    } else if (exists(single + ".index.json")) {
      index_path = single + ".index.json";
      const json::Value idx = json::parse(read_text(index_path), index_path);
      const json::Value* map = idx.find("weight_map");
      if (!map) throw Error(index_path + ": expected a \"weight_map\" object");
      for (const auto& [name, file] : map->as_object(index_path + ": weight_map")) {
        const std::string& f = file.as_string(index_path + ": weight_map." + name);
        if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
          throw Error(detail::cat(index_path, ": shard name '", f, "' must be a file in the directory"));
        shards[dir + "/" + f].insert(name);
      }
    }
    if (!shards.empty()) {
      format_ = fmt;
      break;
    }
  }
  if (shards.empty())
    throw Error(detail::cat(dir, ": no weights found (expected model.safetensors, "
                                 "model.safetensors.index.json, pytorch_model.bin or "
                                 "pytorch_model.bin.index.json)"));
  for (const auto& [file, names] : shards) {
    const std::map<std::string, io::TensorEntry>* entries;
    if (format_ == "safetensors") {
      auto f = std::make_shared<io::SafetensorsFile>(file);
      entries = &f->tensors();
      files_.push_back(f);
    } else {
      auto f = std::make_shared<io::TorchCheckpoint>(file);
      entries = &f->tensors();
      files_.push_back(f);
    }
    for (const std::string& n : names)
      if (!entries->count(n))
        throw Error(detail::cat(index_path, ": tensor '", n, "' is mapped to ", file, ", which lacks it"));
    for (const auto& [name, t] : *entries) {
      if (!tensors_.emplace(name, t).second)
        throw Error(detail::cat(file, ": tensor '", name, "' also appears in ", file_of_[name]));
      file_of_[name] = file;
    }
  }
  // Every expected tensor present with its shape and a float dtype; nothing else.
  std::set<std::string> expected;
  for (const ExpectedTensor& e : expected_tensors(config_)) {
    expected.insert(e.name);
    auto it = tensors_.find(e.name);
    if (it == tensors_.end()) {
      if (e.optional) continue;
      throw Error(detail::cat(dir, ": tensor '", e.name, "' is missing (expected shape ", shape_str(e.shape), ")"));
    }
    const io::TensorEntry& t = it->second;
    if (t.shape != e.shape)
      throw Error(detail::cat(file_of_[e.name], ": tensor '", e.name, "' has shape ", shape_str(t.shape),
                              ", expected ", shape_str(e.shape), " from config.json"));
    if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
      throw Error(detail::cat(file_of_[e.name], ": tensor '", e.name, "' has dtype ", t.dtype,
                              ", expected F32, F16 or BF16"));
    if (check_finite) {
      const int64_t bad = first_non_finite(t);
      if (bad >= 0)
        throw Error(detail::cat(file_of_[e.name], ": tensor '", e.name, "' holds NaN or Inf (element ", bad, ")"));
    }
  }
  for (const auto& [name, t] : tensors_)
    if (!expected.count(name))
      throw Error(detail::cat(file_of_[name], ": unexpected tensor '", name, "' (shape ", shape_str(t.shape),
                              ") for a model of this config.json"));
}

const io::TensorEntry& Checkpoint::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(detail::cat("checkpoint: no tensor '", name, "'"));
  return it->second;
}

}  // namespace tnl::model
