// attention_decode.cpp: one recurrent step per (sequence, head) on the CPU, in place:
//   S ← λ S + kᵀ v;  o = c·q S        S: (D, E) fp32, read and written once (memory bound)
#include <algorithm>
#include <cmath>

#include "backends/cpu/attention_cpu.h"
#include "backends/cpu/cpu_common.h"
#include "backends/cpu/cpu_gemm.h"
#include "backends/cpu/cpu_load.h"

namespace tnl::cpu {
namespace {

constexpr int kMaxPad = (int)round_up(kMaxHeadDim, 16);

void decode_one(const AttnDecodeParams& p, int64_t b, int64_t h) {
  const int D = (int)p.dim_qk, E = (int)p.dim_v;
  const int Ep = (int)round_up(E, 16);
  const DType dt = p.dtype;
  const int64_t es = dtype_size(dt);
  const auto at = [&](const ConstSeqTensor& t) {
    return static_cast<const char*>(t.data) + (b * t.stride_batch + h * t.stride_head) * es;
  };
  alignas(64) float q[kMaxPad], k[kMaxPad], v[kMaxPad], o[kMaxPad];  // (D), (D), (E), (E)
  load_row(at(p.q), dt, D, 1.0f, q, (int)round_up(D, 16));
  load_row(at(p.k), dt, D, 1.0f, k, (int)round_up(D, 16));
  load_row(at(p.v), dt, E, 1.0f, v, Ep);
  const float lambda = (float)std::exp(-(double)p.slopes[h]);
  float* st = static_cast<float*>(p.state) + (b * p.heads + h) * (int64_t)D * E;  // (D, E)
#ifdef TNL_CPU_AVX512
  // Rows of S streamed once, in order; o accumulates in L1.
  const __m512 vl = _mm512_set1_ps(lambda);
  for (int e = 0; e < Ep; e += 16) _mm512_store_ps(o + e, _mm512_setzero_ps());
  for (int d = 0; d < D; ++d) {
    const __m512 kd = _mm512_set1_ps(k[d]), qd = _mm512_set1_ps(q[d]);
    float* row = st + (int64_t)d * E;
    int e = 0;
    for (; e + 16 <= E; e += 16) {  // full vectors: masked stores are slow on some cores
      const __m512 s = _mm512_fmadd_ps(vl, _mm512_loadu_ps(row + e),
                                       _mm512_mul_ps(kd, _mm512_load_ps(v + e)));
      _mm512_storeu_ps(row + e, s);
      _mm512_store_ps(o + e, _mm512_fmadd_ps(qd, s, _mm512_load_ps(o + e)));
    }
    if (e < E) {
      const __mmask16 m = tail_mask(E - e);
      const __m512 s = _mm512_fmadd_ps(vl, _mm512_maskz_loadu_ps(m, row + e),
                                       _mm512_mul_ps(kd, _mm512_load_ps(v + e)));
      _mm512_mask_storeu_ps(row + e, m, s);
      _mm512_store_ps(o + e, _mm512_fmadd_ps(qd, s, _mm512_load_ps(o + e)));
    }
  }
#else
  std::fill(o, o + Ep, 0.0f);
  for (int d = 0; d < D; ++d) {
    float* row = st + (int64_t)d * E;
    for (int e = 0; e < E; ++e) {
      row[e] = lambda * row[e] + k[d] * v[e];
      o[e] += q[d] * row[e];
    }
  }
#endif
  char* out = static_cast<char*>(p.o.data) + (b * p.o.stride_batch + h * p.o.stride_head) * es;
  store_row(o, E, p.scale, out, dt);
}

}  // namespace

void attention_decode(const AttnDecodeParams& p) {
  const int64_t total = p.batch * p.heads;
  const int threads =
      (int)std::max<int64_t>(1, std::min<int64_t>(resolve_threads(p.num_threads), total));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < total; ++i) decode_one(p, i / p.heads, i % p.heads);
}

}  // namespace tnl::cpu
