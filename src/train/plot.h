// plot.h: the loss curve of a training run, as CSV (for people, spreadsheets, and resuming) and
// as a PNG line chart (train and validation loss against step), with no library beyond libc: the
// PNG encoder (png.h) and the bitmap font (bitmap_font.h) are this project's own.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace tnl::train {

struct LossPoint {
  int64_t step = 0, tokens = 0;
  double train_loss = NAN, val_loss = NAN;  // NaN: none at this step (an empty CSV field)
  double lr = 0, grad_norm = 0, tokens_per_s = 0;
};

// Header "step,tokens,train_loss,val_loss,lr,grad_norm,tokens_per_s", then a line per point;
// losses with 9 significant digits (a float round-trips), NaN as an empty field. Atomic.
void write_loss_csv(const std::string& path, const std::vector<LossPoint>& pts);
// Reads what write_loss_csv wrote; throws tnl::Error naming the file and line otherwise.
std::vector<LossPoint> read_loss_csv(const std::string& path);

// A 960x540 RGB chart: train loss (blue line) and validation loss (orange line with dots)
// against step, numeric tick labels on both axes, axis names, a legend and the title. Points
// with NaN losses are skipped. Atomic.
void write_loss_png(const std::string& path, const std::vector<LossPoint>& pts, const std::string& title);

}  // namespace tnl::train
