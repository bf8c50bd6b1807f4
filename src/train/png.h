// png.h: a minimal PNG encoder (8-bit RGB, no interlace) written from the specifications:
// PNG (ISO/IEC 15948) chunks with CRC-32, a zlib stream (RFC 1950, Adler-32) of DEFLATE
// (RFC 1951) blocks, either stored or fixed-Huffman with a greedy LZ77 matcher.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tnl::train {

uint32_t crc32(const unsigned char* data, size_t n, uint32_t crc = 0);  // PNG/zlib CRC-32
uint32_t adler32(const unsigned char* data, size_t n, uint32_t adler = 1);

// zlib stream of `data`: fixed-Huffman blocks with LZ77 when `compress`, else stored blocks.
std::vector<unsigned char> zlib_compress(const unsigned char* data, size_t n, bool compress);

// The PNG file bytes of an RGB image, rgb (height, width, 3) row-major.
std::vector<unsigned char> encode_png_rgb(const unsigned char* rgb, int width, int height, bool compress = true);
// Writes it atomically to `path`.
void write_png_rgb(const std::string& path, const unsigned char* rgb, int width, int height, bool compress = true);

}  // namespace tnl::train
