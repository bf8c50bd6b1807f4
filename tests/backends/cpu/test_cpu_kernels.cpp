// test_cpu_kernels.cpp: the fast CPU backend's internal pieces (micro-GEMM and its triangular
// driver, tile transpose, decay mask, fp16/bf16 row loads and stores) against naive loops, and a
// quick fast-vs-reference check of forward, backward and decode (fp32 bar: 1e-5, spec §4).
// The full matrix of shapes lives in tests/ops/attention/.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "backends/cpu/attention_cpu.h"
#include "backends/cpu/cpu_common.h"
#include "backends/cpu/cpu_gemm.h"
#include "backends/cpu/cpu_load.h"
#include "testing/testing.h"

namespace tnl::cpu {
namespace {

using testing::HostTensor;
using testing::rel_error;

std::vector<float> randn(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  return x;
}

// ---- micro-GEMM and its driver ----

struct GemmCase {
  int M, N, K;
  bool acol;
  float beta;
  Tri ntri, ktri;
};

void check_gemm(const GemmCase& g, std::mt19937_64& rng) {
  const int64_t lda = (g.acol ? g.M : g.K) + 3, ldb = g.N + 5, ldc = g.N + 7;
  std::vector<float> A = randn(rng, (size_t)(g.acol ? g.K : g.M) * lda);
  std::vector<float> B = randn(rng, (size_t)g.K * ldb);
  std::vector<float> C0 = randn(rng, (size_t)g.M * ldc);
  auto a_at = [&](int m, int k) {
    return g.acol ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
  };
  // A triangular operand really is triangular: zero the part the driver may skip.
  for (int m = 0; m < g.M; ++m)
    for (int k = 0; k < g.K; ++k) {
      const bool zero = (g.ktri == Tri::lower && k > m) || (g.ktri == Tri::upper && k < m);
      if (zero) (g.acol ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k]) = 0.f;
    }
  std::vector<float> C = C0;
  if (g.acol)
    gemm<true>(g.M, g.N, g.K, A.data(), lda, B.data(), ldb, C.data(), ldc, g.beta, g.ntri, g.ktri);
  else
    gemm<false>(g.M, g.N, g.K, A.data(), lda, B.data(), ldb, C.data(), ldc, g.beta, g.ntri, g.ktri);
  for (int m = 0; m < g.M; ++m) {
    const int m0 = m / kMR * kMR;
    for (int n = 0; n < g.N; ++n) {
      bool touched = true;
      if (g.ntri == Tri::lower) touched = n < round_up(m0 + kMR, 16);
      if (g.ntri == Tri::upper) touched = n >= m0 / 16 * 16;
      const float got = C[(size_t)m * ldc + n];
      if (!touched) {
        ASSERT_EQ(got, C0[(size_t)m * ldc + n]) << "m " << m << " n " << n;
        continue;
      }
      double ref = g.beta == 0.f ? 0.0 : (double)g.beta * C0[(size_t)m * ldc + n];
      for (int k = 0; k < g.K; ++k) ref += (double)a_at(m, k) * B[(size_t)k * ldb + n];
      ASSERT_NEAR(got, ref, 1e-4 * (1.0 + std::sqrt((double)g.K))) << "m " << m << " n " << n;
    }
  }
}

TEST(CpuKernels, GemmMatchesNaiveLoop) {
  std::mt19937_64 rng(testing::fresh_seed());
  for (bool acol : {false, true})
    for (float beta : {0.f, 1.f, 0.37f})
      for (int K : {0, 1, 7, 64, 130})
        check_gemm({24, 80, K, acol, beta, Tri::none, Tri::none}, rng);
  for (bool acol : {false, true}) {
    check_gemm({64, 64, 64, acol, 0.f, Tri::lower, Tri::none}, rng);
    check_gemm({64, 64, 64, acol, 1.f, Tri::none, Tri::lower}, rng);
    check_gemm({64, 48, 61, acol, 1.f, Tri::none, Tri::upper}, rng);
    check_gemm({40, 64, 33, acol, 0.5f, Tri::upper, Tri::none}, rng);
  }
}

// A NaN left in C must not leak when beta == 0 (the kernels never read C then).
TEST(CpuKernels, GemmBetaZeroIgnoresC) {
  std::vector<float> A(8 * 4, 1.f), B(4 * 16, 2.f);
  std::vector<float> C(8 * 16, std::numeric_limits<float>::quiet_NaN());
  gemm<false>(8, 16, 4, A.data(), 4, B.data(), 16, C.data(), 16, 0.f);
  for (float c : C) ASSERT_EQ(c, 8.f);
}

TEST(CpuKernels, TransposeMatchesNaive) {
  std::mt19937_64 rng(testing::fresh_seed());
  for (auto [rows, cols] : {std::pair{16, 16}, {32, 48}, {64, 256}, {256, 16}}) {
    const int64_t lds = cols + 16, ldd = rows + 32;
    std::vector<float> src = randn(rng, (size_t)rows * lds), dst((size_t)cols * ldd, -1.f);
    transpose(rows, cols, src.data(), lds, dst.data(), ldd);
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c)
        ASSERT_EQ(dst[(size_t)c * ldd + r], src[(size_t)r * lds + c]) << r << "," << c;
  }
}

