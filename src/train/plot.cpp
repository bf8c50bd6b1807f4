// plot.cpp: see plot.h. The chart is drawn on an RGB canvas with Bresenham lines and the 5x7
// bitmap font, then encoded by png.h.
#include "train/plot.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "model/io/atomic_file.h"
#include "train/bitmap_font.h"
#include "train/png.h"
#include "tnl/error.h"

namespace tnl::train {
namespace {

const char* kCsvHeader = "step,tokens,train_loss,val_loss,lr,grad_norm,tokens_per_s";

std::string fmt(const char* f, double x) {
  char s[64];
  std::snprintf(s, sizeof s, f, x);
  return s;
}

struct Rgb {
  unsigned char r, g, b;
};
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrid{225, 225, 225}, kText{40, 40, 40};
constexpr Rgb kTrain{31, 119, 180}, kVal{230, 110, 0};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_((size_t)w * h * 3, 255) {}
  int width() const { return w_; }
  int height() const { return h_; }
  const unsigned char* data() const { return px_.data(); }

  void set_clip(int x0, int y0, int x1, int y1) { cx0_ = x0, cy0_ = y0, cx1_ = x1, cy1_ = y1; }
  void no_clip() { set_clip(0, 0, w_ - 1, h_ - 1); }
  void put(int x, int y, Rgb c) {
    if (x < cx0_ || x > cx1_ || y < cy0_ || y > cy1_) return;
    unsigned char* p = &px_[((size_t)y * w_ + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void fill(int x0, int y0, int x1, int y1, Rgb c) {  // inclusive corners
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) put(x, y, c);
  }
  void rect(int x0, int y0, int x1, int y1, Rgb c) {
    fill(x0, y0, x1, y0, c), fill(x0, y1, x1, y1, c), fill(x0, y0, x0, y1, c), fill(x1, y0, x1, y1, c);
  }
  // Bresenham; each pixel a thick x thick square.
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      fill(x0 - thick / 2, y0 - thick / 2, x0 - thick / 2 + thick - 1, y0 - thick / 2 + thick - 1, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  static int text_width(const std::string& s, int scale) {
    return s.empty() ? 0 : ((int)s.size() * kGlyphAdvance - 1) * scale;
  }
  void text(int x, int y, const std::string& s, Rgb c, int scale) {  // (x, y): top-left
    for (size_t i = 0; i < s.size(); ++i) {
      const uint8_t* rows = glyph_rows(s[i]);
      const int gx = x + (int)i * kGlyphAdvance * scale;
      for (int r = 0; r < kGlyphHeight; ++r)
        for (int col = 0; col < kGlyphWidth; ++col)
          if (rows[r] >> (kGlyphWidth - 1 - col) & 1)
            fill(gx + col * scale, y + r * scale, gx + col * scale + scale - 1, y + r * scale + scale - 1, c);
    }
  }

 private:
  int w_, h_;
  std::vector<unsigned char> px_;  // (h, w, 3)
  int cx0_ = 0, cy0_ = 0, cx1_ = 1 << 30, cy1_ = 1 << 30;
};

// About `target` round tick values (1, 2, 2.5, 5 × 10^k apart) covering [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target, double* step_out) {
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) t.push_back(v);
  *step_out = step;
  return t;
}

std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-6) v = 0;
  int decimals = 0;
  for (double scaled = step; decimals < 6 && std::fabs(scaled - std::round(scaled)) > 1e-6; scaled *= 10) ++decimals;
  if (std::fabs(v) >= 1e6 && decimals == 0) return fmt("%.3g", v);
  char f[16];
  std::snprintf(f, sizeof f, "%%.%df", decimals);
  return fmt(f, v);
}

double parse_real(const std::string& s, const std::string& where, bool empty_is_nan) {
  if (s.empty()) {
    if (empty_is_nan) return NAN;
    throw Error(where + ": empty field");
  }
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(s.c_str(), &end);
  if (*end != '\0') throw Error(where + ": not a number: '" + s + "'");
  return x;
}

}  // namespace

