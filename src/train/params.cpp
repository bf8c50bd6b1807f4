// params.cpp: see params.h.
#include "train/params.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>

#include "model/init.h"
#include "model/io/atomic_file.h"
#include "model/io/safetensors.h"
#include "tnl/dtype.h"
#include "tnl/error.h"

namespace tnl::train {
namespace {

void make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos < dir.size() && dir[pos] != '/') continue;
    const std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error(detail::cat(dir, ": cannot create directory ", part, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Error(detail::cat(dir, ": not a directory"));
}

}  // namespace

std::vector<ParamInfo> param_layout(const model::Config& cfg) {
  TNL_ARG_CHECK((int64_t)cfg.use_lrpe.size() == cfg.num_layers, "tnl::train::ParamSet", "cfg",
                "use_lrpe has ", cfg.use_lrpe.size(), " entries for ", cfg.num_layers, " layers");
  TNL_ARG_CHECK(cfg.num_heads >= 1 && cfg.hidden_dim % cfg.num_heads == 0, "tnl::train::ParamSet", "cfg",
                "hidden_dim ", cfg.hidden_dim, " is not a multiple of num_heads ", cfg.num_heads);
  std::vector<ParamInfo> out;
  int64_t offset = 0;
  for (const model::ExpectedTensor& e : model::expected_tensors(cfg)) {
    if (e.optional) continue;  // lm_head: tied to the embedding
    ParamInfo p;
    p.name = e.name;
    p.shape = e.shape;
    p.numel = 1;
    for (int64_t s : e.shape) p.numel *= s;
    p.offset = offset;
    p.weight_decay = e.name.find("lrpe.theta") == std::string::npos;
    offset += p.numel;
    out.push_back(std::move(p));
  }
  return out;
}

ParamSet::ParamSet(const model::Config& cfg) : cfg_(cfg), infos_(param_layout(cfg)) {
  const ParamInfo& last = infos_.back();
  data_.assign(last.offset + last.numel, 0.0f);
}

const ParamInfo& ParamSet::info(const std::string& name) const {
  for (const ParamInfo& p : infos_)
    if (p.name == name) return p;
  throw ArgumentError(detail::cat("tnl::train::ParamSet: argument 'name': no parameter named '", name,
                                  "' in this model (", infos_.size(), " tensors)"));
}

float* ParamSet::get(const std::string& name) { return data_.data() + info(name).offset; }
const float* ParamSet::get(const std::string& name) const { return data_.data() + info(name).offset; }

void ParamSet::init_random(uint64_t seed) {
  const int64_t d = cfg_.d_model, H = cfg_.num_heads, dh = cfg_.head_dim();
  uint64_t stream = 0;
  auto normal = [&](const std::string& name) {
    const ParamInfo& p = info(name);
    model::fill_normal(data_.data() + p.offset, p.numel, seed, ++stream, cfg_.init_std);
  };
  normal("model.embed_tokens.weight");
  if (cfg_.pad_id >= 0 && cfg_.pad_id < cfg_.vocab_size)
    std::fill_n(get("model.embed_tokens.weight") + cfg_.pad_id * d, d, 0.0f);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {  // the model's order: qkvu, out, l1, l2, l3
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* t : {"token_mixer.qkvu_proj.weight", "token_mixer.out_proj.weight",
                          "channel_mixer.l1.weight", "channel_mixer.l2.weight", "channel_mixer.l3.weight"})
      normal(p + t);
    if (cfg_.use_lrpe[l]) {
      float* theta = get(p + "token_mixer.lrpe.theta");  // (H, 1, dh)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < dh; ++c)
          theta[h * dh + c] = (float)std::pow(10000.0, -2.0 * (double)(h * dh + c) / (double)d);
    }
  }
}

ParamSet ParamSet::from_checkpoint(const model::Checkpoint& ck) {
  ParamSet ps(ck.config());
  for (const ParamInfo& p : ps.infos_) {
    const io::TensorEntry& t = ck.tensor(p.name);
    TNL_CHECK(t.numel() == p.numel, "tensor ", p.name, " has ", t.numel(), " elements, expected ", p.numel);
    float* out = ps.data_.data() + p.offset;
    if (t.dtype == "F32") {
      std::memcpy(out, t.data, p.numel * sizeof(float));
    } else if (t.dtype == "BF16" || t.dtype == "F16") {
      const bool bf16 = t.dtype == "BF16";
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < p.numel; ++i) {
        uint16_t b;
        std::memcpy(&b, t.data + 2 * i, 2);
        out[i] = bf16 ? bf16_bits_to_f32(b) : f16_bits_to_f32(b);
      }
    } else {
      throw Error(detail::cat(ck.file_of(p.name), ": tensor '", p.name, "' has dtype ", t.dtype,
                              ", expected F32, BF16 or F16"));
    }
  }
  return ps;
}

void ParamSet::save_hf(const std::string& dir) const {
  make_dirs(dir);
  std::vector<io::TensorToWrite> tensors;
  for (const ParamInfo& p : infos_)
    tensors.push_back({p.name, "F32", p.shape, data_.data() + p.offset, p.numel * (int64_t)sizeof(float)});
  io::write_safetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  io::write_text_atomically(dir + "/config.json", model::config_to_json(cfg_));
}

model::TransNormer make_inference_model(const ParamSet& p) {
  return model::TransNormer(p.config(), [&](const std::string& name) { return p.get(name); });
}

}  // namespace tnl::train