TEST(CpuKernels, DecayMaskAndTable) {
  for (float s : {0.f, 1e-3f, 1.f, 200.f}) {
    const DecayTable dec(s);
    for (int j = 0; j <= kBlock; ++j) {
      const double want = std::exp(-(double)s * j);
      EXPECT_NEAR(dec.pw[j], want < 1.2e-38 ? 0.0 : want, 1e-7 * want) << "s " << s << " j " << j;
    }
    std::vector<float> A(kBlock * kBlock, 2.f);
    const int L = kBlock - 3;
    apply_decay_mask(A.data(), kBlock, L, 0.5f, dec);
    for (int a = 0; a < L; ++a)
      for (int b = 0; b < round_up(a + 1, 16); ++b) {
        const float want = b <= a ? dec.pw[a - b] : 0.f;  // 0.5 · 2 · λ^{a-b}
        ASSERT_FLOAT_EQ(A[a * kBlock + b], want) << a << "," << b;
      }
  }
}

// ---- dtype conversion on load and store ----

TEST(CpuKernels, HalfAndBfloatRowsRoundTrip) {
  std::mt19937_64 rng(testing::fresh_seed());
  std::vector<float> x = randn(rng, 53);
  x[3] = 0.f, x[4] = -0.f, x[5] = 1e-6f, x[6] = 7e4f, x[7] = 1e-40f;
  x[8] = std::numeric_limits<float>::infinity(), x[9] = std::numeric_limits<float>::quiet_NaN();
  x[10] = 1.00390625f;  // a bf16 tie: rounds to even
  for (int n : {1, 15, 16, 17, 53}) {
    std::vector<uint16_t> h(n), b(n);
    store_row(x.data(), n, 1.f, h.data(), DType::f16);
    store_row(x.data(), n, 1.f, b.data(), DType::bf16);
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(h[i], f32_to_f16_bits(x[i])) << "f16 store, i " << i;
      ASSERT_EQ(b[i], f32_to_bf16_bits(x[i])) << "bf16 store, i " << i;
    }
    std::vector<float> lh(64, -1.f), lb(64, -1.f);
    load_row(h.data(), DType::f16, n, 2.f, lh.data(), (int)round_up(n, 16));
    load_row(b.data(), DType::bf16, n, 2.f, lb.data(), (int)round_up(n, 16));
    for (int i = 0; i < (int)round_up(n, 16); ++i) {
      const float wh = i < n ? 2.f * f16_bits_to_f32(h[i]) : 0.f;
      const float wb = i < n ? 2.f * bf16_bits_to_f32(b[i]) : 0.f;
      if (std::isnan(wh)) ASSERT_TRUE(std::isnan(lh[i]));
      else ASSERT_EQ(lh[i], wh) << "f16 load, i " << i;
      if (std::isnan(wb)) ASSERT_TRUE(std::isnan(lb[i]));
      else ASSERT_EQ(lb[i], wb) << "bf16 load, i " << i;
    }
  }
}

