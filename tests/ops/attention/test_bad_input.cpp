// test_bad_input.cpp: every class of bad argument (spec §3) gets a tnl::ArgumentError whose
// message names the argument ("argument 'q'" ...), from forward, backward and decode, and
// nothing is written: every buffer (poisoned outputs, gaps, states, inputs) keeps its exact
// bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "testing/attn_checks.h"
#include "tnl/device.h"

namespace tnl::testing {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
// Bad slope sets for H = 2.
const float kNegativeSlope[] = {0.1f, -0.5f};
const float kNaNSlope[] = {kNaN, 0.1f};
const float kInfSlope[] = {0.1f, kInf};
// cu_seqlens for T = 5 packed tokens in 2 sequences (the good one is {0, 2, 5}).
const int32_t kCuGood[] = {0, 2, 5, 0};
const int32_t kCuNotFromZero[] = {1, 2, 5};
const int32_t kCuNotMonotone[] = {0, 4, 2, 5};  // with num_seqs = 3
const int32_t kCuWrongTotal[] = {0, 2, 4};

template <class P>
P* misalign(P* p, int bytes) {
  using Byte = std::conditional_t<std::is_const_v<P>, const char, char>;
  return reinterpret_cast<P*>(reinterpret_cast<Byte*>(p) + bytes);
}

// One bad argument: how to break the params, and the argument the error must name.
template <class Params>
struct BadArg {
  const char* what;
  const char* arg;
  std::function<void(Params&)> mutate;
  bool varlen = false;  // start from the packed case (B = 1, cu_seqlens {0, 2, 5})
};

AttnCaseConfig base_config(bool varlen) {
  AttnCaseConfig cfg = make_config(2, 5, 2, 8, 8, DType::f32, CaseLayout::padded);
  if (varlen) cfg.varlen = {2, 3};
  cfg.initial_state = cfg.d_final_state = true;
  return cfg;
}

// Every buffer of the case, byte for byte.
std::vector<std::vector<unsigned char>> snapshot(const AttnCase& c, const StateBuffer& decode) {
  return {c.q.buf.bytes,      c.k.buf.bytes,  c.v.buf.bytes,  c.d_o.buf.bytes,
          c.o.buf.bytes,      c.dq.buf.bytes, c.dk.buf.bytes, c.dv.buf.bytes,
          c.initial_state.buf.bytes, c.d_final_state.buf.bytes, c.final_state.buf.bytes,
          c.d_initial_state.buf.bytes, decode.buf.bytes};
}

// Calls `run` on the broken params; expects an ArgumentError naming `arg` and no byte changed.
template <class Params>
void expect_rejected(const BadArg<Params>& bad, const std::function<Params(AttnCase&)>& params,
                     const std::function<void(const Params&)>& run, StateBuffer* decode_state) {
  SCOPED_TRACE(::testing::Message() << bad.what << " (expects argument '" << bad.arg << "')");
  const uint64_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  AttnCase c(base_config(bad.varlen), seed);
  StateBuffer dummy;
  StateBuffer& dec = decode_state ? *decode_state : dummy;
  Params p = params(c);
  bad.mutate(p);
  const auto before = snapshot(c, dec);
  const std::string want = detail::cat("argument '", bad.arg, "'");
  try {
    run(p);
    ADD_FAILURE() << "no error thrown";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos)
        << "message does not name " << want << ": " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an ArgumentError: " << e.what();
  }
  EXPECT_TRUE(snapshot(c, dec) == before) << "a buffer was written before the error";
}

