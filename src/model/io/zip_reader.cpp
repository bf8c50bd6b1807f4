// zip_reader.cpp: see zip_reader.h. Reads the end-of-central-directory record (and its ZIP64
// twin), walks the central directory, and resolves each entry through its local header.
#include "model/io/zip_reader.h"

#include <cstring>

#include "tnl/error.h"

namespace tnl::io {
namespace {

uint64_t le(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

ZipReader::ZipReader(const unsigned char* base, size_t size, const std::string& source)
    : source_(source) {
  auto fail = [&](const std::string& what) -> void {
    throw Error(detail::cat(source_, ": not a valid checkpoint archive: ", what));
  };
  auto need = [&](uint64_t off, uint64_t len, const char* what) {
    if (off > size || len > size - off) fail(detail::cat(what, " lies outside the file (truncated?)"));
  };
  // End of central directory: 22 bytes + comment (up to 64 KiB), searched from the end.
  if (size < 22) fail("too short for a ZIP file (truncated?)");
  int64_t eocd = -1;
  const size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t i = size - 22 + 1; i-- > lowest;) {
    if (le(base + i, 4) == 0x06054b50) {
      eocd = (int64_t)i;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record (truncated?)");
  uint64_t count = le(base + eocd + 10, 2);
  uint64_t cd_size = le(base + eocd + 12, 4);
  uint64_t cd_off = le(base + eocd + 16, 4);
  if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {  // ZIP64
    if (eocd < 20 || le(base + eocd - 20, 4) != 0x07064b50) fail("missing ZIP64 locator");
    const uint64_t z64 = le(base + eocd - 20 + 8, 8);
    need(z64, 56, "ZIP64 end record");
    if (le(base + z64, 4) != 0x06064b50) fail("bad ZIP64 end record");
    count = le(base + z64 + 32, 8);
    cd_size = le(base + z64 + 40, 8);
    cd_off = le(base + z64 + 48, 8);
  }
  need(cd_off, cd_size, "central directory");
  uint64_t p = cd_off;
  for (uint64_t n = 0; n < count; ++n) {
    need(p, 46, "central directory entry");
    if (le(base + p, 4) != 0x02014b50) fail("bad central directory entry signature");
    const uint64_t method = le(base + p + 10, 2);
    uint64_t csize = le(base + p + 20, 4), usize = le(base + p + 24, 4);
    const uint64_t name_len = le(base + p + 28, 2), extra_len = le(base + p + 30, 2),
                   comment_len = le(base + p + 32, 2);
    uint64_t local = le(base + p + 42, 4);
    need(p + 46, name_len + extra_len + comment_len, "central directory entry");
    ZipEntry e;
    e.name.assign(reinterpret_cast<const char*>(base + p + 46), name_len);
    // ZIP64 extra field: the 0xffffffff fields, in order usize, csize, local offset.
    for (uint64_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const uint64_t id = le(base + x, 2), len = le(base + x + 2, 2);
      uint64_t q = x + 4;
      if (x + 4 + len > p + 46 + name_len + extra_len) fail("bad extra field in " + e.name);
      if (id == 0x0001) {
        if (usize == 0xffffffffu && q + 8 <= x + 4 + len) { usize = le(base + q, 8); q += 8; }
        if (csize == 0xffffffffu && q + 8 <= x + 4 + len) { csize = le(base + q, 8); q += 8; }
        if (local == 0xffffffffu && q + 8 <= x + 4 + len) { local = le(base + q, 8); q += 8; }
      }
      x += 4 + len;
    }
    if (method != 0)
      fail(detail::cat("entry '", e.name, "' is compressed (method ", method,
                       "); PyTorch checkpoints store entries uncompressed"));
    if (csize != usize) fail(detail::cat("entry '", e.name, "' has mismatched sizes"));
    need(local, 30, "local header");
    if (le(base + local, 4) != 0x04034b50) fail("bad local header for " + e.name);
    const uint64_t lname = le(base + local + 26, 2), lextra = le(base + local + 28, 2);
    const uint64_t data = local + 30 + lname + lextra;
    need(data, usize, ("data of entry '" + e.name + "'").c_str());
    e.data = base + data;
    e.size = usize;
    entries_[e.name] = e;
    p += 46 + name_len + extra_len + comment_len;
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

const ZipEntry& ZipReader::find_suffix(const std::string& suffix) const {
  const ZipEntry* hit = nullptr;
  for (const auto& [name, e] : entries_) {
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      if (hit) throw Error(detail::cat(source_, ": several entries end with '", suffix, "'"));
      hit = &e;
    }
  }
  if (!hit) throw Error(detail::cat(source_, ": no entry ending with '", suffix, "'"));
  return *hit;
}

}  // namespace tnl::io