// ---- the op: fast path vs the fp64 reference ----

// One problem: inputs in `dtype` and their f64 copies for the reference.
struct Problem {
  DType dtype;
  Layout layout;
  AttnShape shape;
  std::vector<int32_t> cu;  // empty: fixed length
  bool with_s0, with_dsf;
  int64_t nstate;
  std::vector<float> slopes;
  float scale;
  HostTensor q, k, v, g, s0, dsf;  // g: dO

  Problem(DType dt, Layout lay, int64_t B, int64_t N, int64_t H, int64_t D, int64_t E,
          std::vector<int32_t> cu_seqlens, bool s0_on, bool dsf_on, float slope_max,
          std::mt19937_64& rng)
      : dtype(dt), layout(lay), shape{B, N, H, D, E}, cu(std::move(cu_seqlens)),
        with_s0(s0_on), with_dsf(dsf_on) {
    nstate = cu.empty() ? B : (int64_t)cu.size() - 1;
    for (int64_t h = 0; h < H; ++h) slopes.push_back(slope_max * (float)(h + 1) / (float)H);
    slopes[0] = 0.f;  // plain causal linear attention on head 0
    scale = 1.f / std::sqrt((float)D);
    q = HostTensor(dt, B * N * H * D), k = HostTensor(dt, B * N * H * D);
    v = HostTensor(dt, B * N * H * E), g = HostTensor(dt, B * N * H * E);
    q.fill_normal(rng, 1.0 / std::sqrt((double)D));
    k.fill_normal(rng, 1.0 / std::sqrt((double)D));
    v.fill_normal(rng, 1.0);
    g.fill_normal(rng, 1.0);
    s0 = HostTensor(DType::f32, nstate * H * D * E);
    dsf = HostTensor(DType::f32, nstate * H * D * E);
    s0.fill_normal(rng, 1.0), dsf.fill_normal(rng, 1.0);
  }
  ConstSeqTensor in(const HostTensor& t, int64_t dim) const {
    return seq_tensor(t.data(), layout, shape.batch, shape.seqlen, shape.heads, dim);
  }
  SeqTensor out(HostTensor& t, int64_t dim) const {
    return seq_tensor(t.data(), layout, shape.batch, shape.seqlen, shape.heads, dim);
  }
  // Forward params over the given tensors (dtype `dt`, states of matching precision).
  AttnForwardParams fwd(DType dt, const HostTensor& q_, const HostTensor& k_, const HostTensor& v_,
                        HostTensor& o, const HostTensor* s0_, HostTensor* sf) const {
    AttnForwardParams p;
    p.dtype = dt, p.shape = shape, p.slopes = slopes.data(), p.scale = scale;
    p.q = in(q_, shape.dim_qk), p.k = in(k_, shape.dim_qk), p.v = in(v_, shape.dim_v);
    p.o = out(o, shape.dim_v);
    if (!cu.empty()) p.cu_seqlens = cu.data(), p.num_seqs = (int64_t)cu.size() - 1;
    p.initial_state = s0_ ? s0_->data() : nullptr;
    p.final_state = sf ? sf->data() : nullptr;
    return p;
  }
};

constexpr double kF32Bar = 1e-5;  // spec §4, fp32 on the CPU
double bar(DType dt) { return dt == DType::f32 ? kF32Bar : 1e-2; }

