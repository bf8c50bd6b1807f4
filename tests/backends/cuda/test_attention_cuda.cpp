// test_attention_cuda.cpp: the CUDA backend against the fp64 CPU oracle (spec §4).
//
// Bars, per output tensor, ‖out − ref‖ / ‖ref‖ with ref computed in fp64 from the same
// (rounded) inputs:
//   fp32 inputs: ≤ 1e-4 (the GPU bar).
//   fp16/bf16 inputs: ≤ 1e-2 and ≤ 2× the error of ref rounded to that dtype (the floor any
//   method that returns that dtype has; stricter than "2× the same math at that dtype").
//   States (fp32 on every dtype): ≤ 1e-4.
// Outputs are NaN-poisoned before each run, inputs are fresh random draws (seed printed).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>

#include "testing/testing.h"

namespace tnl {
namespace {

using testing::HostTensor;

#define CK(stmt) ASSERT_EQ((stmt), cudaSuccess) << #stmt

// A device copy of a host tensor; frees itself.
struct DevBuf {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DevBuf(const HostTensor& h) : bytes(h.bytes.size()) {
    if (cudaMalloc(&ptr, bytes ? bytes : 4) != cudaSuccess) throw Error("cudaMalloc failed");
    if (cudaMemcpy(ptr, h.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess)
      throw Error("cudaMemcpy failed");
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { cudaFree(ptr); }
  void download(HostTensor& h) const {
    if (cudaMemcpy(h.data(), ptr, bytes, cudaMemcpyDeviceToHost) != cudaSuccess)
      throw Error("cudaMemcpy failed");
  }
};

// Strides of a (B, N, H, dim) tensor: bnhd, bhnd, or bnhd with padding everywhere.
struct View {
  int64_t numel, sb, sn, sh;
};
enum class Lay { bnhd, bhnd, padded };
View make_view(Lay lay, int64_t B, int64_t N, int64_t H, int64_t dim) {
  if (lay == Lay::bnhd) return {B * N * H * dim, N * H * dim, H * dim, dim};
  if (lay == Lay::bhnd) return {B * N * H * dim, H * N * dim, dim, N * dim};
  const int64_t ld = dim + 3, sb = N * H * ld + 5;
  return {B * sb, sb, H * ld, ld};
}

// The logical (B, N, H, dim) elements of a strided buffer, in that order.
std::vector<double> logical(const HostTensor& t, const View& v, int64_t B, int64_t N, int64_t H,
                            int64_t dim) {
  std::vector<double> out;
  out.reserve(B * N * H * dim);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < dim; ++d) out.push_back(t.get(b * v.sb + n * v.sn + h * v.sh + d));
  return out;
}

std::vector<double> rounded(const std::vector<double>& x, DType dt) {
  HostTensor t(dt, (int64_t)x.size());
  for (size_t i = 0; i < x.size(); ++i) t.set((int64_t)i, x[i]);
  return t.to_f64();
}

// Checks one output against the oracle with the bar of its dtype; returns the error.
double check(const char* what, DType dt, const std::vector<double>& out,
             const std::vector<double>& ref) {
  const double err = testing::rel_error(out, ref);
  double bar = 1e-4;
  if (dt != DType::f32) {
    const double floor = testing::rel_error(rounded(ref, dt), ref);
    bar = std::min(1e-2, 2.0 * floor + 1e-6);
  }
  EXPECT_LE(err, bar) << what << " (" << dtype_name(dt) << ")";
  return err;
}

struct Case {
  DType dt = DType::f32;
  Lay lay = Lay::bnhd;
  int64_t B = 1, N = 1, H = 1, D = 16, E = 16;
  double slope_max = 0.5;       // slopes (h+1)/H · slope_max
  bool states = false;          // S0 + S_final (forward), S0 + dS_final + dS0 (backward)
  std::vector<int32_t> lens;    // varlen when non-empty (B = 1, N = T)
  int poison = -1;              // varlen: this sequence's q, k, v, dO are NaN; no other output may see them
  float scale = 1.0f;
  // The forward keeps its segment starts (attention_segment_starts_bytes, a NaN-filled buffer)
  // and the backward reuses them; a case that splits at D = E must get a size > 0.
  bool keep_starts = false;
  std::string name() const {
    return detail::cat(dtype_name(dt), " lay=", (int)lay, " B=", B, " N=", N, " H=", H, " D=", D,
                       " E=", E, " s=", slope_max, " states=", states, " varlen=", lens.size(),
                       " c=", scale, poison >= 0 ? " poisoned" : "", keep_starts ? " keep_starts" : "");
  }
};

// Forward and backward of one case on the GPU and in fp64 on the CPU; checks every output.
void run_case(const Case& c0, bool backward, std::mt19937_64& rng, double* worst) {
  Case c = c0;
  std::vector<int32_t> cu;
  if (!c.lens.empty()) {
    cu.push_back(0);
    for (int32_t l : c.lens) cu.push_back(cu.back() + l);
    c.B = 1;
    c.N = cu.back();
  }
  SCOPED_TRACE(c.name());
  const int64_t S = c.lens.empty() ? c.B : (int64_t)c.lens.size();
  const View vq = make_view(c.lay, c.B, c.N, c.H, c.D), vv = make_view(c.lay, c.B, c.N, c.H, c.E);
  HostTensor q(c.dt, vq.numel), k(c.dt, vq.numel), v(c.dt, vv.numel), g(c.dt, vv.numel);
  q.fill_normal(rng, 1.0 / std::sqrt((double)c.D));
  k.fill_normal(rng, 1.0 / std::sqrt((double)c.D));
  v.fill_normal(rng, 1.0);
  g.fill_normal(rng, 1.0);
  if (c.poison >= 0) {  // every element of the sequence's rows
    for (int64_t n = cu[c.poison]; n < cu[c.poison + 1]; ++n)
      for (int64_t h = 0; h < c.H; ++h) {
        for (int64_t d = 0; d < c.D; ++d) {
          q.set(n * vq.sn + h * vq.sh + d, NAN);
          k.set(n * vq.sn + h * vq.sh + d, NAN);
        }
        for (int64_t e = 0; e < c.E; ++e) {
          v.set(n * vv.sn + h * vv.sh + e, NAN);
          g.set(n * vv.sn + h * vv.sh + e, NAN);
        }
      }
  }
  // Logical (B, N, H, dim) elements, or (S, H, D, E) states, with the poisoned sequence's zeroed
  // (its outputs are NaN on both sides).
  auto kept = [&](std::vector<double> x, int64_t dim) {
    if (c.poison >= 0)
      for (int64_t i = cu[c.poison] * c.H * dim; i < cu[c.poison + 1] * c.H * dim; ++i) x[i] = 0;
    return x;
  };
  auto kept_state = [&](std::vector<double> x) {
    if (c.poison >= 0)
      for (int64_t i = c.poison * c.H * c.D * c.E; i < (c.poison + 1) * c.H * c.D * c.E; ++i) x[i] = 0;
    return x;
  };
  HostTensor s0(DType::f32, S * c.H * c.D * c.E), dsf = s0;
  s0.fill_normal(rng, 0.3);
  dsf.fill_normal(rng, 0.3);
  std::vector<float> slopes(c.H);
  for (int64_t h = 0; h < c.H; ++h) slopes[h] = (float)(c.slope_max * (h + 1) / c.H);

  auto st = [&](void* p, const View& w) { return SeqTensor(p, w.sb, w.sn, w.sh); };
  auto cst = [&](const void* p, const View& w) { return ConstSeqTensor(p, w.sb, w.sn, w.sh); };
  const AttnShape shape{c.B, c.N, c.H, c.D, c.E};

  // The oracle, on fp64 copies of the rounded inputs.
  HostTensor q64 = q.converted(DType::f64), k64 = k.converted(DType::f64);
  HostTensor v64 = v.converted(DType::f64), g64 = g.converted(DType::f64);
  HostTensor s064 = s0.converted(DType::f64), dsf64 = dsf.converted(DType::f64);
  HostTensor o64(DType::f64, vv.numel), f64(DType::f64, s0.numel);
  AttnForwardParams rp;
  rp.dtype = DType::f64;
  rp.shape = shape;
  rp.q = cst(q64.data(), vq);
  rp.k = cst(k64.data(), vq);
  rp.v = cst(v64.data(), vv);
  rp.o = st(o64.data(), vv);
  rp.slopes = slopes.data();
  rp.scale = c.scale;
  if (!cu.empty()) {
    rp.cu_seqlens = cu.data();
    rp.num_seqs = S;
    rp.max_seqlen = *std::max_element(c.lens.begin(), c.lens.end());  // the hint, as FlashAttention's callers give it
  }
  if (c.states) {
    rp.initial_state = s064.data();
    rp.final_state = f64.data();
  }
  reference::attention_forward(rp);

  // The GPU.
  HostTensor o(c.dt, vv.numel), fs(DType::f32, s0.numel);
  o.poison();
  fs.poison();
  HostTensor cuh(DType::f32, (int64_t)cu.size());  // int32 bits through a 4-byte buffer
  if (!cu.empty()) std::memcpy(cuh.data(), cu.data(), cu.size() * 4);
  DevBuf dq_(q), dk_(k), dv_(v), dg_(g), ds0(s0), ddsf(dsf), do_(o), dfs(fs), dcu(cuh);
  AttnForwardParams p = rp;
  p.dtype = c.dt;
  p.device = Device::cuda;
  p.q = cst(dq_.ptr, vq);
  p.k = cst(dk_.ptr, vq);
  p.v = cst(dv_.ptr, vv);
  p.o = st(do_.ptr, vv);
  if (!cu.empty()) p.cu_seqlens = static_cast<const int32_t*>(dcu.ptr);
  p.initial_state = c.states ? ds0.ptr : nullptr;
  p.final_state = c.states ? dfs.ptr : nullptr;
  const size_t starts_bytes = c.keep_starts ? attention_segment_starts_bytes(p) : 0;
  if (c.keep_starts && c.D == c.E) {
    EXPECT_GT(starts_bytes, 0u) << "a split case keeps its segment starts";
  }
  HostTensor starts_h(DType::f32, (int64_t)(starts_bytes / 4));
  starts_h.poison();
  DevBuf starts(starts_h);
  if (starts_bytes > 0) {
    p.segment_starts = starts.ptr;
    p.segment_starts_bytes = starts_bytes;
  }
  attention_forward(p);
  CK(cudaDeviceSynchronize());
  do_.download(o);
  dfs.download(fs);
  double e = check("o", c.dt, kept(logical(o, vv, c.B, c.N, c.H, c.E), c.E),
                   kept(logical(o64, vv, c.B, c.N, c.H, c.E), c.E));
  *worst = std::max(*worst, e);
  if (c.states) check("final_state", DType::f32, kept_state(fs.to_f64()), kept_state(f64.to_f64()));
  if (!backward) return;

  HostTensor dq64(DType::f64, vq.numel), dk64 = dq64, dv64(DType::f64, vv.numel);
  HostTensor ds064(DType::f64, s0.numel);
  AttnBackwardParams rb;
  rb.dtype = DType::f64;
  rb.shape = shape;
  rb.q = rp.q;
  rb.k = rp.k;
  rb.v = rp.v;
  rb.d_o = cst(g64.data(), vv);
  rb.dq = st(dq64.data(), vq);
  rb.dk = st(dk64.data(), vq);
  rb.dv = st(dv64.data(), vv);
  rb.slopes = slopes.data();
  rb.scale = c.scale;
  rb.cu_seqlens = rp.cu_seqlens;
  rb.num_seqs = rp.num_seqs;
  if (c.states) {
    rb.initial_state = s064.data();
    rb.d_final_state = dsf64.data();
    rb.d_initial_state = ds064.data();
  }
  reference::attention_backward(rb);

  HostTensor dqh(c.dt, vq.numel), dkh = dqh, dvh(c.dt, vv.numel), ds0h(DType::f32, s0.numel);
  dqh.poison();
  dkh.poison();
  dvh.poison();
  ds0h.poison();
  DevBuf ddq(dqh), ddk(dkh), ddv(dvh), dds0(ds0h);
  AttnBackwardParams b = rb;
  b.dtype = c.dt;
  b.device = Device::cuda;
  b.q = p.q;
  b.k = p.k;
  b.v = p.v;
  b.d_o = cst(dg_.ptr, vv);
  b.dq = st(ddq.ptr, vq);
  b.dk = st(ddk.ptr, vq);
  b.dv = st(ddv.ptr, vv);
  b.cu_seqlens = p.cu_seqlens;
  b.max_seqlen = p.max_seqlen;
  b.initial_state = c.states ? ds0.ptr : nullptr;
  b.d_final_state = c.states ? ddsf.ptr : nullptr;
  b.d_initial_state = c.states ? dds0.ptr : nullptr;
  b.segment_starts = p.segment_starts;
  b.segment_starts_bytes = p.segment_starts_bytes;
  attention_backward(b);
  CK(cudaDeviceSynchronize());
  ddq.download(dqh);
  ddk.download(dkh);
  ddv.download(dvh);
  dds0.download(ds0h);
  e = check("dq", c.dt, kept(logical(dqh, vq, c.B, c.N, c.H, c.D), c.D),
            kept(logical(dq64, vq, c.B, c.N, c.H, c.D), c.D));
  *worst = std::max(*worst, e);
  e = check("dk", c.dt, kept(logical(dkh, vq, c.B, c.N, c.H, c.D), c.D),
            kept(logical(dk64, vq, c.B, c.N, c.H, c.D), c.D));
  *worst = std::max(*worst, e);
  e = check("dv", c.dt, kept(logical(dvh, vv, c.B, c.N, c.H, c.E), c.E),
            kept(logical(dv64, vv, c.B, c.N, c.H, c.E), c.E));
  *worst = std::max(*worst, e);
  if (c.states) check("d_initial_state", DType::f32, kept_state(ds0h.to_f64()), kept_state(ds064.to_f64()));
}

bool have_gpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define REQUIRE_GPU() \
  if (!have_gpu()) GTEST_SKIP() << "no CUDA device"

class AttentionCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = testing::fresh_seed();
    rng_.seed(seed_);
    std::printf("seed %llu\n", (unsigned long long)seed_);
  }
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

// The spec §4 matrix: N = 1, 2, C−1, C, C+1, 1000; D, E over {16, 64, 96, 128, 192, 256} incl.
// D ≠ E; s = 0, tiny, 1; states on and off; both layouts and padded strides; every dtype.
TEST_F(AttentionCuda, ForwardBackwardMatrix) {
  REQUIRE_GPU();
  std::vector<Case> cases;
  const DType dts[] = {DType::f32, DType::bf16, DType::f16};
  const int64_t Ns[] = {1, 2, 63, 64, 65, 200};
  int i = 0;
  for (DType dt : dts)
    for (int64_t N : Ns) {
      Case c;
      c.dt = dt;
      c.N = N;
      c.B = 2;
      c.H = 3;
      c.D = 64;
      c.E = 64;
      c.lay = (Lay)(i % 3);
      c.slope_max = (i % 3 == 0) ? 0.0 : (i % 3 == 1) ? 1e-4 : 1.0;
      c.states = i % 2 == 0;
      c.scale = i % 4 == 1 ? 0.125f : 1.0f;
      cases.push_back(c);
      ++i;
    }
  const int64_t dims[][2] = {{16, 16}, {96, 96}, {128, 128}, {192, 192}, {256, 256},
                             {256, 128}, {64, 256}, {33, 17}, {1, 5}, {130, 70}};
  for (DType dt : dts)
    for (const auto& de : dims) {
      Case c;
      c.dt = dt;
      c.B = 1;
      c.H = 2;
      c.N = 150;
      c.D = de[0];
      c.E = de[1];
      c.lay = (Lay)(i % 3);
      c.slope_max = (i % 2) ? 1.0 : 0.05;
      c.states = true;
      c.scale = 0.5f;
      cases.push_back(c);
      ++i;
    }
  {  // N = 1000, both layouts
    Case c;
    c.N = 1000;
    c.H = 2;
    c.D = 128;
    c.E = 128;
    c.states = true;
    for (DType dt : dts) {
      c.dt = dt;
      c.lay = c.lay == Lay::bnhd ? Lay::bhnd : Lay::bnhd;
      cases.push_back(c);
    }
  }
  double worst = 0;
  for (const Case& c : cases) run_case(c, true, rng_, &worst);
  std::printf("ForwardBackwardMatrix: %zu cases, worst relative error of o/dq/dk/dv %.3g\n",
              cases.size(), worst);
}

// One small case of every path (varlen, padded strides, states, D != E, segments), cheap
// enough for compute-sanitizer memcheck and racecheck (scripts/gpu-check.sh).
TEST_F(AttentionCuda, SmallForSanitizers) {
  REQUIRE_GPU();
  double worst = 0;
  Case c;
  c.dt = DType::bf16;
  c.H = 2;
  c.D = 96;
  c.E = 40;
  c.lens = {1, 65, 30};
  c.states = true;
  c.lay = Lay::padded;
  run_case(c, true, rng_, &worst);
  Case s;  // segmented: one (sequence, head), long enough to split
  s.dt = DType::f32;
  s.N = 600;
  s.D = 32;
  s.E = 64;
  s.states = true;
  run_case(s, true, rng_, &worst);
  Case sb = s;  // bf16 at D = E = 128: the GEMM pre-pass, four segments of four chunks, each
  sb.dt = DType::bf16;  // split in two sub-segments
  sb.N = 1024;
  sb.D = sb.E = 128;
  run_case(sb, true, rng_, &worst);
  Case s64 = sb;  // the same at D = E = 64 (on sm_90 the TMA scan's blocks of one consumer)
  s64.D = s64.E = 64;
  run_case(s64, true, rng_, &worst);
  Case sv = s;  // segmented varlen: segments of 320 rows, 1300 takes five, 640 ends on a boundary
  sv.dt = DType::bf16;
  sv.lens = {1300, 0, 640, 200};
  sv.lay = Lay::padded;
  run_case(sv, true, rng_, &worst);
  Case svt = sv;  // the same on the TMA scans and pre-pass (sm_90), D = E = 128 and 64
  svt.lay = Lay::bnhd;
  svt.D = svt.E = 128;
  run_case(svt, true, rng_, &worst);
  svt.D = svt.E = 64;
  run_case(svt, true, rng_, &worst);
  Case s256 = sb;  // D = 256, E = 128 unsplit, compensated: on sm_90 the TMA scans of four dk halves
                   // (forward, dv) and the reversed one of two (dk)
  s256.N = 200;
  s256.D = 256;
  s256.E = 128;
  run_case(s256, true, rng_, &worst);
  std::printf("SmallForSanitizers: worst %.3g\n", worst);
}

// A varlen case (H = 2, per-sequence states) at each (D, E): fp32 on bnhd rows, bf16 on padded
// rows (the mma.sync scans) and on aligned ones (on sm_90 the TMA scans and pre-pass, boxes across
// sequences).
// `split`: the batch splits into segments, and each (dt, D, E) runs once more with the backward
// reusing the forward's segment starts.
void run_varlen_cases(const std::vector<int32_t>& lens, double slope_max,
                      std::initializer_list<std::pair<int64_t, int64_t>> dims, std::mt19937_64& rng,
                      double* worst, bool split = false) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (auto de : dims) {
      Case c;
      c.dt = dt;
      c.H = 2;
      c.D = de.first;
      c.E = de.second;
      c.lens = lens;
      c.states = true;
      c.slope_max = slope_max;
      c.lay = dt == DType::f32 ? Lay::bnhd : Lay::padded;
      run_case(c, true, rng, worst);
      if (dt == DType::bf16) {
        c.lay = Lay::bnhd;
        run_case(c, true, rng, worst);
      }
      if (split) {  // the backward's dq scan from the forward's segment starts
        c.keep_starts = true;
        run_case(c, true, rng, worst);
      }
    }
  }
}

