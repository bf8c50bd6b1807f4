// test_reference.cpp: the two fp64 oracles (quadratic form, recurrence) agree, on fresh inputs.
#include <gtest/gtest.h>

#include "testing/testing.h"

namespace tnl {
namespace {

using testing::HostTensor;

TEST(Reference, QuadraticMatchesRecurrence) {
  const uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t B = 2, N = 37, H = 3, D = 5, E = 7;
  HostTensor q(DType::f64, B * N * H * D), k(DType::f64, B * N * H * D), v(DType::f64, B * N * H * E);
  HostTensor s0(DType::f64, B * H * D * E);
  q.fill_normal(rng, 1.0 / std::sqrt((double)D));
  k.fill_normal(rng, 1.0 / std::sqrt((double)D));
  v.fill_normal(rng, 1.0);
  s0.fill_normal(rng, 1.0);
  const std::vector<float> slopes = {0.0f, 0.05f, 1.0f};
  HostTensor o1(DType::f64, B * N * H * E), o2 = o1, f1(DType::f64, B * H * D * E), f2 = f1;
  o1.poison(); o2.poison(); f1.poison(); f2.poison();
  AttnForwardParams p;
  p.dtype = DType::f64;
  p.shape = {B, N, H, D, E};
  p.q = seq_tensor(q.data(), Layout::bhnd, B, N, H, D);
  p.k = seq_tensor(k.data(), Layout::bhnd, B, N, H, D);
  p.v = seq_tensor(v.data(), Layout::bhnd, B, N, H, E);
  p.slopes = slopes.data();
  p.scale = 0.5f;
  p.initial_state = s0.data();
  p.o = seq_tensor(o1.data(), Layout::bhnd, B, N, H, E);
  p.final_state = f1.data();
  reference::attention_forward(p);
  p.o.data = o2.data();
  p.final_state = f2.data();
  reference::attention_forward_recurrent(p);
  EXPECT_LT(testing::rel_error(o1, o2), 1e-12);
  EXPECT_LT(testing::rel_error(f1, f2), 1e-12);
}

}  // namespace
}  // namespace tnl
