// png.cpp: see png.h.
#include "train/png.h"

#include <algorithm>
#include <array>

#include "model/io/atomic_file.h"
#include "tnl/error.h"

namespace tnl::train {
namespace {

// Bits out, least significant first (DEFLATE's order).
class BitWriter {
 public:
  explicit BitWriter(std::vector<unsigned char>& out) : out_(out) {}
  void bits(uint32_t value, int count) {  // the low `count` bits of value, LSB first
    acc_ |= (uint64_t)value << fill_;
    fill_ += count;
    while (fill_ >= 8) {
      out_.push_back((unsigned char)acc_);
      acc_ >>= 8;
      fill_ -= 8;
    }
  }
  void huffman(uint32_t code, int length) {  // Huffman codes go most significant bit first
    uint32_t rev = 0;
    for (int i = 0; i < length; ++i) rev |= ((code >> i) & 1u) << (length - 1 - i);
    bits(rev, length);
  }
  void flush() {
    if (fill_ > 0) out_.push_back((unsigned char)acc_);
    acc_ = 0;
    fill_ = 0;
  }

 private:
  std::vector<unsigned char>& out_;
  uint64_t acc_ = 0;
  int fill_ = 0;
};

// RFC 1951 §3.2.5: length symbols 257..285, distance symbols 0..29.
constexpr int kLenBase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                              35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
constexpr int kLenExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
constexpr int kDistBase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                               257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
constexpr int kDistExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

// RFC 1951 §3.2.6: the fixed literal/length code.
void put_literal_length(BitWriter& w, int sym) {
  if (sym <= 143) w.huffman(0x30 + sym, 8);
  else if (sym <= 255) w.huffman(0x190 + (sym - 144), 9);
  else if (sym <= 279) w.huffman(sym - 256, 7);
  else w.huffman(0xC0 + (sym - 280), 8);
}

void put_match(BitWriter& w, int length, int distance) {
  int li = 28;
  while (kLenBase[li] > length) --li;
  put_literal_length(w, 257 + li);
  if (kLenExtra[li]) w.bits(length - kLenBase[li], kLenExtra[li]);
  int di = 29;
  while (kDistBase[di] > distance) --di;
  w.huffman(di, 5);
  if (kDistExtra[di]) w.bits(distance - kDistBase[di], kDistExtra[di]);
}

// One final fixed-Huffman block; greedy LZ77 over a hash chain of 3-byte prefixes.
void deflate_fixed(const unsigned char* data, size_t n, std::vector<unsigned char>& out) {
  constexpr int kHashBits = 15, kWindow = 32768, kMaxLen = 258, kMaxChain = 32;
  std::vector<int32_t> head(1 << kHashBits, -1), prev(n, -1);
  auto hash = [&](size_t i) {
    const uint32_t x = data[i] | (uint32_t)data[i + 1] << 8 | (uint32_t)data[i + 2] << 16;
    return (x * 2654435761u) >> (32 - kHashBits);
  };
  auto insert = [&](size_t i) {
    if (i + 2 >= n) return;
    const uint32_t h = hash(i);
    prev[i] = head[h];
    head[h] = (int32_t)i;
  };
  BitWriter w(out);
  w.bits(1, 1);  // BFINAL
  w.bits(1, 2);  // BTYPE = 01, fixed Huffman
  size_t i = 0;
  while (i < n) {
    int best_len = 0, best_dist = 0;
    if (i + 2 < n) {
      const size_t max_len = std::min<size_t>(kMaxLen, n - i);
      int32_t cand = head[hash(i)];
      for (int chain = 0; cand >= 0 && chain < kMaxChain && i - (size_t)cand <= (size_t)kWindow;
           ++chain, cand = prev[cand]) {
        size_t len = 0;
        while (len < max_len && data[cand + len] == data[i + len]) ++len;
        if ((int)len > best_len) {
          best_len = (int)len;
          best_dist = (int)(i - cand);
          if (len == max_len) break;
        }
      }
    }
    if (best_len >= 3) {
      put_match(w, best_len, best_dist);
      for (int k = 0; k < best_len; ++k) insert(i + k);
      i += best_len;
    } else {
      put_literal_length(w, data[i]);
      insert(i);
      ++i;
    }
  }
  put_literal_length(w, 256);  // end of block
  w.flush();
}

void deflate_stored(const unsigned char* data, size_t n, std::vector<unsigned char>& out) {
  size_t pos = 0;
  do {
    const size_t len = std::min<size_t>(65535, n - pos);
    out.push_back(pos + len == n ? 1 : 0);  // BFINAL, BTYPE = 00, then pad to the byte
    out.push_back((unsigned char)len);
    out.push_back((unsigned char)(len >> 8));
    out.push_back((unsigned char)~len);
    out.push_back((unsigned char)(~len >> 8));
    out.insert(out.end(), data + pos, data + pos + len);
    pos += len;
  } while (pos < n);
}

void put_be32(std::vector<unsigned char>& out, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) out.push_back((unsigned char)(x >> s));
}

void put_chunk(std::vector<unsigned char>& out, const char type[4], const std::vector<unsigned char>& body) {
  put_be32(out, (uint32_t)body.size());
  const size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), body.begin(), body.end());
  put_be32(out, crc32(out.data() + start, out.size() - start));
}

}  // namespace

uint32_t crc32(const unsigned char* data, size_t n, uint32_t crc) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t adler32(const unsigned char* data, size_t n, uint32_t adler) {
  uint32_t a = adler & 0xFFFF, b = adler >> 16;
  for (size_t i = 0; i < n; ++i) {
    a = (a + data[i]) % 65521;
    b = (b + a) % 65521;
  }
  return b << 16 | a;
}

std::vector<unsigned char> zlib_compress(const unsigned char* data, size_t n, bool compress) {
  std::vector<unsigned char> out = {0x78, 0x01};  // deflate, 32K window; (0x7801 % 31 == 0)
  if (compress) deflate_fixed(data, n, out);
  else deflate_stored(data, n, out);
  put_be32(out, adler32(data, n));
  return out;
}

std::vector<unsigned char> encode_png_rgb(const unsigned char* rgb, int width, int height, bool compress) {
  TNL_ARG_CHECK(width >= 1 && height >= 1 && rgb, "tnl::train::encode_png_rgb", "width",
                "expected a non-empty image, got ", width, "x", height);
  // Scanlines, each led by filter type 0 (none): (height, 1 + 3·width)
  const size_t row = 1 + 3 * (size_t)width;
  std::vector<unsigned char> raw(row * height);
  for (int y = 0; y < height; ++y) {
    raw[y * row] = 0;
    std::copy(rgb + (size_t)y * width * 3, rgb + (size_t)(y + 1) * width * 3, raw.begin() + y * row + 1);
  }
  std::vector<unsigned char> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<unsigned char> ihdr;
  put_be32(ihdr, (uint32_t)width);
  put_be32(ihdr, (uint32_t)height);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit, RGB, deflate, adaptive filtering, no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", zlib_compress(raw.data(), raw.size(), compress));
  put_chunk(png, "IEND", {});
  return png;
}

void write_png_rgb(const std::string& path, const unsigned char* rgb, int width, int height, bool compress) {
  const std::vector<unsigned char> png = encode_png_rgb(rgb, width, height, compress);
  io::write_file_atomically(path, [&](const std::function<void(const void*, size_t)>& out) {
    out(png.data(), png.size());
  });
}

}  // namespace tnl::train
