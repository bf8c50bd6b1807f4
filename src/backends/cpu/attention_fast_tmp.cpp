// TEMPORARY: routes the fast path to the reference until the tiled CPU kernels land.
#include "backends/cpu/attention_cpu.h"

namespace tnl::cpu {
void attention_forward(const AttnForwardParams& p) { reference::attention_forward(p); }
void attention_backward(const AttnBackwardParams& p) { reference::attention_backward(p); }
void attention_decode(const AttnDecodeParams& p) { reference::attention_decode(p); }
}  // namespace tnl::cpu
