// bitmap_font.h: a 5x7 pixel font for printable ASCII (plot labels), this project's own glyphs.
#pragma once

#include <cstdint>

namespace tnl::train {

constexpr int kGlyphWidth = 5, kGlyphHeight = 7;
constexpr int kGlyphAdvance = 6;  // pixels from one character to the next, at scale 1

// The 7 rows of a glyph, top first; bit 4 of a row is its leftmost pixel. Characters outside
// printable ASCII get a hollow box.
const uint8_t* glyph_rows(char c);

}  // namespace tnl::train
