// testing.h: helpers shared by the tests: host tensors of any dtype, random fills scaled like
// activations, NaN poisoning, and the relative-error metric of spec §4.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "tnl/attention.h"

namespace tnl::testing {

// A flat host buffer of `numel` elements of `dtype`.
struct HostTensor {
  DType dtype = DType::f32;
  int64_t numel = 0;
  std::vector<unsigned char> bytes;

  HostTensor() = default;
  HostTensor(DType dt, int64_t n) : dtype(dt), numel(n), bytes(n * dtype_size(dt)) {}
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }

  double get(int64_t i) const;
  void set(int64_t i, double x);
  void fill_normal(std::mt19937_64& rng, double stddev);
  void poison();                          // every element NaN
  std::vector<double> to_f64() const;
  HostTensor converted(DType to) const;   // element-wise copy into another dtype
};

// ‖out − ref‖ / ‖ref‖ over all elements; +inf when `out` has a NaN or Inf.
// When ‖ref‖ is 0, returns ‖out‖ (absolute).
double rel_error(const HostTensor& out, const HostTensor& ref);
double rel_error(const std::vector<double>& out, const std::vector<double>& ref);
double rel_error(const double* out, const double* ref, size_t n);

// A seed that differs on every run (fresh inputs each time); printed by the tests that use it.
uint64_t fresh_seed();

// The seed of a test: $TNL_TEST_SEED when set (to replay a failure), else fresh_seed().
uint64_t test_seed();

}  // namespace tnl::testing
