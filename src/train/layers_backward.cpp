// layers_backward.cpp: see layers_backward.h. Loops over rows run in parallel (OpenMP); each
// row's arithmetic is sequential, so results do not depend on the thread count except where
// a comment says so.
#include "train/layers_backward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tnl/error.h"

namespace tnl::train::ops {
namespace {
// The exponential of each precision: vectorizable in fp32, the libm one in fp64 (FD checks).
inline float exp_t(float x) { return exp_f32(x); }
inline double exp_t(double x) { return std::exp(x); }
}  // namespace

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n,
              (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

template <class T>
void linear_forward(const T* x, int64_t rows, int64_t k, const T* w, int64_t n, T* y, T beta) {
  gemm(false, true, rows, n, k, T(1), x, k, w, k, beta, y, n);
}

template <class T>
void linear_backward(const T* dy, const T* x, int64_t rows, int64_t k, const T* w, int64_t n, T* dx,
                     T dx_beta, T* dw) {
  if (dx) gemm(false, false, rows, k, n, T(1), dy, n, w, k, dx_beta, dx, k);  // (rows, k)
  gemm(true, false, n, k, rows, T(1), dy, n, x, k, T(1), dw, k);             // (n, k)
}

template <class T>
void srms_forward(const T* x, int64_t ld_x, int64_t rows, int64_t cols, T* y, int64_t ld_y, T* rstd) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * ld_x;
    T* yr = y + r * ld_y;
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += (double)xr[c] * (double)xr[c];
    const T inv = (T)(1.0 / std::sqrt(ss / (double)cols + 1e-6));
    for (int64_t c = 0; c < cols; ++c) yr[c] = xr[c] * inv;
    rstd[r] = inv;
  }
}

template <class T>
void srms_backward(const T* dy, int64_t ld_dy, const T* y, int64_t ld_y, const T* rstd, int64_t rows,
                   int64_t cols, T* dx, int64_t ld_dx, bool accumulate) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* dyr = dy + r * ld_dy;
    const T* yr = y + r * ld_y;
    T* dxr = dx + r * ld_dx;
    double dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += (double)dyr[c] * (double)yr[c];
    const T mean = (T)(dot / (double)cols), inv = rstd[r];
    if (accumulate) {
      for (int64_t c = 0; c < cols; ++c) dxr[c] += inv * (dyr[c] - yr[c] * mean);
    } else {
      for (int64_t c = 0; c < cols; ++c) dxr[c] = inv * (dyr[c] - yr[c] * mean);
    }
  }
}

template <class T>
void silu_forward(const T* pre, int64_t ld_pre, int64_t rows, int64_t cols, T* out, int64_t ld_out) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = pre + r * ld_pre;
    T* o = out + r * ld_out;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) o[c] = p[c] / (T(1) + exp_t(-p[c]));
  }
}

template <class T>
void silu_backward(const T* pre, int64_t ld_pre, int64_t rows, int64_t cols, T* d, int64_t ld_d) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = pre + r * ld_pre;
    T* dr = d + r * ld_d;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) {
      const T s = T(1) / (T(1) + exp_t(-p[c]));
      dr[c] *= s * (T(1) + p[c] * (T(1) - s));
    }
  }
}

template <class T>
void lrpe_backward(const T* dout, const T* x, int64_t ld_x, int64_t rows, int64_t heads, int64_t dh,
                   const T* theta, const int64_t* positions, T* dx, int64_t ld_dx, T* dtheta) {
  const int64_t hd = heads * dh;
  // dθ: one partial sum per thread (static schedule), added in thread order: deterministic for a
  // given thread count.
  const int nt = omp_get_max_threads();
  std::vector<double> partial((size_t)nt * hd, 0.0);
#pragma omp parallel num_threads(nt)
  {
    double* acc = partial.data() + (size_t)omp_get_thread_num() * hd;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const T p = (T)positions[r];
      for (int64_t h = 0; h < heads; ++h) {
        const T* xh = x + r * ld_x + h * dh;
        const T* dh_ = dout + (r * heads + h) * 2 * dh;
        T* dxh = dx + r * ld_dx + h * dh;
        for (int64_t c = 0; c < dh; ++c) {
          const T angle = theta[h * dh + c] * p;
          const T cs = std::cos(angle), sn = std::sin(angle);
          dxh[c] = dh_[c] * cs + dh_[dh + c] * sn;
          acc[h * dh + c] += (double)(p * xh[c] * (dh_[dh + c] * cs - dh_[c] * sn));
        }
      }
    }
  }
  for (int t = 0; t < nt; ++t)
    for (int64_t i = 0; i < hd; ++i) dtheta[i] += (T)partial[(size_t)t * hd + i];
}

