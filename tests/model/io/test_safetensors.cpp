// test_safetensors.cpp: the safetensors reader on files written here byte by byte, and its
// errors on truncated, inconsistent or hostile files.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/io/safetensors.h"
#include "tnl/error.h"

namespace tnl::io {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "tnl_" + name + "_" + std::to_string(std::random_device{}());
}

// Writes u64 header length, the header, then `data`.
void write_file(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put((char)((n >> (8 * i)) & 0xff));
  f << header << data;
}

std::string expect_error(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for " << path;
  return "";
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  std::mt19937 rng(std::random_device{}());
  std::vector<float> a(6);
  for (float& x : a) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  const uint16_t b[2] = {0x3f80, 0xc000};  // bf16 1.0, -2.0
  std::string data(reinterpret_cast<const char*>(a.data()), 24);
  data.append(reinterpret_cast<const char*>(b), 4);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("e":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]},"z":{"dtype":"F16","shape":[0],"data_offsets":[28,28]}})";
  const std::string path = temp_path("ok.safetensors");
  write_file(path, header, data);
  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorEntry& w = f.at("w");
  EXPECT_EQ(w.dtype, "F32");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(w.data, a.data(), 24), 0);
  const TensorEntry& e = f.at("e");
  EXPECT_EQ(e.numel(), 2);
  EXPECT_EQ(std::memcmp(e.data, b, 4), 0);
  EXPECT_EQ(f.at("z").numel(), 0);
  EXPECT_THROW(f.at("missing"), Error);
  std::remove(path.c_str());
}

TEST(Safetensors, RejectsBadFiles) {
  struct Case {
    const char* what;
    std::string header, data, expect;
  };
  const std::string four(16, '\0');
  const std::vector<Case> cases = {
      {"truncated data", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "abc", "outside"},
      {"size mismatch", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", four, "expected 12"},
      {"unknown dtype", R"({"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", four, "unknown dtype"},
      {"overlap", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", four, "overlap"},
      {"missing field", R"({"w":{"dtype":"F32","shape":[4]}})", four, "data_offsets"},
      {"negative dim", R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", four, "negative"},
      {"not json", "{\"w\": [", four, "invalid JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = temp_path("bad.safetensors");
    write_file(path, c.header, c.data);
    const std::string msg = expect_error(path);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << "the error must name the file: " << msg;
    std::remove(path.c_str());
  }
}

TEST(Safetensors, HeaderLongerThanFileIsTruncation) {
  const std::string path = temp_path("short.safetensors");
  {
    std::ofstream f(path, std::ios::binary);
    const char len[8] = {(char)0xff, (char)0xff, 0, 0, 0, 0, 0, 0};
    f.write(len, 8);
    f << "{}";
  }
  EXPECT_NE(expect_error(path).find("exceeds the file"), std::string::npos);
  std::remove(path.c_str());
  EXPECT_NE(expect_error("/nonexistent/x.safetensors").find("cannot open"), std::string::npos);
}

}  // namespace
}  // namespace tnl::io
