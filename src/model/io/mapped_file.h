// mapped_file.h: a read-only memory map of a whole file (checkpoints are mapped, not copied).
#pragma once

#include <cstddef>
#include <string>

namespace tnl::io {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws tnl::Error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tnl::io
