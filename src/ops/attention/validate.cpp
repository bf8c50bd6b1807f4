// validate.cpp: argument validation for forward, backward and decode (spec §3).
#include "ops/attention/validate.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

namespace tnl::attn {
namespace {

void check_dtype_device(DType dtype, Device device, const ValidateOptions& opt) {
  const int d = static_cast<int>(dtype);
  TNL_ARG_CHECK(d >= 0 && d <= 3, opt.fn, "dtype", "expected f32, f16, bf16 or f64, got code ", d);
  TNL_ARG_CHECK(dtype != DType::f64 || opt.allow_f64, opt.fn, "dtype",
                "expected f32, f16 or bf16 (f64 is for the reference only), got f64");
  const int dev = static_cast<int>(device);
  TNL_ARG_CHECK(dev == 0 || dev == 1, opt.fn, "device", "expected cpu or cuda, got code ", dev);
  TNL_ARG_CHECK(!opt.allow_f64 || device == Device::cpu, opt.fn, "device",
                "the reference runs on the cpu, got ", device_name(device));
}

void check_dims(int64_t batch, int64_t seqlen, int64_t heads, int64_t dim_qk, int64_t dim_v,
                const ValidateOptions& opt) {
  TNL_ARG_CHECK(batch >= 1, opt.fn, "batch", "expected >= 1, got ", batch);
  TNL_ARG_CHECK(seqlen >= 1, opt.fn, "seqlen", "expected >= 1, got ", seqlen);
  TNL_ARG_CHECK(heads >= 1, opt.fn, "heads", "expected >= 1, got ", heads);
  TNL_ARG_CHECK(dim_qk >= 1 && dim_qk <= kMaxHeadDim, opt.fn, "dim_qk", "expected 1..",
                kMaxHeadDim, ", got ", dim_qk);
  TNL_ARG_CHECK(dim_v >= 1 && dim_v <= kMaxHeadDim, opt.fn, "dim_v", "expected 1..", kMaxHeadDim,
                ", got ", dim_v);
}

// A (B, N, H, dim) view: non-null, aligned, strides >= 0; an output's rows must not overlap.
template <class Ptr>
void check_tensor(const SeqTensorT<Ptr>& t, const char* name, DType dtype, int64_t batch,
                  int64_t seqlen, int64_t heads, int64_t dim, bool is_output,
                  const ValidateOptions& opt) {
  TNL_ARG_CHECK(t.data != nullptr, opt.fn, name, "expected a non-null data pointer");
  const int64_t es = dtype_size(dtype);
  TNL_ARG_CHECK(reinterpret_cast<uintptr_t>(t.data) % es == 0, opt.fn, name,
                "expected data aligned to ", es, " bytes (", dtype_name(dtype), ")");
  TNL_ARG_CHECK(t.stride_batch >= 0 && t.stride_seq >= 0 && t.stride_head >= 0, opt.fn, name,
                "expected non-negative strides, got (batch ", t.stride_batch, ", seq ",
                t.stride_seq, ", head ", t.stride_head, ")");
  if (!is_output) return;
  // Walk the dims of size > 1 from the smallest stride up: each must step past all of the
  // elements spanned by the dims below it, else two output elements share an address.
  std::array<std::pair<int64_t, int64_t>, 3> dims = {std::make_pair(t.stride_batch, batch),
                                                     std::make_pair(t.stride_seq, seqlen),
                                                     std::make_pair(t.stride_head, heads)};
  std::sort(dims.begin(), dims.end());
  int64_t extent = dim;
  for (const auto& [stride, size] : dims) {
    if (size <= 1) continue;
    TNL_ARG_CHECK(stride >= extent, opt.fn, name,
                  "expected strides that do not overlap rows of the output (a stride of ", stride,
                  " is smaller than the ", extent, " elements it must step over)");
    extent = stride * (size - 1) + extent;
  }
}

void check_slopes(const float* slopes, int64_t heads, const ValidateOptions& opt) {
  TNL_ARG_CHECK(slopes != nullptr, opt.fn, "slopes", "expected a host pointer to ", heads,
                " fp32 values");
  for (int64_t h = 0; h < heads; ++h) {
    TNL_ARG_CHECK(std::isfinite(slopes[h]), opt.fn, "slopes",
                  "expected finite values, got ", slopes[h], " at head ", h);
    TNL_ARG_CHECK(slopes[h] >= 0.0f, opt.fn, "slopes", "expected values >= 0, got ", slopes[h],
                  " at head ", h);
  }
}

void check_scale(float scale, const ValidateOptions& opt) {
  TNL_ARG_CHECK(std::isfinite(scale), opt.fn, "scale", "expected a finite value, got ", scale);
}

void check_intermediates(Intermediates m, const ValidateOptions& opt) {
  TNL_ARG_CHECK(m == Intermediates::compensated || m == Intermediates::rounded, opt.fn, "intermediates",
                "expected Intermediates::compensated or Intermediates::rounded, got ", (int)m);
}

void check_threads(int num_threads, const ValidateOptions& opt) {
  TNL_ARG_CHECK(num_threads >= 0, opt.fn, "num_threads", "expected >= 0 (0 = all), got ",
                num_threads);
}

void check_varlen(const AttnShape& s, const int32_t* cu, int64_t num_seqs, int64_t max_seqlen, Device device,
                  const ValidateOptions& opt) {
  if (cu == nullptr) {
    TNL_ARG_CHECK(num_seqs == 0, opt.fn, "num_seqs",
                  "expected 0 without cu_seqlens, got ", num_seqs);
    TNL_ARG_CHECK(max_seqlen == 0, opt.fn, "max_seqlen",
                  "expected 0 without cu_seqlens, got ", max_seqlen);
    return;
  }
  TNL_ARG_CHECK(max_seqlen >= 0 && max_seqlen <= s.seqlen, opt.fn, "max_seqlen",
                "expected 0 (unknown) or the longest sequence's length, at most seqlen = ", s.seqlen,
                ", got ", max_seqlen);
  TNL_ARG_CHECK(s.batch == 1, opt.fn, "batch",
                "expected 1 with cu_seqlens (sequences are packed along seqlen), got ", s.batch);
  TNL_ARG_CHECK(num_seqs >= 1, opt.fn, "num_seqs", "expected >= 1 with cu_seqlens, got ",
                num_seqs);
  TNL_ARG_CHECK(s.seqlen <= INT32_MAX, opt.fn, "seqlen",
                "expected at most 2^31-1 packed tokens with cu_seqlens, got ", s.seqlen);
  TNL_ARG_CHECK(reinterpret_cast<uintptr_t>(cu) % 4 == 0, opt.fn, "cu_seqlens",
                "expected data aligned to 4 bytes (int32)");
  if (device != Device::cpu) return;  // device memory: the CUDA backend checks it there
  TNL_ARG_CHECK(cu[0] == 0, opt.fn, "cu_seqlens", "expected cu_seqlens[0] == 0, got ", cu[0]);
  for (int64_t i = 1; i <= num_seqs; ++i)
    TNL_ARG_CHECK(cu[i] >= cu[i - 1], opt.fn, "cu_seqlens",
                  "expected non-decreasing offsets, got cu_seqlens[", i, "] = ", cu[i],
                  " < cu_seqlens[", i - 1, "] = ", cu[i - 1]);
  TNL_ARG_CHECK(cu[num_seqs] == s.seqlen, opt.fn, "cu_seqlens",
                "expected cu_seqlens[num_seqs] == seqlen (total tokens) = ", s.seqlen, ", got ",
                cu[num_seqs]);
}

void check_state(const void* state, const char* name, DType dtype, const ValidateOptions& opt) {
  if (state == nullptr) return;
  const int64_t es = state_elem_size(dtype);
  TNL_ARG_CHECK(reinterpret_cast<uintptr_t>(state) % es == 0, opt.fn, name,
                "expected data aligned to ", es, " bytes");
}

}  // namespace

void validate(const AttnForwardParams& p, const ValidateOptions& opt) {
  const AttnShape& s = p.shape;
  check_dtype_device(p.dtype, p.device, opt);
  check_dims(s.batch, s.seqlen, s.heads, s.dim_qk, s.dim_v, opt);
  check_varlen(s, p.cu_seqlens, p.num_seqs, p.max_seqlen, p.device, opt);
  check_tensor(p.q, "q", p.dtype, s.batch, s.seqlen, s.heads, s.dim_qk, false, opt);
  check_tensor(p.k, "k", p.dtype, s.batch, s.seqlen, s.heads, s.dim_qk, false, opt);
  check_tensor(p.v, "v", p.dtype, s.batch, s.seqlen, s.heads, s.dim_v, false, opt);
  check_tensor(p.o, "o", p.dtype, s.batch, s.seqlen, s.heads, s.dim_v, true, opt);
  check_slopes(p.slopes, s.heads, opt);
  check_scale(p.scale, opt);
  check_state(p.initial_state, "initial_state", p.dtype, opt);
  check_state(p.final_state, "final_state", p.dtype, opt);
  check_threads(p.num_threads, opt);
  check_intermediates(p.intermediates, opt);
}

void validate(const AttnBackwardParams& p, const ValidateOptions& opt) {
  const AttnShape& s = p.shape;
  check_dtype_device(p.dtype, p.device, opt);
  check_dims(s.batch, s.seqlen, s.heads, s.dim_qk, s.dim_v, opt);
  check_varlen(s, p.cu_seqlens, p.num_seqs, p.max_seqlen, p.device, opt);
  check_tensor(p.q, "q", p.dtype, s.batch, s.seqlen, s.heads, s.dim_qk, false, opt);
  check_tensor(p.k, "k", p.dtype, s.batch, s.seqlen, s.heads, s.dim_qk, false, opt);
  check_tensor(p.v, "v", p.dtype, s.batch, s.seqlen, s.heads, s.dim_v, false, opt);
  check_tensor(p.d_o, "d_o", p.dtype, s.batch, s.seqlen, s.heads, s.dim_v, false, opt);
  check_tensor(p.dq, "dq", p.dtype, s.batch, s.seqlen, s.heads, s.dim_qk, true, opt);
  check_tensor(p.dk, "dk", p.dtype, s.batch, s.seqlen, s.heads, s.dim_qk, true, opt);
  check_tensor(p.dv, "dv", p.dtype, s.batch, s.seqlen, s.heads, s.dim_v, true, opt);
  check_slopes(p.slopes, s.heads, opt);
  check_scale(p.scale, opt);
  check_state(p.initial_state, "initial_state", p.dtype, opt);
  check_state(p.d_final_state, "d_final_state", p.dtype, opt);
  check_state(p.d_initial_state, "d_initial_state", p.dtype, opt);
  check_threads(p.num_threads, opt);
  check_intermediates(p.intermediates, opt);
}

void validate(const AttnDecodeParams& p, const ValidateOptions& opt) {
  check_dtype_device(p.dtype, p.device, opt);
  check_dims(p.batch, 1, p.heads, p.dim_qk, p.dim_v, opt);
  check_tensor(p.q, "q", p.dtype, p.batch, 1, p.heads, p.dim_qk, false, opt);
  check_tensor(p.k, "k", p.dtype, p.batch, 1, p.heads, p.dim_qk, false, opt);
  check_tensor(p.v, "v", p.dtype, p.batch, 1, p.heads, p.dim_v, false, opt);
  check_tensor(p.o, "o", p.dtype, p.batch, 1, p.heads, p.dim_v, true, opt);
  TNL_ARG_CHECK(p.state != nullptr, opt.fn, "state",
                "expected a non-null (B, H, D, E) state buffer");
  check_state(p.state, "state", p.dtype, opt);
  check_slopes(p.slopes, p.heads, opt);
  check_scale(p.scale, opt);
  check_threads(p.num_threads, opt);
}

}  // namespace tnl::attn