// Packed sequences of lengths 1..3C mixed; the state resets at each boundary; per-sequence
// S0, S_final, dS_final, dS0.
TEST_F(AttentionCuda, Varlen) {
  REQUIRE_GPU();
  double worst = 0;
  run_varlen_cases({1, 63, 64, 65, 2, 130, 191, 17}, 0.3, {{64, 64}, {128, 96}, {256, 128}}, rng_, &worst);
  std::printf("Varlen: worst %.3g\n", worst);
}

// A NaN in one packed sequence stays there. The TMA scans' partial chunks load a neighbour's rows
// (sequence 0's last chunk covers sequence 1's first 28 rows; sequence 2's first, reversed, its
// last 28) and zero them before use; every other scan reads only its own rows.
TEST_F(AttentionCuda, VarlenIsolatesNaN) {
  REQUIRE_GPU();
  double worst = 0;
  for (int64_t de : {64, 128}) {
    Case c;
    c.dt = DType::bf16;
    c.H = 2;
    c.D = c.E = de;
    c.lens = {100, 90, 100};
    c.poison = 1;
    c.states = true;
    c.slope_max = 0.3;
    run_case(c, true, rng_, &worst);
  }
  std::printf("VarlenIsolatesNaN: worst %.3g\n", worst);
}

// Few long packed sequences: the segmented varlen path. The mean length (526) and few
// (sequence, head) pairs give segments of 320 rows (two for the mean length, the bound of four
// chunks a segment) on any GPU of >= 24 multiprocessors: 1500 rows take five, 640 and 320 end
// exactly on a boundary, 0 and 1 have one; per-sequence S0, S_final, dS_final, dS0.
TEST_F(AttentionCuda, SegmentedVarlen) {
  REQUIRE_GPU();
  double worst = 0;
  run_varlen_cases({1500, 1, 0, 640, 700, 320}, 0.02, {{64, 64}, {128, 128}}, rng_, &worst, true);
  std::printf("SegmentedVarlen: worst %.3g\n", worst);
}

