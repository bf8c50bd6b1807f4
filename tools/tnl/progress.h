// progress.h: a one-line progress bar on stderr: [#####.....] 45%  12.3K/27.0K tok  850 tok/s  ETA 17s
// followed by a caller's note (e.g. running perplexity). Redraws at most 10 times a second.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace tnl::cli {

class Progress {
 public:
  Progress(double total, const char* unit) : total_(total), unit_(unit), t0_(now()) {}
  void update(double done, const std::string& note = "", bool force = false) {
    const double t = now();
    if (!force && t - last_ < 0.1) return;
    last_ = t;
    const double frac = total_ > 0 ? done / total_ : 1.0;
    const int width = 24, fill = (int)(frac * width + 0.5);
    const double rate = done / std::max(t - t0_, 1e-9);
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    std::string bar(fill, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r[%s] %3.0f%%  %s/%s %s  %s %s/s  ETA %s  %s\x1b[K", bar.c_str(), 100 * frac,
                 human(done).c_str(), human(total_).c_str(), unit_, human(rate).c_str(), unit_,
                 duration(eta).c_str(), note.c_str());
    std::fflush(stderr);
  }
  void finish(double done, const std::string& note = "") {
    update(done, note, true);
    std::fputc('\n', stderr);
  }

 private:
  static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
  static std::string human(double n) {
    char s[32];
    if (n >= 1e6) std::snprintf(s, sizeof s, "%.2fM", n / 1e6);
    else if (n >= 1e3) std::snprintf(s, sizeof s, "%.1fK", n / 1e3);
    else std::snprintf(s, sizeof s, "%.0f", n);
    return s;
  }
  static std::string duration(double s) {
    char b[32];
    if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) std::snprintf(b, sizeof b, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else std::snprintf(b, sizeof b, "%ds", (int)s);
    return b;
  }
  double total_;
  const char* unit_;
  double t0_, last_ = 0;
};

}  // namespace tnl::cli
