// torch_baseline.cpp: see torch_baseline.h. Every tensor below holds values of the case's dtype
// (stored as float); every op accumulates in fp32 and rounds its result to the dtype.
#include "testing/torch_baseline.h"

#include <cmath>

namespace tnl::testing {

float round_to(double x, DType dtype) {
  switch (dtype) {
    case DType::f16: return f16_bits_to_f32(f32_to_f16_bits((float)x));
    case DType::bf16: return bf16_bits_to_f32(f32_to_bf16_bits((float)x));
    case DType::f32:
    case DType::f64: return (float)x;
  }
  return (float)x;
}

namespace {

// A row-major (rows, cols) matrix of dtype values.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<float> a;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), a(r * c, 0.0f) {}
  float& at(int64_t i, int64_t j) { return a[i * cols + j]; }
  float at(int64_t i, int64_t j) const { return a[i * cols + j]; }
};

Mat from_f64(const std::vector<double>& x, int64_t rows, int64_t cols, DType dt) {
  Mat m(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) m.a[i] = round_to(x[i], dt);
  return m;
}

Mat transpose(const Mat& m) {
  Mat t(m.cols, m.rows);
  for (int64_t i = 0; i < m.rows; ++i)
    for (int64_t j = 0; j < m.cols; ++j) t.at(j, i) = m.at(i, j);
  return t;
}

// round(A @ B), fp32 accumulation: (m, k) @ (k, n).
Mat matmul(const Mat& A, const Mat& B, DType dt) {
  Mat C(A.rows, B.cols);
  for (int64_t i = 0; i < A.rows; ++i) {
    float* c = &C.a[i * C.cols];
    for (int64_t p = 0; p < A.cols; ++p) {
      const float x = A.at(i, p);
      const float* b = &B.a[p * B.cols];
      for (int64_t j = 0; j < B.cols; ++j) c[j] += x * b[j];
    }
    for (int64_t j = 0; j < C.cols; ++j) c[j] = round_to(c[j], dt);
  }
  return C;
}

// round(A ⊙ B), same shapes.
Mat mul(const Mat& A, const Mat& B, DType dt) {
  Mat C(A.rows, A.cols);
  for (size_t i = 0; i < C.a.size(); ++i) C.a[i] = round_to(A.a[i] * B.a[i], dt);
  return C;
}

// round(A ⊙ g) with g broadcast along columns (one factor per row).
Mat mul_rows(const Mat& A, const std::vector<float>& g, DType dt) {
  Mat C(A.rows, A.cols);
  for (int64_t i = 0; i < A.rows; ++i)
    for (int64_t j = 0; j < A.cols; ++j) C.at(i, j) = round_to(A.at(i, j) * g[i], dt);
  return C;
}

Mat add(const Mat& A, const Mat& B, DType dt) {
  Mat C(A.rows, A.cols);
  for (size_t i = 0; i < C.a.size(); ++i) C.a[i] = round_to(A.a[i] + B.a[i], dt);
  return C;
}

Mat scaled(const Mat& A, float x, DType dt) {
  Mat C(A.rows, A.cols);
  for (size_t i = 0; i < C.a.size(); ++i) C.a[i] = round_to(A.a[i] * x, dt);
  return C;
}

void append(std::vector<double>& out, const Mat& m) { out.insert(out.end(), m.a.begin(), m.a.end()); }

// The graph of one (sequence, head), inputs and masks in the dtype.
struct HeadGraph {
  DType dt;
  int64_t L, D, E;
  Mat Q, K, V, M, S0;        // (L,D) (L,D) (L,E) (L,L) (D,E); S0 zero when absent
  bool has_s0;
  std::vector<float> g, w;   // (L): c λ^(t+1), λ^(L-1-u)
  float decay_all;           // λ^L

