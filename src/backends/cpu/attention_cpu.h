// attention_cpu.h: the fast CPU backend (tiled intra/inter-block algorithm, spec §2).
// Arguments are already validated by the caller (ops/attention/dispatch.cpp).
#pragma once

#include "tnl/attention.h"

namespace tnl::cpu {

void attention_forward(const AttnForwardParams& p);
void attention_backward(const AttnBackwardParams& p);
void attention_decode(const AttnDecodeParams& p);

}  // namespace tnl::cpu