void check_forward(Problem& pb) {
  const AttnShape& s = pb.shape;
  const int64_t nst = pb.nstate * s.heads * s.dim_qk * s.dim_v;
  HostTensor o(pb.dtype, s.batch * s.seqlen * s.heads * s.dim_v), sf(DType::f32, nst);
  o.poison(), sf.poison();
  tnl::attention_forward(pb.fwd(pb.dtype, pb.q, pb.k, pb.v, o, pb.with_s0 ? &pb.s0 : nullptr, &sf));

  const HostTensor q64 = pb.q.converted(DType::f64), k64 = pb.k.converted(DType::f64),
                   v64 = pb.v.converted(DType::f64), s064 = pb.s0.converted(DType::f64);
  HostTensor o64(DType::f64, o.numel), sf64(DType::f64, nst);
  reference::attention_forward(
      pb.fwd(DType::f64, q64, k64, v64, o64, pb.with_s0 ? &s064 : nullptr, &sf64));
  EXPECT_LE(rel_error(o, o64), bar(pb.dtype)) << "o";
  EXPECT_LE(rel_error(sf, sf64), bar(pb.dtype)) << "final_state";
}

void check_backward(Problem& pb) {
  const AttnShape& s = pb.shape;
  const int64_t nst = pb.nstate * s.heads * s.dim_qk * s.dim_v;
  const int64_t rows = s.batch * s.seqlen * s.heads, nqk = rows * s.dim_qk, nv = rows * s.dim_v;
  auto run = [&](DType dt, const HostTensor& q, const HostTensor& k, const HostTensor& v,
                 const HostTensor& g, const HostTensor& s0, const HostTensor& dsf, bool fast) {
    std::vector<HostTensor> outs = {HostTensor(dt, nqk), HostTensor(dt, nqk), HostTensor(dt, nv),
                                    HostTensor(dt == DType::f64 ? dt : DType::f32, nst)};
    for (auto& t : outs) t.poison();
    AttnBackwardParams p;
    p.dtype = dt, p.shape = s, p.slopes = pb.slopes.data(), p.scale = pb.scale;
    p.q = pb.in(q, s.dim_qk), p.k = pb.in(k, s.dim_qk), p.v = pb.in(v, s.dim_v);
    p.d_o = pb.in(g, s.dim_v);
    p.dq = pb.out(outs[0], s.dim_qk), p.dk = pb.out(outs[1], s.dim_qk);
    p.dv = pb.out(outs[2], s.dim_v);
    if (!pb.cu.empty()) p.cu_seqlens = pb.cu.data(), p.num_seqs = (int64_t)pb.cu.size() - 1;
    p.initial_state = pb.with_s0 ? s0.data() : nullptr;
    p.d_final_state = pb.with_dsf ? dsf.data() : nullptr;
    p.d_initial_state = outs[3].data();
    if (fast) tnl::attention_backward(p);
    else reference::attention_backward(p);
    return outs;
  };
  const auto got = run(pb.dtype, pb.q, pb.k, pb.v, pb.g, pb.s0, pb.dsf, true);
  const auto want = run(DType::f64, pb.q.converted(DType::f64), pb.k.converted(DType::f64),
                        pb.v.converted(DType::f64), pb.g.converted(DType::f64),
                        pb.s0.converted(DType::f64), pb.dsf.converted(DType::f64), false);
  const char* names[] = {"dq", "dk", "dv", "d_initial_state"};
  for (int i = 0; i < 4; ++i) EXPECT_LE(rel_error(got[i], want[i]), bar(pb.dtype)) << names[i];
}

struct OpCase {
  DType dtype;
  Layout layout;
  int64_t B, N, H, D, E;
  std::vector<int32_t> cu;
  bool s0, dsf;
  float slope_max;
};

