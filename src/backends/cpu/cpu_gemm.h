// cpu_gemm.h: the compute kernels of the fast CPU backend, on small fp32 tiles in scratch:
// a register-blocked micro-GEMM (AVX-512, or portable C++), a driver with triangular ranges for
// the causal blocks, an fp32 tile transpose, and the decay mask of a (C, C) score tile.
//
// Tiles are row-major with zero padding: every M is a multiple of kMR, every N a multiple of 16.
#pragma once

#include <algorithm>
#include <cstdint>

#include "backends/cpu/cpu_common.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 flags its own _mm512_undefined_*() (the self-initialized "__Y" inside many AVX-512
// intrinsics) as maybe-uninitialized once inlined (GCC PR 105593). Not ours to fix.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define TNL_CPU_AVX512 1
#endif

namespace tnl::cpu {

constexpr int kMR = 8;   // rows of a micro-tile
constexpr int kNV = 2;   // 16-float vectors per micro-tile row (micro-tile: kMR x 16·kNV)

// C (MR, 16·NV) = beta·C + A (MR, K) · B (K, 16·NV).
// A's element (m, k) is A[m·lda + k], or A[k·lda + m] when ACol (A stored transposed).
// beta == 0 never reads C.
template <int MR, int NV, bool ACol>
inline void micro_kernel(int K, const float* __restrict A, int64_t lda,
                         const float* __restrict B, int64_t ldb, float* __restrict C,
                         int64_t ldc, float beta) {
#ifdef TNL_CPU_AVX512
  __m512 acc[MR][NV];
  const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      acc[r][j] = beta == 0.0f ? _mm512_setzero_ps()
                               : _mm512_mul_ps(vb, _mm512_loadu_ps(C + r * ldc + 16 * j));
  for (int k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) b[j] = _mm512_loadu_ps(B + k * ldb + 16 * j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(ACol ? A[k * lda + r] : A[r * lda + k]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(a, b[j], acc[r][j]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) _mm512_storeu_ps(C + r * ldc + 16 * j, acc[r][j]);
#else
  constexpr int NR = 16 * NV;
  float acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int n = 0; n < NR; ++n) acc[r][n] = beta == 0.0f ? 0.0f : beta * C[r * ldc + n];
  for (int k = 0; k < K; ++k)
    for (int r = 0; r < MR; ++r) {
      const float a = ACol ? A[k * lda + r] : A[r * lda + k];
      for (int n = 0; n < NR; ++n) acc[r][n] += a * B[k * ldb + n];
    }
  for (int r = 0; r < MR; ++r)
    for (int n = 0; n < NR; ++n) C[r * ldc + n] = acc[r][n];
#endif
}

// Which part of a tile a row panel [m0, m0 + kMR) touches, for causal (triangular) operands.
enum class Tri {
  none,   // everything
  lower,  // ntri: columns n < round16(m0 + MR) only;  ktri: k < m0 + MR (A lower triangular)
  upper,  // ntri: columns n >= floor16(m0) only;      ktri: k >= m0     (A upper triangular)
};

// C (M, N) = beta·C + A (M, K) · B (K, N), with A accessed as in micro_kernel.
// M % kMR == 0 and N % 16 == 0 (padded tiles). With ntri != none the columns outside each
// panel's range are left untouched; with ktri != none the skipped products are zeros of A.
// `pf` (optional) issues a few queued prefetches per row panel.
template <bool ACol>
void gemm(int M, int N, int K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
          int64_t ldc, float beta, Tri ntri = Tri::none, Tri ktri = Tri::none,
          Prefetcher* pf = nullptr) {
  for (int m0 = 0; m0 < M; m0 += kMR) {
    if (pf) pf->step();
    int n_lo = 0, n_hi = N, k_lo = 0, k_hi = K;
    if (ntri == Tri::lower) n_hi = std::min<int>(N, (int)round_up(m0 + kMR, 16));
    if (ntri == Tri::upper) n_lo = m0 / 16 * 16;
    if (ktri == Tri::lower) k_hi = std::min(K, m0 + kMR);
    if (ktri == Tri::upper) k_lo = std::min(K, m0);
    const int kk = std::max(0, k_hi - k_lo);
    const float* a = ACol ? A + (int64_t)k_lo * lda + m0 : A + (int64_t)m0 * lda + k_lo;
    const float* b = B + (int64_t)k_lo * ldb;
    float* c = C + (int64_t)m0 * ldc;
    int n = n_lo;
    for (; n + 16 * kNV <= n_hi; n += 16 * kNV)
      micro_kernel<kMR, kNV, ACol>(kk, a, lda, b + n, ldb, c + n, ldc, beta);
    for (; n < n_hi; n += 16) micro_kernel<kMR, 1, ACol>(kk, a, lda, b + n, ldb, c + n, ldc, beta);
  }
}

// dst (cols, rows) = src (rows, cols)ᵀ; rows and cols multiples of 16.
inline void transpose(int rows, int cols, const float* __restrict src, int64_t lds,
                      float* __restrict dst, int64_t ldd) {
#ifdef TNL_CPU_AVX512
  for (int r0 = 0; r0 < rows; r0 += 16)
    for (int c0 = 0; c0 < cols; c0 += 16) {
      __m512 x[16], t[16];
      for (int i = 0; i < 16; ++i) x[i] = _mm512_loadu_ps(src + (int64_t)(r0 + i) * lds + c0);
      // 1: interleave 32-bit pairs of rows (2i, 2i+1).
      for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(x[2 * i], x[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(x[2 * i], x[2 * i + 1]);
      }
      // 2: interleave 64-bit pairs: (t0,t2), (t1,t3), ... within groups of four rows.
      for (int g = 0; g < 4; ++g)
        for (int h = 0; h < 2; ++h) {
          const __m512d a = _mm512_castps_pd(t[4 * g + h]), b = _mm512_castps_pd(t[4 * g + h + 2]);
          x[4 * g + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
          x[4 * g + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
      // Now x[4g + j] holds, in each 128-bit lane L, column (4L + j) of rows 4g..4g+3.
      // 3: gather lanes {0,2} / {1,3} of row groups (g, g+1) for g in {0, 2}.
      for (int g = 0; g < 2; ++g)
        for (int j = 0; j < 4; ++j) {
          const __m512 a = x[8 * g + j], b = x[8 * g + 4 + j];
          t[8 * g + j] = _mm512_mask_shuffle_f32x4(a, 0xffff, a, b, 0x88);      // lanes a0 a2 b0 b2
          t[8 * g + 4 + j] = _mm512_mask_shuffle_f32x4(a, 0xffff, a, b, 0xdd);  // lanes a1 a3 b1 b3
        }
      // 4: combine the two halves of the rows.
      for (int j = 0; j < 8; ++j) {
        const __m512 a = t[j], b = t[8 + j];
        x[j] = _mm512_mask_shuffle_f32x4(a, 0xffff, a, b, 0x88);
        x[8 + j] = _mm512_mask_shuffle_f32x4(a, 0xffff, a, b, 0xdd);
      }
      // x[s] now holds column s of the 16 rows.
      for (int s = 0; s < 16; ++s) _mm512_storeu_ps(dst + (int64_t)(c0 + s) * ldd + r0, x[s]);
    }
#else
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[(int64_t)c * ldd + r] = src[(int64_t)r * lds + c];
#endif
}

// Rows [0, L) of a (C, C) score tile A: A[a, b] ← scale·λ^{a-b}·A[a, b] for b ≤ a, 0 for
// a < b < round16(a + 1) (the part the causal products read).
inline void apply_decay_mask(float* A, int64_t lda, int L, float scale, const DecayTable& dec) {
  for (int a = 0; a < L; ++a) {
    const float* m = dec.mask_row(a);
    float* row = A + (int64_t)a * lda;
    const int nb = (int)round_up(a + 1, 16);
#ifdef TNL_CPU_AVX512
    const __m512 vs = _mm512_set1_ps(scale);
    for (int b = 0; b < nb; b += 16)
      _mm512_storeu_ps(row + b, _mm512_mul_ps(_mm512_mul_ps(vs, _mm512_loadu_ps(m + b)),
                                              _mm512_loadu_ps(row + b)));
#else
    for (int b = 0; b < nb; ++b) row[b] = m[b] == 0.0f ? 0.0f : scale * m[b] * row[b];
#endif
  }
}

// State update S ← decay·S + dS for a (rows, n) tile, compensated (Fast2Sum): `comp` carries
// the low-order part lost by each add into the next block, so a long scan with s = 0
// (10^6 tokens = 15625 block updates) keeps fp32 accuracy. comp starts at 0.
inline void accumulate_state(int rows, int n, float* S, float* comp, const float* dS, int64_t ld,
                             float decay) {
  for (int r = 0; r < rows; ++r) {
    float* s = S + (int64_t)r * ld;
    float* c = comp + (int64_t)r * ld;
    const float* d = dS + (int64_t)r * ld;
    for (int i = 0; i < n; ++i) {
      const float t = decay * s[i];
      const float y = d[i] + decay * c[i];
      const float sum = t + y;
      c[i] = y - (sum - t);
      s[i] = sum;
    }
  }
}

// dst[r, :n] = f[r]·src[r, :n] for r in [0, rows); n a multiple of 16.
inline void scale_rows(int rows, int n, const float* src, int64_t lds, const float* f, float c,
                       float* dst, int64_t ldd) {
  for (int r = 0; r < rows; ++r) {
    const float w = c * f[r];
    for (int i = 0; i < n; ++i) dst[(int64_t)r * ldd + i] = w * src[(int64_t)r * lds + i];
  }
}

// dst[:, b] = f[b]·src[:, b] for b in [0, n): scales columns of a (rows, n) tile.
inline void scale_cols(int rows, int n, const float* src, int64_t lds, const float* f, float c,
                       float* dst, int64_t ldd) {
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n; ++i) dst[(int64_t)r * ldd + i] = c * f[i] * src[(int64_t)r * lds + i];
}

}  // namespace tnl::cpu
