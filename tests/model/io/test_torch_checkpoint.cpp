// test_torch_checkpoint.cpp: the restricted unpickler and the ZIP reader on archives built here
// byte by byte in the layout torch.save writes (a stored ZIP with <name>/data.pkl and
// <name>/data/<key>), and their refusals: forbidden globals, truncation, bad bounds.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/io/torch_checkpoint.h"
#include "model/io/torch_pickle.h"
#include "tnl/error.h"

namespace tnl::io {
namespace {

// ---- a pickle writer for the handful of opcodes torch.save emits ----
struct Pickle {
  std::string b = "\x80\x02";
  Pickle& op(char c) { b += c; return *this; }
  Pickle& global(const std::string& m, const std::string& n) { b += "c" + m + "\n" + n + "\n"; return *this; }
  Pickle& str(const std::string& s) {
    b += 'X';
    for (int i = 0; i < 4; ++i) b += (char)((s.size() >> (8 * i)) & 0xff);
    b += s;
    return *this;
  }
  Pickle& small(int v) { b += 'K'; b += (char)v; return *this; }
  Pickle& tuple_of(const std::vector<int>& v) {
    b += '(';
    for (int x : v) small(x);
    b += 't';
    return *this;
  }
  // _rebuild_tensor_v2(storage(key, numel), offset, size, stride, False, OrderedDict())
  Pickle& tensor(const std::string& storage_type, const std::string& key, int numel, int offset,
                 const std::vector<int>& size, const std::vector<int>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", storage_type).str(key).str("cpu").small(numel).op('t').op('Q');
    small(offset).tuple_of(size).tuple_of(stride).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
  Pickle& begin_dict() { return global("collections", "OrderedDict").op(')').op('R').op('('); }
  Pickle& end_dict() { return op('u').op('.'); }
};

// ---- a stored (uncompressed) ZIP writer ----
std::string zip_of(const std::vector<std::pair<std::string, std::string>>& files) {
  auto put = [](std::string& s, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) s += (char)((v >> (8 * i)) & 0xff);
  };
  std::string out, cd;
  for (const auto& [name, data] : files) {
    const size_t local = out.size();
    put(out, 0x04034b50, 4); put(out, 20, 2); put(out, 0, 2); put(out, 0, 2); put(out, 0, 4);
    put(out, 0, 4); put(out, data.size(), 4); put(out, data.size(), 4);
    put(out, name.size(), 2); put(out, 0, 2);
    out += name + data;
    put(cd, 0x02014b50, 4); put(cd, 20, 2); put(cd, 20, 2); put(cd, 0, 2); put(cd, 0, 2);
    put(cd, 0, 4); put(cd, 0, 4); put(cd, data.size(), 4); put(cd, data.size(), 4);
    put(cd, name.size(), 2); put(cd, 0, 2); put(cd, 0, 2); put(cd, 0, 2); put(cd, 0, 2);
    put(cd, 0, 4); put(cd, local, 4);
    cd += name;
  }
  const size_t cd_off = out.size();
  out += cd;
  put(out, 0x06054b50, 4); put(out, 0, 2); put(out, 0, 2); put(out, files.size(), 2);
  put(out, files.size(), 2); put(out, cd.size(), 4); put(out, cd_off, 4); put(out, 0, 2);
  return out;
}

std::string write_temp(const std::string& bytes) {
  const std::string path = ::testing::TempDir() + "tnl_ckpt_" + std::to_string(std::random_device{}()) + ".bin";
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string load_error(const std::string& bytes) {
  const std::string path = write_temp(bytes);
  std::string msg;
  try {
    TorchCheckpoint c(path);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    msg = e.what();
  }
  std::remove(path.c_str());
  return msg;
}

TEST(TorchCheckpoint, LoadsTensorsSharingAStorage) {
  std::vector<float> storage(6);
  std::mt19937 rng(std::random_device{}());
  for (float& x : storage) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  Pickle p;
  p.begin_dict().str("w").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  p.str("tail").tensor("FloatStorage", "0", 6, 2, {4}, {1}).end_dict();
  const std::string path = write_temp(zip_of({{"archive/data.pkl", p.b},
      {"archive/data/0", std::string(reinterpret_cast<const char*>(storage.data()), 24)},
      {"archive/version", "3\n"}}));
  TorchCheckpoint c(path);
  ASSERT_EQ(c.tensors().size(), 2u);
  const TensorEntry& w = c.tensors().at("w");
  EXPECT_EQ(w.dtype, "F32");
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(w.data, storage.data(), 24), 0);
  const TensorEntry& tail = c.tensors().at("tail");
  EXPECT_EQ(tail.numel(), 4);
  EXPECT_EQ(std::memcmp(tail.data, storage.data() + 2, 16), 0);
  std::remove(path.c_str());
}

TEST(TorchCheckpoint, RefusesForbiddenGlobals) {
  for (const auto& [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"builtins", "eval"}, {"subprocess", "Popen"}, {"torch", "load"}}) {
    SCOPED_TRACE(module + "." + name);
    Pickle p;
    p.global(module, name).str("echo pwned").op('\x85').op('R').op('.');
    const std::string msg = load_error(zip_of({{"a/data.pkl", p.b}}));
    EXPECT_NE(msg.find("forbidden global '" + module + "." + name + "'"), std::string::npos) << msg;
  }
}

TEST(TorchCheckpoint, RefusesBrokenArchives) {
  Pickle good;
  good.begin_dict().str("w").tensor("BFloat16Storage", "0", 4, 0, {4}, {1}).end_dict();
  const std::string data(8, '\x3f');
  // Truncated archive: the ZIP's directory is gone.
  const std::string whole = zip_of({{"a/data.pkl", good.b}, {"a/data/0", data}});
  EXPECT_NE(load_error(whole.substr(0, whole.size() / 2)).find("truncated"), std::string::npos);
  // Truncated pickle.
  EXPECT_NE(load_error(zip_of({{"a/data.pkl", good.b.substr(0, good.b.size() - 5)}, {"a/data/0", data}}))
                .find("truncated pickle"), std::string::npos);
  // Storage smaller than declared.
  EXPECT_NE(load_error(zip_of({{"a/data.pkl", good.b}, {"a/data/0", data.substr(0, 6)}}))
                .find("fewer than"), std::string::npos);
  // Missing storage.
  EXPECT_NE(load_error(zip_of({{"a/data.pkl", good.b}})).find("missing"), std::string::npos);
  // View past the end of its storage.
  Pickle past;
  past.begin_dict().str("w").tensor("BFloat16Storage", "0", 4, 2, {4}, {1}).end_dict();
  EXPECT_NE(load_error(zip_of({{"a/data.pkl", past.b}, {"a/data/0", data}})).find("outside"),
            std::string::npos);
  // Non-contiguous (transposed) tensor.
  Pickle transposed;
  transposed.begin_dict().str("w").tensor("BFloat16Storage", "0", 4, 0, {2, 2}, {1, 2}).end_dict();
  EXPECT_NE(load_error(zip_of({{"a/data.pkl", transposed.b}, {"a/data/0", data}})).find("contiguous"),
            std::string::npos);
  // Not a ZIP at all.
  EXPECT_FALSE(load_error("definitely not a zip file, but long enough to look at").empty());
}

TEST(TorchPickle, TopLevelMustBeAStateDict) {
  Pickle p;
  p.small(3).op('.');
  EXPECT_THROW(unpickle_state_dict(reinterpret_cast<const unsigned char*>(p.b.data()), p.b.size(), "x"),
               Error);
  Pickle q;
  q.op('h').small(9);  // BINGET of an unknown memo key
  EXPECT_THROW(unpickle_state_dict(reinterpret_cast<const unsigned char*>(q.b.data()), q.b.size(), "x"),
               Error);
}

}  // namespace
}  // namespace tnl::io
