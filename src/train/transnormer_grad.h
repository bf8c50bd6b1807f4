// transnormer_grad.h: the whole TransNormerLLM forward and backward on the CPU, for training:
// mean next-token cross-entropy and its gradient with respect to every parameter of a ParamSet.
//   h = e·E[ids];  per layer: h += TokenMixer(SRMS(h)); h += GLU(SRMS(h));  logits = SRMS(h)·Eᵀ
// Every sequence of a batch starts at position 0 with no attention state. Decay slopes are fixed
// (spec: no slope gradient). GEMMs through OpenBLAS, element-wise loops through OpenMP, lightning
// attention through the public operator (tnl::attention_forward / attention_backward).
#pragma once

#include <cstdint>
#include <utility>

#include "train/params.h"

namespace tnl::train {

struct GradOptions {
  bool recompute = false;   // keep only each layer's input, recompute the rest in the backward
  double loss_scale = 1.0;  // grads += loss_scale · d(mean loss)/dθ (for accumulation)
  int num_threads = 0;      // OpenMP threads (element-wise loops, attention); 0 = the current
                            // default. OpenBLAS keeps its own thread count.
};

// ids, targets: (batch, seqlen) int32; target −1 = ignored (any other value must be a token id).
// Returns the mean cross-entropy in nats over the non-ignored targets (0, and no gradient, when
// every target is ignored) and ADDS the scaled gradient into grads (flat, ParamSet layout, size()).
// The tied embedding gets both the input gather's gradient (times the embedding scale) and the
// head's; the pad row is not special. Deterministic: the same inputs and thread counts give
// bitwise the same loss and gradient.
double loss_and_grad(const ParamSet& p, const int32_t* ids, const int32_t* targets, int64_t batch,
                     int64_t seqlen, float* grads, const GradOptions& opt = {});

// The same loss without a gradient (validation): {sum of nats, count of non-ignored targets}.
std::pair<double, int64_t> loss_sum(const ParamSet& p, const int32_t* ids, const int32_t* targets,
                                    int64_t batch, int64_t seqlen, int num_threads = 0);

// Both keep their buffers on the calling thread between calls; release_workspace() frees them.
// Activations: 4·L·batch·seqlen·(2·d_model + 8·hidden + 3·glu) bytes without recompute (≈ 230 MB
// for "small" at 8 × 256), one layer's worth plus the layer inputs with recompute.
void release_workspace();

// The same code in double precision, for the finite-difference tests: `params` and `grads` in
// the layout of `layout` (its values are not used). Attention runs through the fp64 reference
// operator (tnl::reference::attention_forward / attention_backward) instead of the fast path.
double loss_and_grad_f64(const ParamSet& layout, const double* params, const int32_t* ids,
                         const int32_t* targets, int64_t batch, int64_t seqlen, double* grads,
                         const GradOptions& opt = {});

}  // namespace tnl::train
