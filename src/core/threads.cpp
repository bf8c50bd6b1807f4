// threads.cpp: CPU thread count.
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "tnl/device.h"

namespace tnl {

int cpu_thread_count() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  const unsigned n = std::thread::hardware_concurrency();
  return n ? (int)n : 1;
#endif
}

}  // namespace tnl
