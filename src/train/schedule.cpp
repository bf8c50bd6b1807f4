// schedule.cpp: see schedule.h.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "tnl/error.h"

namespace tnl::train {

void LrSchedule::validate() const {
  const char* fn = "tnl::train::LrSchedule";
  TNL_ARG_CHECK(std::isfinite(lr_max) && lr_max >= 0, fn, "lr_max", "expected a finite value >= 0, got ", lr_max);
  TNL_ARG_CHECK(lr_min >= 0 && lr_min <= lr_max, fn, "lr_min", "expected 0 <= lr_min <= lr_max (", lr_max,
                "), got ", lr_min);
  TNL_ARG_CHECK(warmup_steps >= 0, fn, "warmup_steps", "expected >= 0, got ", warmup_steps);
  TNL_ARG_CHECK(kind != kCosine || total_steps > warmup_steps, fn, "total_steps",
                "a cosine schedule needs total_steps > warmup_steps (", warmup_steps, "), got ", total_steps);
  TNL_ARG_CHECK(kind == kConstant || kind == kCosine || kind == kInvSqrt, fn, "kind", "unknown kind ", (int)kind);
}

double LrSchedule::at(int64_t step) const {
  validate();
  TNL_ARG_CHECK(step >= 0, "tnl::train::LrSchedule::at", "step", "expected >= 0, got ", step);
  if (step < warmup_steps) return lr_max * (double)(step + 1) / (double)warmup_steps;
  switch (kind) {
    case kConstant:
      return lr_max;
    case kCosine: {
      const double progress =
          std::min(1.0, (double)(step - warmup_steps) / (double)(total_steps - warmup_steps));
      return lr_min + (lr_max - lr_min) * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
    case kInvSqrt: {
      const double w = (double)std::max<int64_t>(warmup_steps, 1);
      return std::max(lr_min, lr_max * std::sqrt(w / (double)std::max<int64_t>(step, 1)));
    }
  }
  return lr_max;
}

LrSchedule::Kind parse_schedule_kind(const std::string& text, const std::string& flag) {
  if (text == "constant") return LrSchedule::kConstant;
  if (text == "cosine") return LrSchedule::kCosine;
  if (text == "inv-sqrt") return LrSchedule::kInvSqrt;
  throw ArgumentError(detail::cat("flag '", flag, "': expected constant, cosine or inv-sqrt, got '", text, "'"));
}

const char* schedule_kind_name(LrSchedule::Kind k) {
  switch (k) {
    case LrSchedule::kConstant: return "constant";
    case LrSchedule::kCosine: return "cosine";
    case LrSchedule::kInvSqrt: return "inv-sqrt";
  }
  return "?";
}

}  // namespace tnl::train