  HeadGraph(const AttnCase& c, int64_t s, int64_t h)
      : dt(c.config().dtype), L(c.seq_len(s)), D(c.config().dim_qk), E(c.config().dim_v),
        Q(from_f64(c.head_rows(c.q, s, h), L, D, dt)),
        K(from_f64(c.head_rows(c.k, s, h), L, D, dt)),
        V(from_f64(c.head_rows(c.v, s, h), L, E, dt)), M(L, L), S0(D, E),
        has_s0(c.config().initial_state), g(L), w(L) {
    const double slope = c.slopes()[h], scale = c.config().scale;
    for (int64_t t = 0; t < L; ++t)
      for (int64_t u = 0; u <= t; ++u) M.at(t, u) = round_to(scale * std::exp(-slope * (t - u)), dt);
    for (int64_t t = 0; t < L; ++t) {
      g[t] = round_to(scale * std::exp(-slope * (t + 1)), dt);
      w[t] = round_to(std::exp(-slope * (L - 1 - t)), dt);
    }
    decay_all = round_to(std::exp(-slope * L), dt);
    if (has_s0) S0 = from_f64(c.state_block(c.initial_state, s, h), D, E, dt);
  }
};

}  // namespace

Outputs torch_like_forward(const AttnCase& c) {
  const AttnCaseConfig& cfg = c.config();
  Outputs out{{"o", {}}};
  std::vector<double> sf_all;
  for (int64_t s = 0; s < c.num_seqs(); ++s)
    for (int64_t h = 0; h < cfg.heads; ++h) {
      const HeadGraph G(c, s, h);
      const DType dt = G.dt;
      const Mat A = mul(matmul(G.Q, transpose(G.K), dt), G.M, dt);  // (L, L)
      Mat O = matmul(A, G.V, dt);                                   // (L, E)
      if (G.has_s0) O = add(O, matmul(mul_rows(G.Q, G.g, dt), G.S0, dt), dt);
      append(out["o"], O);
      Mat Sf = matmul(transpose(mul_rows(G.K, G.w, dt)), G.V, dt);  // (D, E)
      if (G.has_s0) Sf = add(Sf, scaled(G.S0, G.decay_all, dt), dt);
      append(sf_all, Sf);
    }
  if (cfg.final_state) out["final_state"] = sf_all;
  return out;
}

Outputs torch_like_backward(const AttnCase& c) {
  const AttnCaseConfig& cfg = c.config();
  Outputs out{{"dq", {}}, {"dk", {}}, {"dv", {}}};
  std::vector<double> ds0_all;
  for (int64_t s = 0; s < c.num_seqs(); ++s)
    for (int64_t h = 0; h < cfg.heads; ++h) {
      const HeadGraph G(c, s, h);
      const DType dt = G.dt;
      const Mat dO = from_f64(c.head_rows(c.d_o, s, h), G.L, G.E, dt);  // (L, E)
      const Mat A = mul(matmul(G.Q, transpose(G.K), dt), G.M, dt);      // (L, L), saved
      const Mat Qd = mul_rows(G.Q, G.g, dt);                            // (L, D), saved
      const Mat Kd = mul_rows(G.K, G.w, dt);                            // (L, D), saved
      // o = A @ V + Qd @ S0
      const Mat dA = matmul(dO, transpose(G.V), dt);                    // (L, L)
      Mat dV = matmul(transpose(A), dO, dt);                            // (L, E)
      const Mat dP = mul(dA, G.M, dt);
      Mat dQ = matmul(dP, G.K, dt);                                     // (L, D)
      Mat dK = matmul(transpose(dP), G.Q, dt);                          // (L, D)
      if (G.has_s0) dQ = add(dQ, mul_rows(matmul(dO, transpose(G.S0), dt), G.g, dt), dt);
      Mat dS0 = matmul(transpose(Qd), dO, dt);                          // (D, E)
      // S_f = Kd^T @ V + λ^L S0
      if (cfg.d_final_state) {
        const Mat dSf = from_f64(c.state_block(c.d_final_state, s, h), G.D, G.E, dt);
        dK = add(dK, mul_rows(matmul(G.V, transpose(dSf), dt), G.w, dt), dt);
        dV = add(dV, matmul(Kd, dSf, dt), dt);
        dS0 = add(dS0, scaled(dSf, G.decay_all, dt), dt);
      }
      append(out["dq"], dQ);
      append(out["dk"], dK);
      append(out["dv"], dV);
      append(ds0_all, dS0);
    }
  if (cfg.d_initial_state) out["d_initial_state"] = ds0_all;
  return out;
}

}  // namespace tnl::testing