void write_loss_csv(const std::string& path, const std::vector<LossPoint>& pts) {
  std::string out = std::string(kCsvHeader) + "\n";
  for (const LossPoint& p : pts) {
    out += std::to_string(p.step) + "," + std::to_string(p.tokens) + ",";
    out += (std::isnan(p.train_loss) ? "" : fmt("%.9g", p.train_loss)) + ",";
    out += (std::isnan(p.val_loss) ? "" : fmt("%.9g", p.val_loss)) + ",";
    out += fmt("%.9g", p.lr) + "," + fmt("%.6g", p.grad_norm) + "," + fmt("%.1f", p.tokens_per_s) + "\n";
  }
  io::write_text_atomically(path, out);
}

std::vector<LossPoint> read_loss_csv(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(detail::cat(path, ": cannot open the loss curve"));
  std::string line;
  if (!std::getline(f, line) || line != kCsvHeader)
    throw Error(detail::cat(path, ": line 1: expected the header '", kCsvHeader, "'"));
  std::vector<LossPoint> pts;
  for (int64_t n = 2; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    const std::string where = detail::cat(path, ": line ", n);
    std::vector<std::string> fields;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) fields.push_back(x);
    if (!line.empty() && line.back() == ',') fields.push_back("");
    if (fields.size() != 7) throw Error(detail::cat(where, ": ", fields.size(), " fields, expected 7"));
    LossPoint p;
    const double step = parse_real(fields[0], where + " (step)", false);
    const double tokens = parse_real(fields[1], where + " (tokens)", false);
    if (step != std::floor(step) || tokens != std::floor(tokens) || step < 0 || tokens < 0)
      throw Error(where + ": step and tokens must be whole numbers >= 0");
    p.step = (int64_t)step;
    p.tokens = (int64_t)tokens;
    p.train_loss = parse_real(fields[2], where + " (train_loss)", true);
    p.val_loss = parse_real(fields[3], where + " (val_loss)", true);
    p.lr = parse_real(fields[4], where + " (lr)", false);
    p.grad_norm = parse_real(fields[5], where + " (grad_norm)", false);
    p.tokens_per_s = parse_real(fields[6], where + " (tokens_per_s)", false);
    pts.push_back(p);
  }
  return pts;
}

