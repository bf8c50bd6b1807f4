// checkpoint.h: a TransNormerLLM checkpoint directory in the Hugging Face layout: config.json,
// then model.safetensors, model.safetensors.index.json (sharded), pytorch_model.bin or
// pytorch_model.bin.index.json, tried in that order. Files are memory-mapped; every expected
// tensor is checked for presence, shape, dtype and finite values, and unexpected tensors are
// errors, each naming the file and the tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/io/safetensors.h"  // TensorEntry

namespace tnl::model {

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool optional = false;  // lm_head.weight: tied to the embedding, may be absent
};

// The tensors a checkpoint of this config holds (spec transnormerllm.md, "Names").
std::vector<ExpectedTensor> expected_tensors(const Config& c);

class Checkpoint {
 public:
  // Throws tnl::Error naming the file and tensor for anything missing, extra, mis-shaped,
  // of an unsupported dtype, or (when check_finite) holding NaN or Inf.
  explicit Checkpoint(const std::string& dir, bool check_finite = true);

  const Config& config() const { return config_; }
  const std::string& weights_format() const { return format_; }  // "safetensors" or "pytorch"
  const io::TensorEntry& tensor(const std::string& name) const;
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Where a tensor came from, for messages.
  const std::string& file_of(const std::string& name) const { return file_of_.at(name); }

 private:
  Config config_;
  std::string format_;
  std::vector<std::shared_ptr<void>> files_;  // keep the mappings alive
  std::map<std::string, io::TensorEntry> tensors_;
  std::map<std::string, std::string> file_of_;
};

}  // namespace tnl::model