std::vector<OpCase> op_cases() {
  const auto f32 = DType::f32;
  const auto bnhd = Layout::bnhd, bhnd = Layout::bhnd;
  return {
      {f32, bnhd, 2, 1, 2, 16, 16, {}, false, false, 1.f},
      {f32, bhnd, 1, 63, 3, 64, 64, {}, true, true, 0.5f},
      {f32, bnhd, 2, 65, 2, 64, 32, {}, true, false, 1.f},
      {f32, bhnd, 1, 200, 2, 20, 37, {}, false, true, 0.1f},
      {f32, bnhd, 1, 300, 1, 96, 128, {}, true, true, 1e-3f},
      {f32, bnhd, 1, 130, 2, 256, 128, {}, true, true, 0.3f},
      {f32, bnhd, 1, 200, 2, 48, 80, {0, 1, 1, 65, 128, 200}, true, true, 0.7f},  // varlen, N=0
      {DType::bf16, bnhd, 1, 150, 2, 64, 64, {}, true, true, 0.5f},
      {DType::f16, bhnd, 2, 100, 1, 32, 96, {}, true, true, 0.5f},
  };
}

std::string describe(const OpCase& c) {
  std::string s = std::string(dtype_name(c.dtype)) + (c.layout == Layout::bnhd ? " bnhd" : " bhnd");
  s += " B" + std::to_string(c.B) + " N" + std::to_string(c.N) + " H" + std::to_string(c.H) +
       " D" + std::to_string(c.D) + " E" + std::to_string(c.E) + (c.cu.empty() ? "" : " varlen");
  return s + (c.s0 ? " S0" : "") + (c.dsf ? " dSf" : "") + " s<=" + std::to_string(c.slope_max);
}

TEST(CpuFast, ForwardMatchesReference) {
  const uint64_t seed = testing::fresh_seed();
  std::mt19937_64 rng(seed);
  for (const OpCase& c : op_cases()) {
    SCOPED_TRACE(describe(c) + " seed " + std::to_string(seed));
    Problem pb(c.dtype, c.layout, c.B, c.N, c.H, c.D, c.E, c.cu, c.s0, c.dsf, c.slope_max, rng);
    check_forward(pb);
  }
}

TEST(CpuFast, BackwardMatchesReference) {
  const uint64_t seed = testing::fresh_seed();
  std::mt19937_64 rng(seed);
  for (const OpCase& c : op_cases()) {
    SCOPED_TRACE(describe(c) + " seed " + std::to_string(seed));
    Problem pb(c.dtype, c.layout, c.B, c.N, c.H, c.D, c.E, c.cu, c.s0, c.dsf, c.slope_max, rng);
    check_backward(pb);
  }
}

// Value tiles: B·H = 1 on several threads splits E; the result must not depend on it.
TEST(CpuFast, ForwardValueTilesAndThreads) {
  std::mt19937_64 rng(testing::fresh_seed());
  Problem pb(DType::f32, Layout::bnhd, 1, 257, 1, 64, 256, {}, true, false, 0.2f, rng);
  HostTensor o1(DType::f32, 257 * 256), o4(DType::f32, 257 * 256), s1(DType::f32, 64 * 256),
      s4(DType::f32, 64 * 256);
  AttnForwardParams p1 = pb.fwd(DType::f32, pb.q, pb.k, pb.v, o1, &pb.s0, &s1);
  p1.num_threads = 1;
  AttnForwardParams p4 = pb.fwd(DType::f32, pb.q, pb.k, pb.v, o4, &pb.s0, &s4);
  p4.num_threads = 4;
  tnl::attention_forward(p1);
  tnl::attention_forward(p4);
  EXPECT_LE(rel_error(o4, o1), 1e-6);
  EXPECT_LE(rel_error(s4, s1), 1e-6);
}

