// cpu_load.h: moving rows between the caller's tensors (fp32, fp16 or bf16, strided) and the
// fp32 scratch tiles: convert on load (F16C / bit shift), zero-pad, round to nearest even on store.
#pragma once

#include <cstdint>
#include <cstring>

#include "backends/cpu/cpu_common.h"
#include "backends/cpu/cpu_gemm.h"

namespace tnl::cpu {

#ifdef TNL_CPU_AVX512
// Up to 16 elements (mask m) of dtype dt at p, as fp32; masked-off lanes are 0.
inline __m512 load16(const void* p, DType dt, __mmask16 m) {
  switch (dt) {
    case DType::f16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    case DType::bf16:
      return _mm512_castsi512_ps(
          _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    default: return _mm512_maskz_loadu_ps(m, p);
  }
}

// fp32 -> bf16 bits, round to nearest even, NaN kept quiet (as tnl::f32_to_bf16_bits).
inline __m256i to_bf16(__m512 x) {
  const __m512i bits = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

// 16 elements, unmasked.
inline __m512 load16(const void* p, DType dt) {
  switch (dt) {
    case DType::f16: return _mm512_cvtph_ps(_mm256_loadu_si256(static_cast<const __m256i*>(p)));
    case DType::bf16:
      return _mm512_castsi512_ps(_mm512_slli_epi32(
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(static_cast<const __m256i*>(p))), 16));
    default: return _mm512_loadu_ps(p);
  }
}

inline void store16(void* p, DType dt, __m512 x) {
  switch (dt) {
    case DType::f16:
      _mm256_storeu_si256(static_cast<__m256i*>(p),
                          _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    case DType::bf16: _mm256_storeu_si256(static_cast<__m256i*>(p), to_bf16(x)); break;
    default: _mm512_storeu_ps(p, x); break;
  }
}

inline void store16(void* p, DType dt, __mmask16 m, __m512 x) {
  switch (dt) {
    case DType::f16:
      _mm256_mask_storeu_epi16(
          p, m, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      break;
    case DType::bf16: _mm256_mask_storeu_epi16(p, m, to_bf16(x)); break;
    default: _mm512_mask_storeu_ps(p, m, x); break;
  }
}

inline __mmask16 tail_mask(int n) {
  return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}
#endif

// dst[0, n) = scale·src[0, n) as fp32; dst[n, npad) = 0. npad a multiple of 16, >= n.
inline void load_row(const void* src, DType dt, int n, float scale, float* dst, int npad) {
  const int64_t es = dtype_size(dt);
  const char* s = static_cast<const char*>(src);
#ifdef TNL_CPU_AVX512
  const __m512 vs = _mm512_set1_ps(scale);
  int i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_mul_ps(vs, load16(s + i * es, dt)));
  for (; i < npad; i += 16) {
    const int left = n - i;
    const __m512 x = left > 0 ? load16(s + i * es, dt, tail_mask(left)) : _mm512_setzero_ps();
    _mm512_storeu_ps(dst + i, _mm512_mul_ps(vs, x));
  }
#else
  for (int i = 0; i < n; ++i) {
    float x;
    switch (dt) {
      case DType::f16:
      case DType::bf16: {
        uint16_t b;
        std::memcpy(&b, s + i * es, 2);
        x = dt == DType::f16 ? f16_bits_to_f32(b) : bf16_bits_to_f32(b);
        break;
      }
      default: std::memcpy(&x, s + i * es, 4); break;
    }
    dst[i] = scale * x;
  }
  for (int i = n; i < npad; ++i) dst[i] = 0.0f;
#endif
}

// dst[0, n) = scale·src[0, n), rounded to dtype dt.
inline void store_row(const float* src, int n, float scale, void* dst, DType dt) {
  const int64_t es = dtype_size(dt);
  char* d = static_cast<char*>(dst);
#ifdef TNL_CPU_AVX512
  const __m512 vs = _mm512_set1_ps(scale);
  int i = 0;  // full vectors unmasked: masked stores are slow on some cores (Zen 4/5)
  for (; i + 16 <= n; i += 16) store16(d + i * es, dt, _mm512_mul_ps(vs, _mm512_loadu_ps(src + i)));
  if (i < n) store16(d + i * es, dt, tail_mask(n - i), _mm512_mul_ps(vs, _mm512_loadu_ps(src + i)));
#else
  for (int i = 0; i < n; ++i) {
    const float x = scale * src[i];
    switch (dt) {
      case DType::f16:
      case DType::bf16: {
        const uint16_t b = dt == DType::f16 ? f32_to_f16_bits(x) : f32_to_bf16_bits(x);
        std::memcpy(d + i * es, &b, 2);
        break;
      }
      default: std::memcpy(d + i * es, &x, 4); break;
    }
  }
#endif
}

// Tile (rows_pad, ld) ← rows [0, rows) of a strided view, cols [col0, col0 + cols), as fp32,
// zero-padded to ld columns and rows_pad rows. ld a multiple of 16.
inline void pack_rows(const RowView& v, DType dt, int64_t row0, int rows, int64_t col0, int cols,
                      float* dst, int64_t ld, int rows_pad) {
  const int64_t es = dtype_size(dt);
  for (int r = 0; r < rows; ++r)
    load_row(static_cast<const char*>(v.row(row0 + r)) + col0 * es, dt, cols, 1.0f,
             dst + r * ld, (int)ld);
  if (rows_pad > rows) std::memset(dst + rows * ld, 0, (size_t)(rows_pad - rows) * ld * 4);
}

// Rows [0, rows) of a strided view, cols [col0, col0 + cols) ← scale·tile (rows, ld).
inline void store_rows(const float* src, int64_t ld, int rows, int cols, float scale,
                       const SeqTensor& t, DType dt, const SeqRange& r, int64_t h, int64_t row0,
                       int64_t col0) {
  const RowView v = row_view(t, dt, r, h);
  const int64_t es = dtype_size(dt);
  for (int i = 0; i < rows; ++i)
    store_row(src + i * ld, cols, scale,
              const_cast<char*>(static_cast<const char*>(v.row(row0 + i))) + col0 * es, dt);
}

// State tile (rows_pad, ld) ← rows [0, D) cols [e0, e0 + cols) of a contiguous fp32 (D, E)
// state, or zeros when st is null.
inline void load_state(const float* st, int64_t E, int D, int64_t e0, int cols, float* dst,
                       int64_t ld, int rows_pad) {
  std::memset(dst, 0, (size_t)rows_pad * ld * 4);
  if (!st) return;
  for (int d = 0; d < D; ++d)
    load_row(st + d * E + e0, DType::f32, cols, 1.0f, dst + d * ld, (int)ld);
}

inline void store_state(const float* src, int64_t ld, int D, float* st, int64_t E, int64_t e0,
                        int cols) {
  for (int d = 0; d < D; ++d) store_row(src + d * ld, cols, 1.0f, st + d * E + e0, DType::f32);
}

}  // namespace tnl::cpu
