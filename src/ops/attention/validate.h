// validate.h: argument checks shared by every backend of the attention op.
// Each check throws tnl::ArgumentError naming the argument; nothing is written before they pass.
#pragma once

#include "tnl/attention.h"

namespace tnl::attn {

struct ValidateOptions {
  const char* fn;          // entry point name, for messages
  bool allow_f64 = false;  // the reference accepts f64
};

void validate(const AttnForwardParams& p, const ValidateOptions& opt);
void validate(const AttnBackwardParams& p, const ValidateOptions& opt);
void validate(const AttnDecodeParams& p, const ValidateOptions& opt);

// Number of independent sequences: num_seqs when varlen, else batch.
inline int64_t num_sequences(const AttnShape& s, const int32_t* cu_seqlens, int64_t num_seqs) {
  return cu_seqlens ? num_seqs : s.batch;
}

// Element size of the states: 8 for f64 (reference only), else 4.
inline int64_t state_elem_size(DType t) { return t == DType::f64 ? 8 : 4; }

}  // namespace tnl::attn
