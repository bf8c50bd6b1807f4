// test_plot.cpp: the loss curve files. CSV round trip and its errors; CRC-32 and Adler-32 against
// their published check values; our zlib streams (stored and fixed-Huffman) inflated by Python's
// zlib; the PNG chart decoded by Python (signature, chunk CRCs, IHDR, scanline bytes, and the
// train and validation lines present where the data says).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "testing/testing.h"
#include "tnl/error.h"
#include "train/plot.h"
#include "train/png.h"

namespace tnl::train {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "tnl_plot_" + std::to_string(std::random_device{}()) + "_" + name;
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), (std::streamsize)b.size());
}

int run_python(const std::string& script, const std::string& args) {
  const std::string py = temp_path("check.py");
  std::ofstream(py) << script;
  const std::string cmd = std::string(TNL_TEST_PYTHON) + " " + py + " " + args;
  const int rc = std::system(cmd.c_str());
  std::remove(py.c_str());
  return rc;
}

std::vector<LossPoint> curve() {
  std::vector<LossPoint> pts;
  for (int64_t s = 0; s <= 400; s += 10) {
    LossPoint p;
    p.step = s;
    p.tokens = s * 2048;
    p.train_loss = 2.0 + 6.0 * std::exp(-s / 80.0);
    if (s % 100 == 0 && s > 0) p.val_loss = 2.3 + 6.0 * std::exp(-s / 80.0);
    p.lr = 3e-4 * s / 400.0;
    p.grad_norm = 1.0 / (1 + s);
    p.tokens_per_s = 12345.6;
    pts.push_back(p);
  }
  return pts;
}

TEST(LossCsv, RoundTrip) {
  const std::string path = temp_path("loss.csv");
  const std::vector<LossPoint> pts = curve();
  write_loss_csv(path, pts);
  const std::vector<LossPoint> back = read_loss_csv(path);
  ASSERT_EQ(back.size(), pts.size());
  for (size_t i = 0; i < pts.size(); ++i) {
    EXPECT_EQ(back[i].step, pts[i].step);
    EXPECT_EQ(back[i].tokens, pts[i].tokens);
    EXPECT_EQ((float)back[i].train_loss, (float)pts[i].train_loss) << "a float loss survives exactly";
    EXPECT_EQ(std::isnan(back[i].val_loss), std::isnan(pts[i].val_loss));
    if (!std::isnan(pts[i].val_loss)) {
      EXPECT_EQ((float)back[i].val_loss, (float)pts[i].val_loss);
    }
    EXPECT_NEAR(back[i].lr, pts[i].lr, 1e-12);
    EXPECT_NEAR(back[i].grad_norm, pts[i].grad_norm, 1e-5 * pts[i].grad_norm);
    EXPECT_NEAR(back[i].tokens_per_s, pts[i].tokens_per_s, 0.05);
  }
  // Writing what was read gives the same file (resume appends to an identical curve).
  const std::string again = temp_path("again.csv");
  write_loss_csv(again, back);
  std::ifstream a(path), b(again);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(a), {}), std::string(std::istreambuf_iterator<char>(b), {}));
  std::remove(path.c_str());
  std::remove(again.c_str());
}

TEST(LossCsv, BadFilesNameFileAndLine) {
  const std::string path = temp_path("bad.csv");
  auto expect_bad = [&](const std::string& text, const std::string& needle) {
    std::ofstream(path, std::ios::trunc) << text;
    try {
      read_loss_csv(path);
      FAIL() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string header = "step,tokens,train_loss,val_loss,lr,grad_norm,tokens_per_s\n";
  expect_bad("step,loss\n", "line 1");
  expect_bad(header + "1,2,3,,5,6,7\n1,2,x,,5,6,7\n", "line 3");
  expect_bad(header + "1,2,3,,5,6\n", "line 2");
  expect_bad(header + "1.5,2,3,,5,6,7\n", "line 2");
  std::remove(path.c_str());
}

TEST(Png, ChecksumsMatchPublishedCheckValues) {
  const std::string s = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const unsigned char*>(s.data()), s.size()), 0xCBF43926u);  // CRC-32/ISO-HDLC
  const std::string w = "Wikipedia";
  EXPECT_EQ(adler32(reinterpret_cast<const unsigned char*>(w.data()), w.size()), 0x11E60398u);
  // Incremental use composes.
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  EXPECT_EQ(crc32(p + 4, 5, crc32(p, 4)), 0xCBF43926u);
}

