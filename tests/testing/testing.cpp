// testing.cpp: see testing.h.
#include "testing/testing.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "backends/cpu/tensor_access.h"

namespace tnl::testing {

double HostTensor::get(int64_t i) const { return cpu::load_as_double(data(), dtype, i); }
void HostTensor::set(int64_t i, double x) { cpu::store_from_double(data(), dtype, i, x); }

void HostTensor::fill_normal(std::mt19937_64& rng, double stddev) {
  std::normal_distribution<double> dist(0.0, stddev);
  for (int64_t i = 0; i < numel; ++i) set(i, dist(rng));
}

void HostTensor::poison() {
  for (int64_t i = 0; i < numel; ++i) set(i, std::numeric_limits<double>::quiet_NaN());
}

std::vector<double> HostTensor::to_f64() const {
  std::vector<double> out(numel);
  for (int64_t i = 0; i < numel; ++i) out[i] = get(i);
  return out;
}

HostTensor HostTensor::converted(DType to) const {
  HostTensor out(to, numel);
  for (int64_t i = 0; i < numel; ++i) out.set(i, get(i));
  return out;
}

double rel_error(const std::vector<double>& out, const std::vector<double>& ref) {
  if (out.size() != ref.size()) return std::numeric_limits<double>::infinity();
  return rel_error(out.data(), ref.data(), out.size());
}

double rel_error(const double* out, const double* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) return std::numeric_limits<double>::infinity();
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double rel_error(const HostTensor& out, const HostTensor& ref) {
  return rel_error(out.to_f64(), ref.to_f64());
}

uint64_t fresh_seed() {
  return (uint64_t)std::chrono::high_resolution_clock::now().time_since_epoch().count();
}

uint64_t test_seed() {
  const char* env = std::getenv("TNL_TEST_SEED");
  if (env != nullptr && *env != '\0') return std::strtoull(env, nullptr, 10);
  return fresh_seed();
}

}  // namespace tnl::testing