// A packed batch whose S·H (140) fills the GPU, with one sequence far longer than the others:
// the mean length (74) does not split it, the tail rule does, given max_seqlen (plan_segments:
// segments of 256 rows on any GPU of 52 to 520 multiprocessors): 2500 rows take ten, 512 two
// ending on a boundary, 257 two with a one-row last; 67 short ones (empty included) stay whole.
TEST_F(AttentionCuda, VarlenTail) {
  REQUIRE_GPU();
  double worst = 0;
  std::vector<int32_t> lens{2500};
  for (int i = 0; i < 67; ++i) lens.push_back((i * 37) % 61);
  lens.push_back(512);
  lens.push_back(257);
  run_varlen_cases(lens, 0.02, {{64, 64}, {128, 128}}, rng_, &worst, true);
  std::printf("VarlenTail: worst %.3g\n", worst);
}

// Few (sequence, head) pairs and long N: the segmented path (local states, combine, finish);
// each case also with the backward's dq scan from the forward's segment starts.
TEST_F(AttentionCuda, SegmentedSmallBatch) {
  REQUIRE_GPU();
  double worst = 0;
  for (DType dt : {DType::f32, DType::bf16}) {
    Case c;
    c.dt = dt;
    c.B = 1;
    c.H = 2;
    c.N = 3001;
    c.D = 64;
    c.E = 64;
    c.states = true;
    c.slope_max = 0.02;
    c.lay = dt == DType::f32 ? Lay::bhnd : Lay::bnhd;
    for (bool keep : {false, true}) {  // the second: dq from the forward's segment starts
      c.keep_starts = keep;
      run_case(c, true, rng_, &worst);
    }
  }
  for (DType dt : {DType::f32, DType::bf16}) {  // bf16: on sm_90 the TMA scans of D = 256
    Case c;
    c.dt = dt;
    c.B = 1;
    c.H = 1;
    c.N = 1500;
    c.D = 256;
    c.E = 128;
    c.states = true;
    c.slope_max = 0.001;
    for (bool keep : {false, true}) {  // the second: dq from the forward's segment starts
      c.keep_starts = keep;
      run_case(c, true, rng_, &worst);
    }
  }
  {  // one (sequence, head), 16 segments of 4 chunks: bf16's GEMM pre-pass splits them in two
    Case c;
    c.dt = DType::bf16;
    c.B = 1;
    c.H = 1;
    c.N = 4096;
    c.D = 128;
    c.E = 128;
    c.states = true;
    c.slope_max = 0.003;
    c.lay = Lay::bnhd;
    for (bool keep : {false, true}) {  // the second: dq from the forward's segment starts
      c.keep_starts = keep;
      run_case(c, true, rng_, &worst);
    }
  }
  std::printf("SegmentedSmallBatch: worst %.3g\n", worst);
}

