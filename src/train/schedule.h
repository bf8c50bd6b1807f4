// schedule.h: the learning-rate schedule: linear warmup, then constant, cosine or
// inverse-square-root decay. Steps count from 0 (the first optimizer step is step 0).
//
//   warmup   step < W:  lr_max · (step + 1) / W             (reaches lr_max at step W − 1)
//   constant step ≥ W:  lr_max
//   cosine   step ≥ W:  lr_min + (lr_max − lr_min) · (1 + cos(π · min(1, (step − W) / (T − W)))) / 2
//                       (lr_max at W, lr_min from T = total_steps on)
//   inv-sqrt step ≥ W:  max(lr_min, lr_max · sqrt(max(W, 1) / max(step, 1)))   (lr_max at W)
#pragma once

#include <cstdint>
#include <string>

namespace tnl::train {

struct LrSchedule {
  enum Kind { kConstant, kCosine, kInvSqrt } kind = kCosine;
  double lr_max = 3e-4, lr_min = 0.0;
  int64_t warmup_steps = 0, total_steps = 0;

  // Throws tnl::ArgumentError naming the field (lr_max >= 0, 0 <= lr_min <= lr_max,
  // warmup_steps >= 0, and for cosine total_steps > warmup_steps).
  void validate() const;
  double at(int64_t step) const;  // validates, and step >= 0
};

// "constant" | "cosine" | "inv-sqrt"; otherwise an ArgumentError naming `flag`.
LrSchedule::Kind parse_schedule_kind(const std::string& text, const std::string& flag = "--lr-schedule");
const char* schedule_kind_name(LrSchedule::Kind k);

}  // namespace tnl::train
