// init.cpp: see init.h.
#include "model/init.h"

#include <cmath>

namespace tnl::model {

void fill_normal(float* w, int64_t n, uint64_t seed, uint64_t stream, double stddev) {
  const uint64_t key = seed * 0x9e3779b97f4a7c15ull + stream;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    auto mix = [](uint64_t x) {  // splitmix64's finalizer
      x += 0x9e3779b97f4a7c15ull;
      x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
      x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
      return x ^ (x >> 31);
    };
    const double u1 = ((double)(mix(key ^ mix(2 * i)) >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = (double)(mix(key ^ mix(2 * i + 1)) >> 11) * 0x1.0p-53;
    w[i] = (float)(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
}

}  // namespace tnl::model