// The segment starts buffer: its size is what a split forward needs, a smaller or misaligned one
// is an ArgumentError naming it (forward and backward), and a forward that does not split keeps
// nothing (size 0).
TEST_F(AttentionCuda, SegmentStartsArguments) {
  REQUIRE_GPU();
  const int64_t N = 4096, H = 1, D = 64;
  const AttnShape shape{1, N, H, D, D};
  HostTensor x(DType::bf16, N * H * D), s0(DType::f32, 4096);
  x.fill_normal(rng_, 0.1);
  DevBuf dx(x), dbuf(s0);
  const float slope = 0.01f;
  AttnForwardParams p;
  p.dtype = DType::bf16;
  p.device = Device::cuda;
  p.shape = shape;
  p.q = p.k = p.v = seq_tensor(static_cast<const void*>(dx.ptr), Layout::bnhd, 1, N, H, D);
  HostTensor o(DType::bf16, N * H * D);
  DevBuf dout(o);
  p.o = seq_tensor(dout.ptr, Layout::bnhd, 1, N, H, D);
  p.slopes = &slope;
  const size_t need = attention_segment_starts_bytes(p);
  ASSERT_GT(need, 0u) << "one (sequence, head) of 4096 rows splits";
  HostTensor big(DType::f32, (int64_t)need / 4 + 4);
  DevBuf dbig(big);
  auto expect_named = [](const std::function<void()>& call, const std::string& name) {  // ArgumentError naming it
    try {
      call();
      ADD_FAILURE() << "expected an ArgumentError naming '" << name << "'";
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + name + "'"), std::string::npos) << e.what();
    }
  };
  p.segment_starts = dbig.ptr;
  p.segment_starts_bytes = need - 4;
  expect_named([&] { attention_forward(p); }, "segment_starts_bytes");
  p.segment_starts = static_cast<char*>(dbig.ptr) + 4;
  p.segment_starts_bytes = need;
  expect_named([&] { attention_forward(p); }, "segment_starts");
  AttnBackwardParams b;
  b.dtype = DType::bf16;
  b.device = Device::cuda;
  b.shape = shape;
  b.q = b.k = b.v = b.d_o = p.q;
  b.dq = b.dk = b.dv = p.o;
  b.slopes = &slope;
  b.segment_starts = dbig.ptr;
  b.segment_starts_bytes = need - 4;
  expect_named([&] { attention_backward(b); }, "segment_starts_bytes");
  CK(cudaDeviceSynchronize());
  AttnForwardParams small = p;  // 64 rows: no split, nothing kept
  small.shape.seqlen = 64;
  small.q = small.k = small.v = seq_tensor(static_cast<const void*>(dx.ptr), Layout::bnhd, 1, 64, H, D);
  small.o = seq_tensor(dout.ptr, Layout::bnhd, 1, 64, H, D);
  EXPECT_EQ(attention_segment_starts_bytes(small), 0u);
}