// Strided views: a (B, N, H, D) view with padded rows and a stride-0 (broadcast) input.
TEST(CpuFast, ForwardOddStrides) {
  std::mt19937_64 rng(testing::fresh_seed());
  const int64_t B = 2, N = 77, H = 2, D = 24, E = 40, pad = 8;
  Problem pb(DType::f32, Layout::bnhd, B, N, H, D, E, {}, false, false, 0.4f, rng);
  // Copies of q, v with padded rows; k broadcast over the batch (stride_batch = 0).
  auto padded = [&](const HostTensor& t, int64_t dim) {
    HostTensor x(DType::f32, B * N * H * (dim + pad));
    for (int64_t r = 0; r < B * N * H; ++r)
      for (int64_t i = 0; i < dim; ++i) x.set(r * (dim + pad) + i, t.get(r * dim + i));
    return x;
  };
  HostTensor qp = padded(pb.q, D), vp = padded(pb.v, E);
  HostTensor kb = pb.k;  // batch 1 repeated: copy batch 0 into batch 1 for the reference
  for (int64_t i = 0; i < N * H * D; ++i) kb.set(N * H * D + i, kb.get(i));
  HostTensor o(DType::f32, B * N * H * E), oref(DType::f64, B * N * H * E);
  AttnForwardParams p = pb.fwd(DType::f32, pb.q, kb, pb.v, o, nullptr, nullptr);
  p.q = ConstSeqTensor(qp.data(), N * H * (D + pad), H * (D + pad), D + pad);
  p.v = ConstSeqTensor(vp.data(), N * H * (E + pad), H * (E + pad), E + pad);
  p.k.stride_batch = 0;
  o.poison();
  tnl::attention_forward(p);
  const HostTensor q64 = pb.q.converted(DType::f64), k64 = kb.converted(DType::f64),
                   v64 = pb.v.converted(DType::f64);
  reference::attention_forward(pb.fwd(DType::f64, q64, k64, v64, oref, nullptr, nullptr));
  EXPECT_LE(rel_error(o, oref), kF32Bar);
}

TEST(CpuFast, DecodeMatchesReference) {
  std::mt19937_64 rng(testing::fresh_seed());
  for (auto [dt, B, H, D, E] : {std::tuple{DType::f32, 3, 4, 64, 64}, {DType::f32, 1, 2, 20, 37},
                                {DType::bf16, 2, 3, 128, 96}, {DType::f16, 2, 2, 256, 256}}) {
    SCOPED_TRACE(std::string(dtype_name(dt)) + " D" + std::to_string(D) + " E" + std::to_string(E));
    HostTensor q(dt, B * H * D), k(dt, B * H * D), v(dt, B * H * E), o(dt, B * H * E);
    q.fill_normal(rng, 1.0 / std::sqrt((double)D)), k.fill_normal(rng, 1.0 / std::sqrt((double)D));
    v.fill_normal(rng, 1.0);
    HostTensor st(DType::f32, B * H * D * E);
    st.fill_normal(rng, 1.0);
    HostTensor q64 = q.converted(DType::f64), k64 = k.converted(DType::f64),
               v64 = v.converted(DType::f64), o64(DType::f64, B * H * E),
               st64 = st.converted(DType::f64);
    std::vector<float> slopes(H);
    for (int h = 0; h < H; ++h) slopes[h] = 0.3f * h;
    auto params = [&](DType t, HostTensor& qq, HostTensor& kk, HostTensor& vv, HostTensor& oo,
                      HostTensor& ss) {
      AttnDecodeParams p;
      p.dtype = t, p.batch = B, p.heads = H, p.dim_qk = D, p.dim_v = E;
      p.q = ConstSeqTensor(qq.data(), H * D, 0, D), p.k = ConstSeqTensor(kk.data(), H * D, 0, D);
      p.v = ConstSeqTensor(vv.data(), H * E, 0, E), p.o = SeqTensor(oo.data(), H * E, 0, E);
      p.state = ss.data(), p.slopes = slopes.data(), p.scale = 0.7f;
      return p;
    };
    o.poison();
    tnl::attention_decode(params(dt, q, k, v, o, st));
    reference::attention_decode(params(DType::f64, q64, k64, v64, o64, st64));
    EXPECT_LE(rel_error(o, o64), bar(dt)) << "o";
    EXPECT_LE(rel_error(st, st64), kF32Bar) << "state";
  }
}

}  // namespace
}  // namespace tnl::cpu
