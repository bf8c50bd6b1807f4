// dispatch.cpp: the public entry points. Validate everything, then route to a backend.
#include "backends/cpu/attention_cpu.h"
#include "ops/attention/validate.h"
#include "tnl/attention.h"
#include "tnl/device.h"
#ifdef TNL_WITH_CUDA
#include "backends/cuda/attention_cuda.h"
#endif

namespace tnl {
namespace {
[[maybe_unused]] [[noreturn]] void no_cuda(const char* fn) {
  throw ArgumentError(detail::cat(fn, ": argument 'device': cuda requested, but this build of tnl "
                                      "has no CUDA backend (configure with -DTNL_CUDA=ON)"));
}
[[maybe_unused]] void require_cuda_device(const char* fn) {
  TNL_ARG_CHECK(cuda_device_count() > 0, fn, "device",
                "cuda requested, but no CUDA device is visible");
}
}  // namespace

void attention_forward(const AttnForwardParams& p) {
  attn::validate(p, {"tnl::attention_forward"});
  if (p.device == Device::cpu) return cpu::attention_forward(p);
#ifdef TNL_WITH_CUDA
  require_cuda_device("tnl::attention_forward");
  return cuda::attention_forward(p);
#else
  no_cuda("tnl::attention_forward");
#endif
}

void attention_backward(const AttnBackwardParams& p) {
  attn::validate(p, {"tnl::attention_backward"});
  if (p.device == Device::cpu) return cpu::attention_backward(p);
#ifdef TNL_WITH_CUDA
  require_cuda_device("tnl::attention_backward");
  return cuda::attention_backward(p);
#else
  no_cuda("tnl::attention_backward");
#endif
}

size_t attention_segment_starts_bytes(const AttnForwardParams& p) {
  attn::validate(p, {"tnl::attention_segment_starts_bytes"});
  if (p.device == Device::cpu) return 0;  // the CPU backend does not split into segments
#ifdef TNL_WITH_CUDA
  require_cuda_device("tnl::attention_segment_starts_bytes");
  return cuda::attention_segment_starts_bytes(p);
#else
  no_cuda("tnl::attention_segment_starts_bytes");
#endif
}

AttnBackwardParams attention_backward_params(const AttnForwardParams& f) {
  AttnBackwardParams b;
  b.dtype = f.dtype;
  b.device = f.device;
  b.shape = f.shape;
  b.q = f.q;
  b.k = f.k;
  b.v = f.v;
  b.slopes = f.slopes;
  b.scale = f.scale;
  b.cu_seqlens = f.cu_seqlens;
  b.num_seqs = f.num_seqs;
  b.max_seqlen = f.max_seqlen;
  b.initial_state = f.initial_state;
  b.num_threads = f.num_threads;
  b.stream = f.stream;
  b.intermediates = f.intermediates;
  b.segment_starts = f.segment_starts;
  b.segment_starts_bytes = f.segment_starts_bytes;
  return b;
}

void attention_decode(const AttnDecodeParams& p) {
  attn::validate(p, {"tnl::attention_decode"});
  if (p.device == Device::cpu) return cpu::attention_decode(p);
#ifdef TNL_WITH_CUDA
  require_cuda_device("tnl::attention_decode");
  return cuda::attention_decode(p);
#else
  no_cuda("tnl::attention_decode");
#endif
}

}  // namespace tnl