// The bad arguments shared by forward and backward (same field names).
template <class P>
std::vector<BadArg<P>> common_bad_args() {
  std::vector<BadArg<P>> v = {
      {"null q", "q", [](P& p) { p.q.data = nullptr; }},
      {"null k", "k", [](P& p) { p.k.data = nullptr; }},
      {"null v", "v", [](P& p) { p.v.data = nullptr; }},
      {"null slopes", "slopes", [](P& p) { p.slopes = nullptr; }},
      {"D = 0", "dim_qk", [](P& p) { p.shape.dim_qk = 0; }},
      {"D = 257", "dim_qk", [](P& p) { p.shape.dim_qk = 257; }},
      {"E = 0", "dim_v", [](P& p) { p.shape.dim_v = 0; }},
      {"E = 257", "dim_v", [](P& p) { p.shape.dim_v = 257; }},
      {"batch 0", "batch", [](P& p) { p.shape.batch = 0; }},
      {"heads 0", "heads", [](P& p) { p.shape.heads = 0; }},
      {"seqlen 0", "seqlen", [](P& p) { p.shape.seqlen = 0; }},
      {"f64 on the fast path", "dtype", [](P& p) { p.dtype = DType::f64; }},
      {"dtype code 7", "dtype", [](P& p) { p.dtype = static_cast<DType>(7); }},
      {"dtype code -1", "dtype", [](P& p) { p.dtype = static_cast<DType>(-1); }},
      {"device code 5", "device", [](P& p) { p.device = static_cast<Device>(5); }},
      {"negative slope", "slopes", [](P& p) { p.slopes = kNegativeSlope; }},
      {"NaN slope", "slopes", [](P& p) { p.slopes = kNaNSlope; }},
      {"Inf slope", "slopes", [](P& p) { p.slopes = kInfSlope; }},
      {"Inf scale", "scale", [](P& p) { p.scale = kInf; }},
      {"NaN scale", "scale", [](P& p) { p.scale = kNaN; }},
      {"negative q seq stride", "q", [](P& p) { p.q.stride_seq = -p.q.stride_seq; }},
      {"negative v head stride", "v", [](P& p) { p.v.stride_head = -1; }},
      {"negative k batch stride", "k", [](P& p) { p.k.stride_batch = -1; }},
      {"misaligned q", "q", [](P& p) { p.q.data = misalign(p.q.data, 1); }},
      {"misaligned v", "v", [](P& p) { p.v.data = misalign(p.v.data, 2); }},
      {"misaligned S0", "initial_state",
       [](P& p) { p.initial_state = misalign(p.initial_state, 2); }},
      {"num_threads -1", "num_threads", [](P& p) { p.num_threads = -1; }},
      {"intermediates out of range", "intermediates", [](P& p) { p.intermediates = static_cast<Intermediates>(7); }},
      {"num_seqs without cu_seqlens", "num_seqs", [](P& p) { p.num_seqs = 2; }},
      {"cu_seqlens[0] != 0", "cu_seqlens", [](P& p) { p.cu_seqlens = kCuNotFromZero; }, true},
      {"cu_seqlens not monotone", "cu_seqlens",
       [](P& p) { p.cu_seqlens = kCuNotMonotone, p.num_seqs = 3; }, true},
      {"cu_seqlens last != T", "cu_seqlens", [](P& p) { p.cu_seqlens = kCuWrongTotal; }, true},
      {"misaligned cu_seqlens", "cu_seqlens",
       [](P& p) { p.cu_seqlens = misalign(kCuGood, 2); }, true},
      {"batch 2 with cu_seqlens", "batch", [](P& p) { p.shape.batch = 2; }, true},
      {"num_seqs 0 with cu_seqlens", "num_seqs", [](P& p) { p.num_seqs = 0; }, true},
      {"max_seqlen without cu_seqlens", "max_seqlen", [](P& p) { p.max_seqlen = 4; }},
      {"max_seqlen -1", "max_seqlen", [](P& p) { p.max_seqlen = -1; }, true},
      {"max_seqlen over seqlen", "max_seqlen", [](P& p) { p.max_seqlen = p.shape.seqlen + 1; }, true},
  };
  if (cuda_device_count() == 0)  // with a GPU, device = cuda on host buffers is not an error
    v.push_back({"device cuda, no CUDA device", "device", [](P& p) { p.device = Device::cuda; }});
  return v;
}

TEST(BadInput, ForwardNamesTheArgumentAndWritesNothing) {
  using P = AttnForwardParams;
  std::vector<BadArg<P>> bad = common_bad_args<P>();
  bad.push_back({"null o", "o", [](P& p) { p.o.data = nullptr; }});
  bad.push_back({"misaligned o", "o", [](P& p) { p.o.data = misalign(p.o.data, 1); }});
  bad.push_back({"negative o stride", "o", [](P& p) { p.o.stride_seq = -1; }});
  bad.push_back({"o heads overlap", "o", [](P& p) { p.o.stride_head = 1; }});
  bad.push_back({"o rows overlap (seq stride 0)", "o", [](P& p) { p.o.stride_seq = 0; }});
  bad.push_back({"misaligned final_state", "final_state",
                 [](P& p) { p.final_state = misalign(p.final_state, 1); }});
  for (const auto& b : bad)
    expect_rejected<P>(b, [](AttnCase& c) { return c.forward_params(); },
                       [](const P& p) { attention_forward(p); }, nullptr);
}

TEST(BadInput, BackwardNamesTheArgumentAndWritesNothing) {
  using P = AttnBackwardParams;
  std::vector<BadArg<P>> bad = common_bad_args<P>();
  bad.push_back({"null d_o", "d_o", [](P& p) { p.d_o.data = nullptr; }});
  bad.push_back({"null dq", "dq", [](P& p) { p.dq.data = nullptr; }});
  bad.push_back({"null dk", "dk", [](P& p) { p.dk.data = nullptr; }});
  bad.push_back({"null dv", "dv", [](P& p) { p.dv.data = nullptr; }});
  bad.push_back({"misaligned dk", "dk", [](P& p) { p.dk.data = misalign(p.dk.data, 3); }});
  bad.push_back({"dq heads overlap", "dq", [](P& p) { p.dq.stride_head = 4; }});
  bad.push_back({"dv batch overlaps seq", "dv", [](P& p) { p.dv.stride_batch = p.dv.stride_seq; }});
  bad.push_back({"negative dv stride", "dv", [](P& p) { p.dv.stride_head = -2; }});
  bad.push_back({"misaligned d_final_state", "d_final_state",
                 [](P& p) { p.d_final_state = misalign(p.d_final_state, 2); }});
  bad.push_back({"misaligned d_initial_state", "d_initial_state",
                 [](P& p) { p.d_initial_state = misalign(p.d_initial_state, 1); }});
  for (const auto& b : bad)
    expect_rejected<P>(b, [](AttnCase& c) { return c.backward_params(); },
                       [](const P& p) { attention_backward(p); }, nullptr);
}