template <class T>
void mul_forward(const T* a, int64_t ld_a, const T* b, int64_t ld_b, int64_t rows, int64_t cols, T* y,
                 int64_t ld_y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * ld_y + c] = a[r * ld_a + c] * b[r * ld_b + c];
}

template <class T>
void mul_backward(const T* dy, int64_t ld_dy, const T* a, int64_t ld_a, const T* b, int64_t ld_b,
                  int64_t rows, int64_t cols, T* da, int64_t ld_da, T* db, int64_t ld_db) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const T g = dy[r * ld_dy + c];
      da[r * ld_da + c] = g * b[r * ld_b + c];
      db[r * ld_db + c] = g * a[r * ld_a + c];
    }
}

template <class T>
void embed_forward(const T* embed, int64_t vocab, int64_t d, const int32_t* ids, int64_t rows, T scale,
                   T* h) {
  for (int64_t r = 0; r < rows; ++r)
    TNL_ARG_CHECK(ids[r] >= 0 && ids[r] < vocab, "tnl::train", "ids", "token ", ids[r], " at row ", r,
                  " is outside the vocabulary 0..", vocab - 1);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* e = embed + (int64_t)ids[r] * d;
    for (int64_t c = 0; c < d; ++c) h[r * d + c] = scale * e[c];
  }
}

template <class T>
void embed_backward(const T* dh, const int32_t* ids, int64_t rows, int64_t d, T scale, T* dembed) {
#pragma omp parallel
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = d * t / nt, c1 = d * (t + 1) / nt;  // this thread's columns
    for (int64_t r = 0; r < rows; ++r) {
      T* e = dembed + (int64_t)ids[r] * d;
      for (int64_t c = c0; c < c1; ++c) e[c] += scale * dh[r * d + c];
    }
  }
}

template <class T>
double cross_entropy(T* logits, int64_t rows, int64_t vocab, const int32_t* targets, T grad_scale,
                     int64_t* count) {
  // Per-row losses summed in row order afterwards: the total does not depend on the threads.
  std::vector<double> row_loss(rows, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    T* l = logits + r * vocab;
    const int32_t tgt = targets[r];
    if (tgt < 0) {
      if (grad_scale != T(0)) std::fill(l, l + vocab, T(0));
      continue;
    }
    const T at_target = l[tgt];
    T mx = l[0];
#pragma omp simd reduction(max : mx)
    for (int64_t c = 0; c < vocab; ++c) mx = l[c] > mx ? l[c] : mx;
#pragma omp simd
    for (int64_t c = 0; c < vocab; ++c) l[c] = exp_t(l[c] - mx);  // one exp per logit, kept
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < vocab; ++c) sum += (double)l[c];
    row_loss[r] = std::log(sum) + (double)mx - (double)at_target;
    if (grad_scale != T(0)) {
      const T norm = (T)((double)grad_scale / sum);
#pragma omp simd
      for (int64_t c = 0; c < vocab; ++c) l[c] *= norm;
      l[tgt] -= grad_scale;
    }
  }
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    total += row_loss[r];
    *count += targets[r] >= 0;
  }
  return total;
}

#define TNL_INSTANTIATE(T)                                                                               \
  template void linear_forward<T>(const T*, int64_t, int64_t, const T*, int64_t, T*, T);                 \
  template void linear_backward<T>(const T*, const T*, int64_t, int64_t, const T*, int64_t, T*, T, T*);  \
  template void srms_forward<T>(const T*, int64_t, int64_t, int64_t, T*, int64_t, T*);                   \
  template void srms_backward<T>(const T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t, T*,   \
                                 int64_t, bool);                                                         \
  template void silu_forward<T>(const T*, int64_t, int64_t, int64_t, T*, int64_t);                       \
  template void silu_backward<T>(const T*, int64_t, int64_t, int64_t, T*, int64_t);                      \
  template void lrpe_backward<T>(const T*, const T*, int64_t, int64_t, int64_t, int64_t, const T*,       \
                                 const int64_t*, T*, int64_t, T*);                                       \
  template void mul_forward<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, T*, int64_t);     \
  template void mul_backward<T>(const T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t,        \
                                int64_t, T*, int64_t, T*, int64_t);                                      \
  template void embed_forward<T>(const T*, int64_t, int64_t, const int32_t*, int64_t, T, T*);            \
  template void embed_backward<T>(const T*, const int32_t*, int64_t, int64_t, T, T*);                    \
  template double cross_entropy<T>(T*, int64_t, int64_t, const int32_t*, T, int64_t*);

TNL_INSTANTIATE(float)
TNL_INSTANTIATE(double)
#undef TNL_INSTANTIATE

}  // namespace tnl::train::ops