TEST(Png, ZlibStreamsInflateWithPythonZlib) {
  std::mt19937_64 rng(testing::test_seed());
  std::vector<unsigned char> data;
  for (int i = 0; i < 70000; ++i) data.push_back((unsigned char)(rng() % 7));  // > one stored block
  for (int i = 0; i < 100000; ++i) data.push_back((unsigned char)(i % 251 < 200 ? 255 : i % 13));
  for (int i = 0; i < 300; ++i) data.push_back(42);  // runs longer than 258
  const std::string raw = temp_path("raw.bin"), z0 = temp_path("z0.bin"), z1 = temp_path("z1.bin");
  write_bytes(raw, data);
  const std::vector<unsigned char> stored = zlib_compress(data.data(), data.size(), false);
  const std::vector<unsigned char> fixed = zlib_compress(data.data(), data.size(), true);
  write_bytes(z0, stored);
  write_bytes(z1, fixed);
  EXPECT_LT(fixed.size(), data.size() / 3) << "LZ77 + fixed Huffman should compress this well";
  EXPECT_GT(stored.size(), data.size());
  const std::string script =
      "import sys, zlib\n"
      "raw = open(sys.argv[1], 'rb').read()\n"
      "for f in sys.argv[2:]:\n"
      "    d = zlib.decompressobj()\n"
      "    out = d.decompress(open(f, 'rb').read())\n"
      "    assert d.eof and not d.unused_data, f + ': stream does not end cleanly'\n"
      "    assert out == raw, f + ': inflated bytes differ'\n";
  EXPECT_EQ(run_python(script, raw + " " + z0 + " " + z1), 0);
  const std::vector<unsigned char> empty = zlib_compress(nullptr, 0, true), empty0 = zlib_compress(nullptr, 0, false);
  write_bytes(raw, {});
  write_bytes(z0, empty0);
  write_bytes(z1, empty);
  EXPECT_EQ(run_python(script, raw + " " + z0 + " " + z1), 0) << "empty input";
  for (const std::string& f : {raw, z0, z1}) std::remove(f.c_str());
}

// Decodes the chart and checks it: the train line spans the x range, falls from left to right,
// and the validation markers sit at steps 100..400.
const char* kPngCheck = R"(
import sys, struct, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
pos, chunks = 8, []
while pos < len(data):
    n, = struct.unpack('>I', data[pos:pos+4]); typ = data[pos+4:pos+8]; body = data[pos+8:pos+8+n]
    crc, = struct.unpack('>I', data[pos+8+n:pos+12+n])
    assert zlib.crc32(typ + body) == crc, 'CRC of chunk %r' % typ
    chunks.append((typ, body)); pos += 12 + n
assert pos == len(data), 'trailing bytes'
assert [c[0] for c in chunks] == [b'IHDR', b'IDAT', b'IEND'], [c[0] for c in chunks]
w, h, depth, ctype, comp, filt, inter = struct.unpack('>IIBBBBB', chunks[0][1])
assert (w, h, depth, ctype, comp, filt, inter) == (960, 540, 8, 2, 0, 0, 0), (w, h, depth, ctype)
raw = zlib.decompress(chunks[1][1])
assert len(raw) == h * (1 + 3 * w), 'decompressed length %d' % len(raw)
rows = [raw[y*(1+3*w)+1:(y+1)*(1+3*w)] for y in range(h)]
assert all(raw[y*(1+3*w)] == 0 for y in range(h)), 'filter bytes'
px = lambda x, y: tuple(rows[y][3*x:3*x+3])
train, val = (31, 119, 180), (230, 110, 0)
cols = {}
for y in range(h):
    for x in range(w):
        c = px(x, y)
        if c == train: cols.setdefault(x, []).append(y)
xs = sorted(cols)
assert xs and xs[-1] - xs[0] > 0.8 * w, 'train line spans %s' % (xs[-1] - xs[0] if xs else 0)
left = sum(cols[xs[0]]) / len(cols[xs[0]]); right = sum(cols[xs[-1]]) / len(cols[xs[-1]])
assert left < right - 0.5 * h, 'train loss falls: y %.0f -> %.0f' % (left, right)
# validation markers: 7x7 squares of the validation colour (the line joining them is 2 px)
centres = sorted({x for y in range(3, h - 3) for x in range(3, w - 3)
                  if all(px(x + i, y + j) == val for i in range(-3, 4) for j in range(-3, 4))})
groups = [x for i, x in enumerate(centres) if i == 0 or x - centres[i-1] > 3]
assert len(groups) == 5, 'validation markers (4 points + the legend): %s' % groups
dark = sum(1 for y in range(h) for x in range(w) if px(x, y) == (40, 40, 40))
assert dark > 500, 'labels drawn: %d text pixels' % dark
print('png ok: %dx%d, %d bytes, train line over %d columns, %d val groups' % (w, h, len(data), len(xs), len(groups)))
)";

TEST(Png, LossChartDecodesAndShowsBothCurves) {
  const std::string path = temp_path("loss.png");
  write_loss_png(path, curve(), "tnl train: test curve 0123456789");
  if (std::getenv("TNL_KEEP_PLOT")) std::printf("chart: %s\n", path.c_str());
  EXPECT_EQ(run_python(kPngCheck, path), 0) << "kept for inspection: " << path;
  if (std::getenv("TNL_KEEP_PLOT")) return;  // look at it: TNL_KEEP_PLOT=1 prints the path above
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  EXPECT_LT((int64_t)f.tellg(), 200000) << "compressed";
  // Degenerate inputs still give a valid chart.
  write_loss_png(path, {}, "empty");
  LossPoint one;
  one.step = 5, one.train_loss = 3.0;
  write_loss_png(path, {one}, "one point");
  if (!::testing::Test::HasFailure()) std::remove(path.c_str());
}

}  // namespace
}  // namespace tnl::train