// Long sequences: N = 10^5 against the fp64 recurrence, N = 10^6 finite and against it too.
void long_case(int64_t N, DType dt, std::mt19937_64& rng) {
  const int64_t B = 1, H = 3, D = 32, E = 32;
  SCOPED_TRACE(detail::cat("long N=", N, " ", dtype_name(dt)));
  HostTensor q(dt, B * N * H * D), k = q, v(dt, B * N * H * E);
  q.fill_normal(rng, 1.0 / std::sqrt((double)D));
  k.fill_normal(rng, 1.0 / std::sqrt((double)D));
  v.fill_normal(rng, 1.0);
  const std::vector<float> slopes = {0.0f, 1e-3f, 1.0f};
  HostTensor o(dt, v.numel), fs(DType::f32, B * H * D * E);
  o.poison();
  fs.poison();
  DevBuf dq_(q), dk_(k), dv_(v), do_(o), dfs(fs);
  AttnForwardParams p;
  p.dtype = dt;
  p.device = Device::cuda;
  p.shape = {B, N, H, D, E};
  p.q = seq_tensor(dq_.ptr, Layout::bnhd, B, N, H, D);
  p.k = seq_tensor(dk_.ptr, Layout::bnhd, B, N, H, D);
  p.v = seq_tensor(dv_.ptr, Layout::bnhd, B, N, H, E);
  p.o = seq_tensor(do_.ptr, Layout::bnhd, B, N, H, E);
  p.final_state = dfs.ptr;
  p.slopes = slopes.data();
  attention_forward(p);
  CK(cudaDeviceSynchronize());
  do_.download(o);
  dfs.download(fs);
  HostTensor q64 = q.converted(DType::f64), k64 = k.converted(DType::f64);
  HostTensor v64 = v.converted(DType::f64), o64(DType::f64, o.numel), f64(DType::f64, fs.numel);
  AttnForwardParams rp = p;
  rp.dtype = DType::f64;
  rp.device = Device::cpu;
  rp.q = seq_tensor(q64.data(), Layout::bnhd, B, N, H, D);
  rp.k = seq_tensor(k64.data(), Layout::bnhd, B, N, H, D);
  rp.v = seq_tensor(v64.data(), Layout::bnhd, B, N, H, E);
  rp.o = seq_tensor(o64.data(), Layout::bnhd, B, N, H, E);
  rp.final_state = f64.data();
  reference::attention_forward_recurrent(rp);
  const double e = check("o", dt, o.to_f64(), o64.to_f64());
  check("final_state", DType::f32, fs.to_f64(), f64.to_f64());
  std::printf("long N=%lld %s: o error %.3g\n", (long long)N, dtype_name(dt), e);

  // Backward at this length: every gradient finite.
  HostTensor g(dt, v.numel), dq(dt, q.numel), dk = dq, dv(dt, v.numel);
  g.fill_normal(rng, 1.0);
  dq.poison();
  dk.poison();
  dv.poison();
  DevBuf dg_(g), ddq(dq), ddk(dk), ddv(dv);
  AttnBackwardParams b;
  b.dtype = dt;
  b.device = Device::cuda;
  b.shape = p.shape;
  b.q = p.q;
  b.k = p.k;
  b.v = p.v;
  b.d_o = seq_tensor(dg_.ptr, Layout::bnhd, B, N, H, E);
  b.dq = seq_tensor(ddq.ptr, Layout::bnhd, B, N, H, D);
  b.dk = seq_tensor(ddk.ptr, Layout::bnhd, B, N, H, D);
  b.dv = seq_tensor(ddv.ptr, Layout::bnhd, B, N, H, E);
  b.slopes = slopes.data();
  attention_backward(b);
  CK(cudaDeviceSynchronize());
  ddq.download(dq);
  ddk.download(dk);
  ddv.download(dv);
  for (const HostTensor* t : {&dq, &dk, &dv}) {
    const std::vector<double> x = t->to_f64();
    int64_t bad = 0;
    for (double y : x) bad += !std::isfinite(y);
    EXPECT_EQ(bad, 0) << "non-finite gradient elements";
  }
}

