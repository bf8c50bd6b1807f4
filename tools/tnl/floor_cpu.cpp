// floor_cpu.cpp: measures this CPU's copy bandwidth and SGEMM rate (OpenBLAS).
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "buffer.h"
#include "floor.h"
#include "tnl/device.h"

namespace tnl::cli {
namespace {

template <class F>
double best_ms(int reps, F&& f) {
  Timer t(Device::cpu);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    t.start();
    f();
    best = std::min(best, t.stop_ms());
  }
  return best;
}

}  // namespace

Floor measure_cpu_floor(int threads) {
  Floor fl;
  // Copy bandwidth: 1 GiB -> 1 GiB, split among the threads, pages touched first.
  const size_t bytes = size_t(1) << 30;
  Buffer src(Device::cpu, bytes), dst(Device::cpu, bytes);
  src.fill_normal(DType::f32, bytes / 4, 1.0, 1);
  dst.fill_normal(DType::f32, bytes / 4, 1.0, 2);
  const int nt = threads > 0 ? threads : cpu_thread_count();
  const double copy_ms = best_ms(5, [&] {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int i = 0; i < nt; ++i) {
      const size_t chunk = bytes / nt;
      std::memcpy((char*)dst.data() + i * chunk, (const char*)src.data() + i * chunk,
                  i == nt - 1 ? bytes - i * chunk : chunk);
    }
  });
  fl.bandwidth_gbs = 2.0 * (double)bytes / (copy_ms * 1e-3) / 1e9;
  fl.bandwidth_how = "memcpy 1 GiB, read+write, best of 5";

  // SGEMM 2048³ through OpenBLAS (its kernels chosen by OPENBLAS_CORETYPE, see main.cpp).
  const int n = 2048;
  std::vector<float> a((size_t)n * n), b((size_t)n * n), c((size_t)n * n);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = (float)normal_sample(3, i);
    b[i] = (float)normal_sample(4, i);
  }
  openblas_set_num_threads(nt);
  auto gemm = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(),
                n, 0.0f, c.data(), n);
  };
  gemm();  // warm-up
  const double gemm_ms = best_ms(3, gemm);
  fl.gemm_gflops = 2.0 * n * (double)n * n / (gemm_ms * 1e-3) / 1e9;
  fl.gemm_how = std::string("OpenBLAS sgemm 2048³ (") + openblas_get_corename() + " kernels), best of 3";
  return fl;
}

}  // namespace tnl::cli
