// test_schedule.cpp: learning-rate schedules: warmup endpoints, cosine reaching lr_min at
// total_steps, inverse square root continuous at the end of warmup, and bad settings named.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tnl/error.h"
#include "train/schedule.h"

namespace tnl::train {
namespace {

LrSchedule make(LrSchedule::Kind k, double lr_max, double lr_min, int64_t warmup, int64_t total) {
  LrSchedule s;
  s.kind = k, s.lr_max = lr_max, s.lr_min = lr_min, s.warmup_steps = warmup, s.total_steps = total;
  return s;
}

TEST(LrSchedule, WarmupIsLinearUpToLrMax) {
  for (LrSchedule::Kind k : {LrSchedule::kConstant, LrSchedule::kCosine, LrSchedule::kInvSqrt}) {
    const LrSchedule s = make(k, 1e-3, 1e-5, 100, 1000);
    EXPECT_DOUBLE_EQ(s.at(0), 1e-5) << "first step: lr_max / warmup";
    EXPECT_DOUBLE_EQ(s.at(49), 0.5e-3);
    EXPECT_DOUBLE_EQ(s.at(99), 1e-3) << "last warmup step reaches lr_max";
    EXPECT_DOUBLE_EQ(s.at(100), 1e-3) << "decay starts at lr_max";
    for (int64_t i = 1; i < 100; ++i) EXPECT_GT(s.at(i), s.at(i - 1));
  }
}

TEST(LrSchedule, CosineReachesLrMinAtTotalSteps) {
  const LrSchedule s = make(LrSchedule::kCosine, 3e-4, 3e-5, 10, 110);
  EXPECT_NEAR(s.at(60), (3e-4 + 3e-5) / 2, 1e-15) << "half way: the mean";
  EXPECT_DOUBLE_EQ(s.at(110), 3e-5);
  EXPECT_DOUBLE_EQ(s.at(500), 3e-5) << "stays at lr_min after total_steps";
  for (int64_t i = 11; i <= 110; ++i) EXPECT_LT(s.at(i), s.at(i - 1));
  const LrSchedule no_warmup = make(LrSchedule::kCosine, 1.0, 0.0, 0, 4);
  EXPECT_DOUBLE_EQ(no_warmup.at(0), 1.0);
  EXPECT_NEAR(no_warmup.at(2), 0.5, 1e-15);
  EXPECT_NEAR(no_warmup.at(4), 0.0, 1e-15);
}

TEST(LrSchedule, InvSqrtIsContinuousAtTheEndOfWarmup) {
  const LrSchedule s = make(LrSchedule::kInvSqrt, 1e-3, 0.0, 400, 0);
  EXPECT_DOUBLE_EQ(s.at(399), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(400), 1e-3);
  EXPECT_NEAR(s.at(401) / s.at(400), std::sqrt(400.0 / 401.0), 1e-15);
  EXPECT_NEAR(s.at(1600), 0.5e-3, 1e-15) << "four times the warmup: half";
  const LrSchedule floored = make(LrSchedule::kInvSqrt, 1e-3, 4e-4, 400, 0);
  EXPECT_DOUBLE_EQ(floored.at(100000), 4e-4) << "floored at lr_min";
  const LrSchedule constant = make(LrSchedule::kConstant, 2e-4, 0.0, 0, 0);
  EXPECT_DOUBLE_EQ(constant.at(0), 2e-4);
  EXPECT_DOUBLE_EQ(constant.at(123456), 2e-4);
}

TEST(LrSchedule, BadSettingsAreNamed) {
  auto expect_named = [](const LrSchedule& s, const char* field) {
    try {
      s.at(0);
      FAIL() << "accepted a bad " << field;
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  expect_named(make(LrSchedule::kCosine, 1e-3, 0, 100, 100), "total_steps");
  expect_named(make(LrSchedule::kCosine, 1e-3, 2e-3, 0, 100), "lr_min");
  expect_named(make(LrSchedule::kConstant, -1, 0, 0, 0), "lr_max");
  expect_named(make(LrSchedule::kConstant, 1e-3, 0, -1, 0), "warmup_steps");
  EXPECT_THROW(make(LrSchedule::kConstant, 1e-3, 0, 0, 0).at(-1), ArgumentError);
  EXPECT_EQ(parse_schedule_kind("cosine"), LrSchedule::kCosine);
  EXPECT_EQ(parse_schedule_kind("inv-sqrt"), LrSchedule::kInvSqrt);
  EXPECT_EQ(parse_schedule_kind("constant"), LrSchedule::kConstant);
  try {
    parse_schedule_kind("linear", "--schedule");
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("--schedule"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("linear"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tnl::train