TEST_F(AttentionCuda, LongSequence1e5) {
  REQUIRE_GPU();
  long_case(100000, DType::f32, rng_);
}

TEST_F(AttentionCuda, LongSequence1e6) {
  REQUIRE_GPU();
  long_case(1000000, DType::bf16, rng_);
}

// Decode against the oracle; and forward(N) then decode equals forward(N+1) at the last token.
TEST_F(AttentionCuda, Decode) {
  REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16, DType::f16})
    for (auto de : {std::pair<int64_t, int64_t>{64, 64}, {128, 128}, {256, 128}, {33, 17}, {96, 192}}) {
      const int64_t B = 3, H = 4, D = de.first, E = de.second;
      SCOPED_TRACE(detail::cat("decode ", dtype_name(dt), " D=", D, " E=", E));
      HostTensor q(dt, B * H * D), k = q, v(dt, B * H * E), o(dt, B * H * E);
      HostTensor s(DType::f32, B * H * D * E);
      q.fill_normal(rng_, 1.0 / std::sqrt((double)D));
      k.fill_normal(rng_, 1.0 / std::sqrt((double)D));
      v.fill_normal(rng_, 1.0);
      s.fill_normal(rng_, 1.0);
      o.poison();
      std::vector<float> slopes(H);
      for (int64_t h = 0; h < H; ++h) slopes[h] = 0.3f * h;
      HostTensor q64 = q.converted(DType::f64), k64 = k.converted(DType::f64);
      HostTensor v64 = v.converted(DType::f64), o64(DType::f64, o.numel), s64 = s.converted(DType::f64);
      AttnDecodeParams rp;
      rp.dtype = DType::f64;
      rp.batch = B;
      rp.heads = H;
      rp.dim_qk = D;
      rp.dim_v = E;
      rp.q = ConstSeqTensor(q64.data(), H * D, 0, D);
      rp.k = ConstSeqTensor(k64.data(), H * D, 0, D);
      rp.v = ConstSeqTensor(v64.data(), H * E, 0, E);
      rp.o = SeqTensor(o64.data(), H * E, 0, E);
      rp.state = s64.data();
      rp.slopes = slopes.data();
      rp.scale = 0.7f;
      reference::attention_decode(rp);
      DevBuf dq_(q), dk_(k), dv_(v), do_(o), ds(s);
      AttnDecodeParams p = rp;
      p.dtype = dt;
      p.device = Device::cuda;
      p.q = ConstSeqTensor(dq_.ptr, H * D, 0, D);
      p.k = ConstSeqTensor(dk_.ptr, H * D, 0, D);
      p.v = ConstSeqTensor(dv_.ptr, H * E, 0, E);
      p.o = SeqTensor(do_.ptr, H * E, 0, E);
      p.state = ds.ptr;
      attention_decode(p);
      CK(cudaDeviceSynchronize());
      do_.download(o);
      ds.download(s);
      check("o", dt, o.to_f64(), o64.to_f64());
      check("state", DType::f32, s.to_f64(), s64.to_f64());
    }
}

