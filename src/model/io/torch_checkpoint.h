// torch_checkpoint.h: a PyTorch .bin checkpoint (torch.save's ZIP format), memory-mapped: the
// ZIP's data.pkl parsed by the restricted unpickler, each tensor resolved to its bytes in
// data/<key> and checked against them (dtype, bounds, row-major contiguity).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "model/io/mapped_file.h"
#include "model/io/safetensors.h"  // TensorEntry

namespace tnl::io {

class TorchCheckpoint {
 public:
  explicit TorchCheckpoint(const std::string& path);  // throws tnl::Error naming file and tensor

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorEntry> tensors_;
};

}  // namespace tnl::io
