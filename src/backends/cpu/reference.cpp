// reference.cpp: the oracle. The naive quadratic form of spec §1 in fp64, one (sequence, head)
// at a time, no tiling, no tricks. Slow (O(N^2)) on purpose: every fast path is tested against it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/tensor_access.h"
#include "ops/attention/validate.h"
#include "tnl/attention.h"

namespace tnl::reference {
namespace {

using attn::num_sequences;
using cpu::load_as_double;
using cpu::store_from_double;

// Token range of sequence `s` and the batch index its rows live in.
struct SeqRange {
  int64_t batch, begin, len;
};
SeqRange seq_range(const AttnShape& shape, const int32_t* cu, int64_t s) {
  if (cu) return {0, cu[s], (int64_t)cu[s + 1] - cu[s]};
  return {s, 0, shape.seqlen};
}

// Offset of element (b, n, h, 0).
template <class T>
int64_t row(const T& t, int64_t b, int64_t n, int64_t h) {
  return b * t.stride_batch + n * t.stride_seq + h * t.stride_head;
}

// A (L, dim) fp64 copy of one head of one sequence.
template <class T>
std::vector<double> gather(const T& t, DType dt, const SeqRange& r, int64_t h, int64_t dim) {
  std::vector<double> out(r.len * dim);
  for (int64_t i = 0; i < r.len; ++i)
    for (int64_t d = 0; d < dim; ++d)
      out[i * dim + d] = load_as_double(t.data, dt, row(t, r.batch, r.begin + i, h) + d);
  return out;
}

template <class T>
void scatter(const T& t, DType dt, const SeqRange& r, int64_t h, int64_t dim,
             const std::vector<double>& x) {
  for (int64_t i = 0; i < r.len; ++i)
    for (int64_t d = 0; d < dim; ++d)
      store_from_double(t.data, dt, row(t, r.batch, r.begin + i, h) + d, x[i * dim + d]);
}

// State (D, E) of sequence s, head h: fp32, or fp64 when dtype is f64.
std::vector<double> load_state(const void* base, DType dt, int64_t s, int64_t h, int64_t H,
                               int64_t D, int64_t E) {
  std::vector<double> st(D * E, 0.0);
  if (!base) return st;
  const DType sdt = dt == DType::f64 ? DType::f64 : DType::f32;
  const int64_t off = (s * H + h) * D * E;
  for (int64_t i = 0; i < D * E; ++i) st[i] = load_as_double(base, sdt, off + i);
  return st;
}

void store_state(void* base, DType dt, int64_t s, int64_t h, int64_t H, int64_t D, int64_t E,
                 const std::vector<double>& st) {
  const DType sdt = dt == DType::f64 ? DType::f64 : DType::f32;
  const int64_t off = (s * H + h) * D * E;
  for (int64_t i = 0; i < D * E; ++i) store_from_double(base, sdt, off + i, st[i]);
}

double dot(const double* a, const double* b, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

}  // namespace

void attention_forward(const AttnForwardParams& p) {
  attn::validate(p, {"tnl::reference::attention_forward", true});
  const AttnShape& sh = p.shape;
  const int64_t H = sh.heads, D = sh.dim_qk, E = sh.dim_v;
  const double c = p.scale;
  for (int64_t s = 0; s < num_sequences(sh, p.cu_seqlens, p.num_seqs); ++s) {
    const SeqRange r = seq_range(sh, p.cu_seqlens, s);
    for (int64_t h = 0; h < H; ++h) {
      const double slope = p.slopes[h];
      const std::vector<double> q = gather(p.q, p.dtype, r, h, D);  // (L, D)
      const std::vector<double> k = gather(p.k, p.dtype, r, h, D);  // (L, D)
      const std::vector<double> v = gather(p.v, p.dtype, r, h, E);  // (L, E)
      const std::vector<double> s0 = load_state(p.initial_state, p.dtype, s, h, H, D, E);
      std::vector<double> o(r.len * E, 0.0);  // (L, E)
      for (int64_t t = 0; t < r.len; ++t) {
        double* ot = &o[t * E];
        for (int64_t u = 0; u <= t; ++u) {
          const double w = std::exp(-slope * (double)(t - u)) * dot(&q[t * D], &k[u * D], D);
          for (int64_t e = 0; e < E; ++e) ot[e] += w * v[u * E + e];
        }
        const double decay0 = std::exp(-slope * (double)(t + 1));
        for (int64_t d = 0; d < D; ++d)
          for (int64_t e = 0; e < E; ++e) ot[e] += decay0 * q[t * D + d] * s0[d * E + e];
        for (int64_t e = 0; e < E; ++e) ot[e] *= c;
      }
      scatter(p.o, p.dtype, r, h, E, o);
      if (p.final_state) {  // S_{L-1} = λ^L S0 + Σ_u λ^{L-1-u} k_uᵀ v_u
        std::vector<double> sf(D * E);
        const double decay_all = std::exp(-slope * (double)r.len);
        for (int64_t i = 0; i < D * E; ++i) sf[i] = decay_all * s0[i];
        for (int64_t u = 0; u < r.len; ++u) {
          const double w = std::exp(-slope * (double)(r.len - 1 - u));
          for (int64_t d = 0; d < D; ++d)
            for (int64_t e = 0; e < E; ++e) sf[d * E + e] += w * k[u * D + d] * v[u * E + e];
        }
        store_state(p.final_state, p.dtype, s, h, H, D, E, sf);
      }
    }
  }
}

void attention_forward_recurrent(const AttnForwardParams& p) {
  attn::validate(p, {"tnl::reference::attention_forward_recurrent", true});
  const AttnShape& sh = p.shape;
  const int64_t H = sh.heads, D = sh.dim_qk, E = sh.dim_v;
  for (int64_t s = 0; s < num_sequences(sh, p.cu_seqlens, p.num_seqs); ++s) {
    const SeqRange r = seq_range(sh, p.cu_seqlens, s);
    for (int64_t h = 0; h < H; ++h) {
      const double lambda = std::exp(-(double)p.slopes[h]);
      std::vector<double> st = load_state(p.initial_state, p.dtype, s, h, H, D, E);  // (D, E)
      std::vector<double> qt(D), kt(D), vt(E), ot(E);
      for (int64_t t = 0; t < r.len; ++t) {
        const int64_t n = r.begin + t;
        for (int64_t d = 0; d < D; ++d) {
          qt[d] = load_as_double(p.q.data, p.dtype, row(p.q, r.batch, n, h) + d);
          kt[d] = load_as_double(p.k.data, p.dtype, row(p.k, r.batch, n, h) + d);
        }
        for (int64_t e = 0; e < E; ++e)
          vt[e] = load_as_double(p.v.data, p.dtype, row(p.v, r.batch, n, h) + e);
        std::fill(ot.begin(), ot.end(), 0.0);
        for (int64_t d = 0; d < D; ++d)
          for (int64_t e = 0; e < E; ++e) {
            double& sde = st[d * E + e];
            sde = lambda * sde + kt[d] * vt[e];
            ot[e] += qt[d] * sde;
          }
        for (int64_t e = 0; e < E; ++e)
          store_from_double(p.o.data, p.dtype, row(p.o, r.batch, n, h) + e, p.scale * ot[e]);
      }
      if (p.final_state) store_state(p.final_state, p.dtype, s, h, H, D, E, st);
    }
  }
}

void attention_backward(const AttnBackwardParams& p) {
  attn::validate(p, {"tnl::reference::attention_backward", true});
  const AttnShape& sh = p.shape;
  const int64_t H = sh.heads, D = sh.dim_qk, E = sh.dim_v;
  const double c = p.scale;
  for (int64_t s = 0; s < num_sequences(sh, p.cu_seqlens, p.num_seqs); ++s) {
    const SeqRange r = seq_range(sh, p.cu_seqlens, s);
    const int64_t L = r.len;
    for (int64_t h = 0; h < H; ++h) {
      const double slope = p.slopes[h];
      auto decay = [&](int64_t n) { return std::exp(-slope * (double)n); };
      const std::vector<double> q = gather(p.q, p.dtype, r, h, D);    // (L, D)
      const std::vector<double> k = gather(p.k, p.dtype, r, h, D);    // (L, D)
      const std::vector<double> v = gather(p.v, p.dtype, r, h, E);    // (L, E)
      const std::vector<double> g = gather(p.d_o, p.dtype, r, h, E);  // (L, E) dO
      const std::vector<double> s0 = load_state(p.initial_state, p.dtype, s, h, H, D, E);
      const std::vector<double> dsf = load_state(p.d_final_state, p.dtype, s, h, H, D, E);
      std::vector<double> dq(L * D, 0.0), dk(L * D, 0.0), dv(L * E, 0.0);
      for (int64_t t = 0; t < L; ++t) {
        // dq_t = c Σ_{u<=t} λ^{t-u} (dO_t·v_u) k_u + c λ^{t+1} dO_t S0ᵀ
        for (int64_t u = 0; u <= t; ++u) {
          const double w = c * decay(t - u) * dot(&g[t * E], &v[u * E], E);
          for (int64_t d = 0; d < D; ++d) dq[t * D + d] += w * k[u * D + d];
        }
        for (int64_t d = 0; d < D; ++d)
          dq[t * D + d] += c * decay(t + 1) * dot(&g[t * E], &s0[d * E], E);
        // dk_t = c Σ_{u>=t} λ^{u-t} (dO_u·v_t) q_u + λ^{L-1-t} dSf v_t
        // dv_t = c Σ_{u>=t} λ^{u-t} (q_u·k_t) dO_u + λ^{L-1-t} k_t dSf
        for (int64_t u = t; u < L; ++u) {
          const double wk = c * decay(u - t) * dot(&g[u * E], &v[t * E], E);
          const double wv = c * decay(u - t) * dot(&q[u * D], &k[t * D], D);
          for (int64_t d = 0; d < D; ++d) dk[t * D + d] += wk * q[u * D + d];
          for (int64_t e = 0; e < E; ++e) dv[t * E + e] += wv * g[u * E + e];
        }
        const double wf = decay(L - 1 - t);
        for (int64_t d = 0; d < D; ++d) {
          dk[t * D + d] += wf * dot(&dsf[d * E], &v[t * E], E);
          for (int64_t e = 0; e < E; ++e) dv[t * E + e] += wf * k[t * D + d] * dsf[d * E + e];
        }
      }
      scatter(p.dq, p.dtype, r, h, D, dq);
      scatter(p.dk, p.dtype, r, h, D, dk);
      scatter(p.dv, p.dtype, r, h, E, dv);
      if (p.d_initial_state) {  // dS0 = c Σ_u λ^{u+1} q_uᵀ dO_u + λ^L dSf
        std::vector<double> ds0(D * E);
        for (int64_t i = 0; i < D * E; ++i) ds0[i] = decay(L) * dsf[i];
        for (int64_t u = 0; u < L; ++u)
          for (int64_t d = 0; d < D; ++d)
            for (int64_t e = 0; e < E; ++e)
              ds0[d * E + e] += c * decay(u + 1) * q[u * D + d] * g[u * E + e];
        store_state(p.d_initial_state, p.dtype, s, h, H, D, E, ds0);
      }
    }
  }
}

void attention_decode(const AttnDecodeParams& p) {
  attn::validate(p, {"tnl::reference::attention_decode", true});
  const int64_t H = p.heads, D = p.dim_qk, E = p.dim_v;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const SeqRange r{b, 0, 1};
      const std::vector<double> q = gather(p.q, p.dtype, r, h, D);  // (1, D)
      const std::vector<double> k = gather(p.k, p.dtype, r, h, D);  // (1, D)
      const std::vector<double> v = gather(p.v, p.dtype, r, h, E);  // (1, E)
      std::vector<double> st = load_state(p.state, p.dtype, b, h, H, D, E);
      const double lambda = std::exp(-(double)p.slopes[h]);
      std::vector<double> o(E, 0.0);
      for (int64_t d = 0; d < D; ++d)
        for (int64_t e = 0; e < E; ++e) {
          double& sde = st[d * E + e];
          sde = lambda * sde + k[d] * v[e];
          o[e] += q[d] * sde;
        }
      for (double& x : o) x *= p.scale;
      scatter(p.o, p.dtype, r, h, E, o);
      store_state(p.state, p.dtype, b, h, H, D, E, st);
    }
  }
}

}  // namespace tnl::reference
