// zip_reader.h: the entries of a ZIP archive held in memory (a PyTorch .bin checkpoint is a ZIP
// of uncompressed entries: data.pkl, data/<key>, ...). ZIP64 is supported, compression is not
// (torch.save stores entries uncompressed); every offset is checked against the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace tnl::io {

struct ZipEntry {
  std::string name;
  const unsigned char* data = nullptr;  // the stored bytes, inside the caller's buffer
  uint64_t size = 0;
};

class ZipReader {
 public:
  // `base`, `size`: the whole archive (e.g. a MappedFile); `source` names it in errors.
  ZipReader(const unsigned char* base, size_t size, const std::string& source);

  const std::map<std::string, ZipEntry>& entries() const { return entries_; }
  // The entry whose name ends with `suffix` (e.g. "/data.pkl"); throws when none or several.
  const ZipEntry& find_suffix(const std::string& suffix) const;
  const ZipEntry* find(const std::string& name) const;

 private:
  std::string source_;
  std::map<std::string, ZipEntry> entries_;
};

}  // namespace tnl::io
