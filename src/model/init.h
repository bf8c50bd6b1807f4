// init.h: the random initialization of TransNormerLLM weights (spec: Linear and Embedding
// ~ N(0, init_std²)), counter-based so that threads can fill a tensor in any order and the CPU
// model, the training parameters and the GPU model all draw the same values for a seed.
#pragma once

#include <cstdint>

namespace tnl::model {

// w[i] = stddev · Box–Muller(hash(seed, stream, i)); one `stream` per tensor (1, 2, ... in the
// order the model fills them).
void fill_normal(float* w, int64_t n, uint64_t seed, uint64_t stream, double stddev);

}  // namespace tnl::model