TEST(BadInput, DecodeNamesTheArgumentAndWritesNothing) {
  using P = AttnDecodeParams;
  std::vector<BadArg<P>> bad = {
      {"null q", "q", [](P& p) { p.q.data = nullptr; }},
      {"null k", "k", [](P& p) { p.k.data = nullptr; }},
      {"null v", "v", [](P& p) { p.v.data = nullptr; }},
      {"null o", "o", [](P& p) { p.o.data = nullptr; }},
      {"null state", "state", [](P& p) { p.state = nullptr; }},
      {"null slopes", "slopes", [](P& p) { p.slopes = nullptr; }},
      {"D = 0", "dim_qk", [](P& p) { p.dim_qk = 0; }},
      {"D = 257", "dim_qk", [](P& p) { p.dim_qk = 257; }},
      {"E = 0", "dim_v", [](P& p) { p.dim_v = 0; }},
      {"E = 257", "dim_v", [](P& p) { p.dim_v = 257; }},
      {"batch 0", "batch", [](P& p) { p.batch = 0; }},
      {"heads 0", "heads", [](P& p) { p.heads = 0; }},
      {"f64 on the fast path", "dtype", [](P& p) { p.dtype = DType::f64; }},
      {"dtype code 9", "dtype", [](P& p) { p.dtype = static_cast<DType>(9); }},
      {"device code 2", "device", [](P& p) { p.device = static_cast<Device>(2); }},
      {"negative slope", "slopes", [](P& p) { p.slopes = kNegativeSlope; }},
      {"NaN slope", "slopes", [](P& p) { p.slopes = kNaNSlope; }},
      {"Inf scale", "scale", [](P& p) { p.scale = -kInf; }},
      {"negative q stride", "q", [](P& p) { p.q.stride_head = -1; }},
      {"o heads overlap", "o", [](P& p) { p.o.stride_head = 2; }},
      {"misaligned k", "k", [](P& p) { p.k.data = misalign(p.k.data, 1); }},
      {"misaligned state", "state", [](P& p) { p.state = misalign(p.state, 2); }},
      {"num_threads -3", "num_threads", [](P& p) { p.num_threads = -3; }},
  };
  if (cuda_device_count() == 0)
    bad.push_back({"device cuda, no CUDA device", "device", [](P& p) { p.device = Device::cuda; }});
  for (const auto& b : bad) {
    StateBuffer state;
    expect_rejected<P>(
        b,
        [&state](AttnCase& c) {
          state = c.initial_state;  // (B, H, D, E), read and written in place
          return c.decode_params(0, state.data());
        },
        [](const P& p) { attention_decode(p); }, &state);
  }
}

// The good params of the same cases run without error (so each rejection above is the
// mutation's doing).
TEST(BadInput, UnbrokenParamsAreAccepted) {
  for (bool varlen : {false, true}) {
    AttnCase c(base_config(varlen), test_seed());
    EXPECT_NO_THROW(attention_forward(c.forward_params()));
    EXPECT_NO_THROW(attention_backward(c.backward_params()));
    if (!varlen) {
      StateBuffer state = c.initial_state;
      EXPECT_NO_THROW(attention_decode(c.decode_params(0, state.data())));
    }
  }
}

// The CPU backend keeps no segment starts (size 0), and ignores a buffer it is given: the
// results equal a run without one, and the buffer is untouched.
TEST(BadInput, CpuKeepsNoSegmentStarts) {
  AttnCase c(base_config(false), test_seed());
  AttnForwardParams p = c.forward_params();
  EXPECT_EQ(attention_segment_starts_bytes(p), 0u);
  attention_forward(p);
  const std::vector<double> o = c.o.buf.to_f64();
  std::vector<float> buf(64, 7.f);
  p.segment_starts = buf.data();
  p.segment_starts_bytes = buf.size() * 4;
  attention_forward(p);
  EXPECT_EQ(c.o.buf.to_f64(), o);
  AttnBackwardParams b = c.backward_params();
  b.segment_starts = buf.data();
  b.segment_starts_bytes = buf.size() * 4;
  EXPECT_NO_THROW(attention_backward(b));
  for (float x : buf) EXPECT_EQ(x, 7.f);
}

// The oracle runs on the CPU only: device cuda is refused there too, naming 'device'.
TEST(BadInput, ReferenceRefusesCuda) {
  AttnCase c(base_config(false), test_seed());
  AttnForwardParams p = c.forward_params();
  p.device = Device::cuda;
  try {
    reference::attention_forward(p);
    ADD_FAILURE() << "no error thrown";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("argument 'device'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tnl::testing
