// attention_cuda.cu: placeholder until the CUDA kernels land (issue: CUDA backend).
#include "backends/cuda/attention_cuda.h"

namespace tnl::cuda {
namespace {
[[noreturn]] void not_yet(const char* fn) {
  throw Error(detail::cat(fn, ": the CUDA attention kernels are not implemented yet"));
}
}  // namespace
void attention_forward(const AttnForwardParams&) { not_yet("tnl::attention_forward"); }
void attention_backward(const AttnBackwardParams&) { not_yet("tnl::attention_backward"); }
void attention_decode(const AttnDecodeParams&) { not_yet("tnl::attention_decode"); }
}  // namespace tnl::cuda
