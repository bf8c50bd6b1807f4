// test_bounds.cpp: the fast paths never touch memory outside their tensors (spec §3: "partial
// blocks are masked, never read past"). Every input and output is copied into its own mapping
// that ends exactly at a PROT_NONE page (or, in the second pass, starts right after one): a
// vector load or store past the last row (or before the first) faults and kills the test.
// Head dims mostly not multiples of 16, N not a multiple of the block; fp32, fp16, bf16;
// forward, backward and decode; results checked against the oracle with the bars of spec §4.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "testing/attn_checks.h"

namespace tnl::testing {
namespace {

// `bytes` of memory flush against an inaccessible page: after it (at_end) or before it.
class FencedBuffer {
 public:
  FencedBuffer(const void* src, size_t bytes, bool at_end) : bytes_(bytes) {
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t body = (bytes + page - 1) / page * page;
    size_ = body + 2 * page;
    void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(m, MAP_FAILED);
    base_ = static_cast<char*>(m);
    mprotect(base_, page, PROT_NONE);
    mprotect(base_ + page + body, page, PROT_NONE);
    data_ = at_end ? base_ + page + body - bytes : base_ + page;
    if (src) std::memcpy(data_, src, bytes);
  }
  ~FencedBuffer() { munmap(base_, size_); }
  FencedBuffer(const FencedBuffer&) = delete;
  FencedBuffer& operator=(const FencedBuffer&) = delete;

  void* data() { return data_; }
  void copy_to(void* dst) const { std::memcpy(dst, data_, bytes_); }

 private:
  size_t bytes_, size_;
  char* base_;
  char* data_;
};

// Bytes of a contiguous (bnhd) tensor of the case, without its guard.
size_t tensor_bytes(const StridedTensor& t) {
  return (size_t)(t.offset(t.batch - 1, t.seqlen - 1, t.heads - 1, t.dim - 1) + 1) *
         (size_t)dtype_size(t.dtype());
}
size_t state_bytes(const StateBuffer& s) { return (size_t)s.numel * 4; }

void check_fenced(DType dt, bool at_end, int64_t N, int64_t D, int64_t E) {
  const uint64_t seed = test_seed();
  AttnCaseConfig cfg = make_config(1, N, 1, D, E, dt, CaseLayout::bnhd);
  cfg.initial_state = cfg.d_final_state = true;
  cfg.slopes = {0.1f};
  SCOPED_TRACE(::testing::Message() << "seed " << seed << "; " << cfg.describe()
                                    << (at_end ? "; fence after" : "; fence before"));
  AttnCase c(cfg, seed);
  c.run_reference_forward();
  c.run_reference_backward();
  c.poison_fast_outputs();
  const auto fence = [&](StridedTensor& t) { return std::make_unique<FencedBuffer>(
                                                  t.buf.data(), tensor_bytes(t), at_end); };
  const auto fence_state = [&](StateBuffer& s) {
    return std::make_unique<FencedBuffer>(s.data(), state_bytes(s), at_end);
  };
  const auto q = fence(c.q), k = fence(c.k), v = fence(c.v), g = fence(c.d_o);
  const auto o = fence(c.o), dq = fence(c.dq), dk = fence(c.dk), dv = fence(c.dv);
  const auto s0 = fence_state(c.initial_state), dsf = fence_state(c.d_final_state);
  const auto sf = fence_state(c.final_state), ds0 = fence_state(c.d_initial_state);

  AttnForwardParams f = c.forward_params();
  f.q.data = q->data(), f.k.data = k->data(), f.v.data = v->data(), f.o.data = o->data();
  f.initial_state = s0->data(), f.final_state = sf->data();
  attention_forward(f);
  AttnBackwardParams b = c.backward_params();
  b.q.data = q->data(), b.k.data = k->data(), b.v.data = v->data(), b.d_o.data = g->data();
  b.dq.data = dq->data(), b.dk.data = dk->data(), b.dv.data = dv->data();
  b.initial_state = s0->data(), b.d_final_state = dsf->data(), b.d_initial_state = ds0->data();
  attention_backward(b);
  o->copy_to(c.o.buf.data()), sf->copy_to(c.final_state.data());
  dq->copy_to(c.dq.buf.data()), dk->copy_to(c.dk.buf.data()), dv->copy_to(c.dv.buf.data());
  ds0->copy_to(c.d_initial_state.data());

  // Bars: fp32 ≤ 1e-5; fp16 / bf16 ≤ 1e-2 (the 2× baseline part is checked elsewhere).
  const double bar = dt == DType::f32 ? kBarF32Cpu : kBarLowPrecision;
  expect_all_within(c.compare(c.fast_forward_outputs(), c.reference_forward_outputs()), bar,
                    {"o", "final_state"});
  expect_all_within(c.compare(c.fast_backward_outputs(), c.reference_backward_outputs()), bar,
                    {"dq", "dk", "dv", "d_initial_state"});

  // Decode of the last token: q, k, v, o rows of D or E elements each, state (D, E).
  const int64_t t = cfg.seqlen - 1, es = dtype_size(dt);
  const auto row = [&](StridedTensor& x) {
    return static_cast<char*>(x.buf.data()) + x.offset(0, t, 0, 0) * es;
  };
  FencedBuffer dqr(row(c.q), D * es, at_end), dkr(row(c.k), D * es, at_end);
  FencedBuffer dvr(row(c.v), E * es, at_end), dor(nullptr, E * es, at_end);
  FencedBuffer state(c.initial_state.data(), state_bytes(c.initial_state), at_end);
  AttnDecodeParams d = c.decode_params(t, state.data());
  d.q.data = dqr.data(), d.k.data = dkr.data(), d.v.data = dvr.data(), d.o.data = dor.data();
  attention_decode(d);
  std::vector<float> s_after(c.initial_state.numel);
  state.copy_to(s_after.data());
  int64_t bad = 0;
  for (float x : s_after) bad += std::isfinite(x) ? 0 : 1;
  EXPECT_EQ(bad, 0) << "decode state has non-finite elements";
}

TEST(Bounds, F32NeverTouchesPastTheEnd) {
  check_fenced(DType::f32, true, 67, 20, 36);
  check_fenced(DType::f32, true, 1, 7, 5);
  check_fenced(DType::f32, true, 65, 256, 256);
  check_fenced(DType::f32, true, 129, 130, 100);
}
TEST(Bounds, F32NeverTouchesBeforeTheStart) {
  check_fenced(DType::f32, false, 67, 20, 36);
  check_fenced(DType::f32, false, 2, 1, 1);
}
TEST(Bounds, F16NeverTouchesPastTheEnd) {
  check_fenced(DType::f16, true, 67, 20, 36);
  check_fenced(DType::f16, true, 129, 130, 100);
}
TEST(Bounds, Bf16NeverTouchesPastTheEnd) {
  check_fenced(DType::bf16, true, 67, 20, 36);
  check_fenced(DType::bf16, true, 2, 1, 1);
  check_fenced(DType::bf16, true, 64, 192, 17);
}
TEST(Bounds, Bf16NeverTouchesBeforeTheStart) { check_fenced(DType::bf16, false, 67, 20, 36); }

}  // namespace
}  // namespace tnl::testing
