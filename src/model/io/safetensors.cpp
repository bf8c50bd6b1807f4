// safetensors.cpp: see safetensors.h.
#include "model/io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "model/io/atomic_file.h"
#include "model/io/json.h"
#include "tnl/error.h"

namespace tnl::io {

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t safetensors_elem_size(const std::string& dt) {
  if (dt == "F64" || dt == "I64" || dt == "U64") return 8;
  if (dt == "F32" || dt == "I32" || dt == "U32") return 4;
  if (dt == "F16" || dt == "BF16" || dt == "I16" || dt == "U16") return 2;
  if (dt == "I8" || dt == "U8" || dt == "BOOL" || dt == "F8_E4M3" || dt == "F8_E5M2") return 1;
  return 0;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(std::make_shared<MappedFile>(path)) {
  const size_t size = file_->size();
  const unsigned char* base = file_->data();
  if (size < 8) throw Error(detail::cat(path, ": not a safetensors file (", size, " bytes, truncated?)"));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  constexpr uint64_t kMaxHeader = 100u << 20;
  if (header_len > kMaxHeader || header_len > size - 8)
    throw Error(detail::cat(path, ": safetensors header length ", header_len,
                            " exceeds the file (", size, " bytes): truncated or not safetensors"));
  const std::string header(reinterpret_cast<const char*>(base + 8), header_len);
  const json::Value root = json::parse(header, path + " (safetensors header)");
  const unsigned char* data = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const auto& [name, v] : root.as_object(path + ": safetensors header")) {
    if (name == "__metadata__") {
      for (const auto& [k, mv] : v.as_object(path + ": __metadata__"))
        metadata_[k] = mv.as_string(path + ": __metadata__." + k);
      continue;
    }
    const std::string where = detail::cat(path, ": tensor '", name, "'");
    TensorEntry t;
    t.name = name;
    const json::Value* dt = v.find("dtype");
    const json::Value* shape = v.find("shape");
    const json::Value* offs = v.find("data_offsets");
    if (!dt || !shape || !offs)
      throw Error(where + ": expected the fields dtype, shape and data_offsets");
    t.dtype = dt->as_string(where + ".dtype");
    t.elem_size = safetensors_elem_size(t.dtype);
    if (t.elem_size == 0) throw Error(detail::cat(where, ": unknown dtype '", t.dtype, "'"));
    for (const json::Value& d : shape->as_array(where + ".shape")) {
      const int64_t n = d.as_int(where + ".shape");
      if (n < 0) throw Error(detail::cat(where, ": negative dimension ", n));
      if (n > 0 && !t.shape.empty() && t.numel() > (int64_t(1) << 50) / n)
        throw Error(where + ": shape too large");
      t.shape.push_back(n);
    }
    const std::vector<json::Value>& o = offs->as_array(where + ".data_offsets");
    if (o.size() != 2) throw Error(where + ": expected data_offsets [begin, end]");
    const int64_t begin = o[0].as_int(where + ".data_offsets"), end = o[1].as_int(where + ".data_offsets");
    if (begin < 0 || end < begin || (uint64_t)end > data_size)
      throw Error(detail::cat(where, ": data_offsets [", begin, ", ", end,
                              "] fall outside the file's ", data_size, " data bytes (truncated?)"));
    t.bytes = end - begin;
    if (t.bytes != t.numel() * t.elem_size)
      throw Error(detail::cat(where, ": ", t.bytes, " bytes for ", t.numel(), " elements of ",
                              t.dtype, " (expected ", t.numel() * t.elem_size, ")"));
    t.data = data + begin;
    if (t.bytes > 0) ranges.emplace_back(begin, end);
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw Error(detail::cat(path, ": tensors overlap at data offset ", ranges[i].first));
}

namespace {
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if ((unsigned char)c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}
}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "" : ",") + json_string(k) + ":" + json_string(v);
      first = false;
    }
    header += "}";
  }
  int64_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    TensorEntry shape_only;
    shape_only.shape = t.shape;
    const int64_t es = safetensors_elem_size(t.dtype);
    if (es == 0 || t.bytes != shape_only.numel() * es)
      throw Error(detail::cat(path, ": tensor '", t.name, "': ", t.bytes, " bytes do not match ",
                              t.dtype, " of ", shape_only.numel(), " elements"));
    header += (header.size() > 1 ? "," : "") + json_string(t.name) + ":{\"dtype\":\"" + t.dtype +
              "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes) + "]}";
    offset += t.bytes;
  }
  header += "}";
  while (header.size() % 8) header += ' ';  // keep the data 8-byte aligned
  write_file_atomically(path, [&](const auto& sink) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = (unsigned char)((header.size() >> (8 * i)) & 0xff);
    sink(len, 8);
    sink(header.data(), header.size());
    for (const TensorToWrite& t : tensors) sink(t.data, (size_t)t.bytes);
  });
}

const TensorEntry& SafetensorsFile::at(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error(detail::cat(path(), ": no tensor named '", name, "'"));
  return it->second;
}

}  // namespace tnl::io
