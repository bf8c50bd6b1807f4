// safetensors.h: reads .safetensors files (a little-endian u64 header length, a JSON header of
// {name: {dtype, shape, data_offsets}}, then the raw bytes), memory-mapped, every entry checked:
// known dtype, shape, offsets inside the file, size = elements × element size, no overlap.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/io/mapped_file.h"

namespace tnl::io {

struct TensorEntry {
  std::string name;
  std::string dtype;            // as stored: "F32", "F16", "BF16", "F64", "I64", ...
  int64_t elem_size = 0;        // bytes per element
  std::vector<int64_t> shape;
  const unsigned char* data = nullptr;  // into the mapping; valid while the file lives
  int64_t bytes = 0;

  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws tnl::Error naming file and tensor

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Throws naming the file and the tensor when absent.
  const TensorEntry& at(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  std::map<std::string, TensorEntry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: dtype name as stored ("F32", "BF16", ...), shape, and its bytes.
struct TensorToWrite {
  std::string name, dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t bytes = 0;
};

// Writes a .safetensors file atomically (see atomic_file.h); checks each size against its shape.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Bytes per element of a safetensors dtype name; 0 when unknown.
int64_t safetensors_elem_size(const std::string& dtype);

}  // namespace tnl::io