void write_loss_png(const std::string& path, const std::vector<LossPoint>& pts, const std::string& title) {
  constexpr int W = 960, H = 540, left = 100, right = 30, top = 60, bottom = 70, s = 2;
  const int x0 = left, x1 = W - right, y0 = top, y1 = H - bottom;  // plot area, pixels
  Canvas cv(W, H);

  double smin = INFINITY, smax = -INFINITY, lmin = INFINITY, lmax = -INFINITY;
  bool any_train = false, any_val = false;
  for (const LossPoint& p : pts) {
    for (double l : {p.train_loss, p.val_loss}) {
      if (!std::isfinite(l)) continue;
      lmin = std::min(lmin, l), lmax = std::max(lmax, l);
      smin = std::min(smin, (double)p.step), smax = std::max(smax, (double)p.step);
    }
    any_train |= std::isfinite(p.train_loss);
    any_val |= std::isfinite(p.val_loss);
  }
  const bool empty = !any_train && !any_val;
  if (empty) smin = 0, smax = 1, lmin = 0, lmax = 1;
  if (smax - smin < 1) smin -= 1, smax += 1;
  if (lmax - lmin < 1e-6) lmin -= 0.5, lmax += 0.5;
  const double pad = 0.05 * (lmax - lmin);
  lmin -= pad, lmax += pad;
  constexpr int inset = 10;  // keeps markers at the first and last step inside the frame
  auto px = [&](double step) {
    return x0 + inset + (int)std::lround((step - smin) / (smax - smin) * (x1 - x0 - 2 * inset));
  };
  auto py = [&](double loss) { return y1 - (int)std::lround((loss - lmin) / (lmax - lmin) * (y1 - y0)); };

  // Grid, ticks and their labels.
  double ystep = 0, xstep = 0;
  for (double v : nice_ticks(lmin, lmax, 6, &ystep)) {
    const int y = py(v);
    cv.fill(x0 + 1, y, x1 - 1, y, kGrid);
    cv.fill(x0 - 6, y, x0 - 1, y, kBlack);
    const std::string l = tick_label(v, ystep);
    cv.text(x0 - 10 - Canvas::text_width(l, s), y - kGlyphHeight * s / 2, l, kText, s);
  }
  std::vector<double> xt = nice_ticks(smin, smax, 6, &xstep);
  if (xstep < 1) xt = nice_ticks(smin, smax, (int)std::max(1.0, smax - smin), &xstep);
  for (double v : xt) {
    const int x = px(v);
    cv.fill(x, y0 + 1, x, y1 - 1, kGrid);
    cv.fill(x, y1 + 1, x, y1 + 6, kBlack);
    const std::string l = tick_label(v, xstep);
    cv.text(x - Canvas::text_width(l, s) / 2, y1 + 12, l, kText, s);
  }
  cv.rect(x0, y0, x1, y1, kBlack);
  cv.text((x0 + x1 - Canvas::text_width("step", s)) / 2, y1 + 12 + kGlyphHeight * s + 12, "step", kText, s);
  cv.text(x0 - Canvas::text_width("loss", s) / 2, y0 - 12 - kGlyphHeight * s, "loss", kText, s);
  cv.text((W - Canvas::text_width(title, s)) / 2, 14, title, kBlack, s);

  // The curves, clipped to the plot area.
  cv.set_clip(x0 + 1, y0 + 1, x1 - 1, y1 - 1);
  for (int curve = 0; curve < 2; ++curve) {
    const Rgb c = curve == 0 ? kTrain : kVal;
    bool have_prev = false;
    int px0 = 0, py0 = 0;
    for (const LossPoint& p : pts) {
      const double l = curve == 0 ? p.train_loss : p.val_loss;
      if (!std::isfinite(l)) continue;
      const int x = px((double)p.step), y = py(l);
      if (have_prev) cv.line(px0, py0, x, y, c, 2);
      else cv.fill(x - 1, y - 1, x + 1, y + 1, c);  // seen even when it stays alone
      if (curve == 1) cv.fill(x - 3, y - 3, x + 3, y + 3, c);
      px0 = x, py0 = y, have_prev = true;
    }
  }
  cv.no_clip();
  if (empty) cv.text((x0 + x1 - Canvas::text_width("no data yet", s)) / 2, (y0 + y1) / 2, "no data yet", kText, s);

  // Legend, top right inside the plot.
  std::vector<std::pair<std::string, Rgb>> entries;
  if (any_train) entries.push_back({"train", kTrain});
  if (any_val) entries.push_back({"validation", kVal});
  if (!entries.empty()) {
    const int row = kGlyphHeight * s + 10, lw = 30 + 10 + Canvas::text_width("validation", s) + 20;
    const int lx1 = x1 - 12, lx0 = lx1 - lw, ly0 = y0 + 12, ly1 = ly0 + 10 + row * (int)entries.size();
    cv.fill(lx0, ly0, lx1, ly1, kWhite);
    cv.rect(lx0, ly0, lx1, ly1, kBlack);
    for (size_t i = 0; i < entries.size(); ++i) {
      const int cy = ly0 + 10 + row * (int)i + kGlyphHeight * s / 2;
      cv.line(lx0 + 10, cy, lx0 + 40, cy, entries[i].second, 2);
      if (entries[i].second.r == kVal.r) cv.fill(lx0 + 22, cy - 3, lx0 + 28, cy + 3, kVal);
      cv.text(lx0 + 50, cy - kGlyphHeight * s / 2, entries[i].first, kText, s);
    }
  }
  write_png_rgb(path, cv.data(), cv.width(), cv.height(), true);
}

}  // namespace tnl::train
