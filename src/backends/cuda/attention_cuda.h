// attention_cuda.h: the CUDA backend of the attention op (built when TNL_WITH_CUDA).
// Arguments are already validated by the caller (ops/attention/dispatch.cpp).
#pragma once

#include "tnl/attention.h"

namespace tnl::cuda {

void attention_forward(const AttnForwardParams& p);
void attention_backward(const AttnBackwardParams& p);
void attention_decode(const AttnDecodeParams& p);
size_t attention_segment_starts_bytes(const AttnForwardParams& p);

}  // namespace tnl::cuda
