// layers_cpu.cpp: see layers_cpu.h.
#include "model/layers_cpu.h"

#include <cblas.h>

#include <cmath>

namespace tnl::model::cpu {
namespace {
// Below this many elements a loop runs on the calling thread: forking a team costs more than
// the work (a decode step of a small model is dozens of such loops).
constexpr int64_t kParallelMin = 1 << 15;
}  // namespace

void linear(const float* x, int64_t rows, int64_t k, const float* w, int64_t n, float* y, float beta) {
  if (rows == 0) return;
  if (rows == 1) {  // one token (batch-1 decode): a matrix-vector product, bound by reading W
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0f, w, (int)k, x, 1, beta, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)k, 1.0f, x, (int)k, w,
              (int)k, beta, y, (int)n);
}

void srms_norm(const float* x, int64_t rows, int64_t cols, int64_t ld_x, float* y, int64_t ld_y) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld_x;
    float* yr = y + r * ld_y;
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += (double)xr[c] * xr[c];
    const float inv = (float)(1.0 / std::sqrt(ss / (double)cols + 1e-6));
    for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * inv;
  }
}

void silu_inplace(float* x, int64_t rows, int64_t cols, int64_t ld) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float& v = x[r * ld + c];
      v = v / (1.0f + std::exp(-v));
    }
}

template <class T>
void lrpe(const T* x, int64_t rows, int64_t heads, int64_t dh, int64_t ld_x, const T* theta,
          const int64_t* positions, T* out) {
#pragma omp parallel for schedule(static) if (rows * heads * dh >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const T p = (T)positions[r];
    for (int64_t h = 0; h < heads; ++h) {
      const T* xh = x + r * ld_x + h * dh;
      T* oh = out + (r * heads + h) * 2 * dh;
      for (int64_t c = 0; c < dh; ++c) {
        const T angle = theta[h * dh + c] * p;  // in T: fp32, as the released model computes it
        oh[c] = xh[c] * std::cos(angle);
        oh[dh + c] = xh[c] * std::sin(angle);
      }
    }
  }
}
template void lrpe<float>(const float*, int64_t, int64_t, int64_t, int64_t, const float*, const int64_t*,
                          float*);
template void lrpe<double>(const double*, int64_t, int64_t, int64_t, int64_t, const double*,
                           const int64_t*, double*);

void mul_inplace(float* y, int64_t ld_y, const float* a, int64_t ld_a, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * ld_y + c] *= a[r * ld_a + c];
}

}  // namespace tnl::model::cpu