// Bit-identical results on repeat (no atomics, fixed reduction order), on the segmented path.
// The forward captured in a CUDA graph on a non-default stream gives the same bits too: no
// hidden synchronization, no cudaMalloc outside the stream-ordered allocator. Both
// intermediates modes: rounded bf16 at D = E = 128 runs the TMA scan on H100/H200 (host-encoded
// tensor maps, new ones inside the capture: its outputs are new buffers).
void check_deterministic_and_capturable(std::mt19937_64& rng, Intermediates im) {
  const int64_t B = 1, N = 4000, H = 2, D = 128, E = 128;
  const DType dt = DType::bf16;
  HostTensor q(dt, B * N * H * D), k = q, v(dt, B * N * H * E), g = v, o = v;
  q.fill_normal(rng, 0.1);
  k.fill_normal(rng, 0.1);
  v.fill_normal(rng, 1.0);
  g.fill_normal(rng, 1.0);
  o.poison();
  DevBuf dq_(q), dk_(k), dv_(v), dg_(g), o1(o), o2(o), o3(o);
  DevBuf gq1(q), gk1(k), gv1(v), gq2(q), gk2(k), gv2(v), gq3(q), gk3(k), gv3(v);
  const std::vector<float> slopes = {0.01f, 0.5f};
  AttnForwardParams p;
  p.dtype = dt;
  p.device = Device::cuda;
  p.shape = {B, N, H, D, E};
  p.q = seq_tensor(dq_.ptr, Layout::bnhd, B, N, H, D);
  p.k = seq_tensor(dk_.ptr, Layout::bnhd, B, N, H, D);
  p.v = seq_tensor(dv_.ptr, Layout::bnhd, B, N, H, E);
  p.slopes = slopes.data();
  p.intermediates = im;
  p.o = seq_tensor(o1.ptr, Layout::bnhd, B, N, H, E);
  attention_forward(p);
  p.o = seq_tensor(o2.ptr, Layout::bnhd, B, N, H, E);
  attention_forward(p);
  AttnBackwardParams b;
  b.dtype = dt;
  b.device = Device::cuda;
  b.shape = p.shape;
  b.q = p.q;
  b.k = p.k;
  b.v = p.v;
  b.d_o = seq_tensor(dg_.ptr, Layout::bnhd, B, N, H, E);
  b.slopes = slopes.data();
  b.intermediates = im;
  b.dq = seq_tensor(gq1.ptr, Layout::bnhd, B, N, H, D);
  b.dk = seq_tensor(gk1.ptr, Layout::bnhd, B, N, H, D);
  b.dv = seq_tensor(gv1.ptr, Layout::bnhd, B, N, H, E);
  attention_backward(b);
  b.dq = seq_tensor(gq2.ptr, Layout::bnhd, B, N, H, D);
  b.dk = seq_tensor(gk2.ptr, Layout::bnhd, B, N, H, D);
  b.dv = seq_tensor(gv2.ptr, Layout::bnhd, B, N, H, E);
  attention_backward(b);

  cudaStream_t stream;
  CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CK(cudaDeviceSynchronize());
  // Captures call() on `stream` into a graph, runs the graph once and frees it.
  auto run_captured = [&](auto&& call) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    call();
    CK(cudaStreamEndCapture(stream, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaGraphLaunch(exec, stream));
    CK(cudaStreamSynchronize(stream));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
  };
  p.o = seq_tensor(o3.ptr, Layout::bnhd, B, N, H, E);
  p.stream = stream;
  ASSERT_NO_FATAL_FAILURE(run_captured([&] { attention_forward(p); }));
  // The backward too: its dk and dv scans fork to side streams and join back inside the graph.
  b.dq = seq_tensor(gq3.ptr, Layout::bnhd, B, N, H, D);
  b.dk = seq_tensor(gk3.ptr, Layout::bnhd, B, N, H, D);
  b.dv = seq_tensor(gv3.ptr, Layout::bnhd, B, N, H, E);
  b.stream = stream;
  ASSERT_NO_FATAL_FAILURE(run_captured([&] { attention_backward(b); }));
  CK(cudaStreamDestroy(stream));

  auto bytes_of = [](const DevBuf& d) {
    std::vector<unsigned char> h(d.bytes);
    EXPECT_EQ(cudaMemcpy(h.data(), d.ptr, d.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  };
  EXPECT_TRUE(bytes_of(o1) == bytes_of(o2)) << "forward not deterministic";
  EXPECT_TRUE(bytes_of(o1) == bytes_of(o3)) << "graph-captured forward differs";
  EXPECT_TRUE(bytes_of(gq1) == bytes_of(gq2)) << "dq not deterministic";
  EXPECT_TRUE(bytes_of(gk1) == bytes_of(gk2)) << "dk not deterministic";
  EXPECT_TRUE(bytes_of(gv1) == bytes_of(gv2)) << "dv not deterministic";
  EXPECT_TRUE(bytes_of(gq1) == bytes_of(gq3)) << "graph-captured dq differs";
  EXPECT_TRUE(bytes_of(gk1) == bytes_of(gk3)) << "graph-captured dk differs";
  EXPECT_TRUE(bytes_of(gv1) == bytes_of(gv3)) << "graph-captured dv differs";
  HostTensor oh(dt, o.numel);
  o1.download(oh);
  for (double x : oh.to_f64()) {
    if (!std::isfinite(x)) {
      ADD_FAILURE() << "unwritten or non-finite output";
      break;
    }
  }
}

TEST_F(AttentionCuda, DeterministicAndStreamCapturable) {
  REQUIRE_GPU();
  for (Intermediates im : {Intermediates::compensated, Intermediates::rounded}) {
    SCOPED_TRACE(im == Intermediates::rounded ? "rounded intermediates" : "compensated intermediates");
    check_deterministic_and_capturable(rng_, im);
  }
}

}  // namespace
}  // namespace tnl
