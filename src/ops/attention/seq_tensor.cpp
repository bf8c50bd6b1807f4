// seq_tensor.cpp: contiguous strides for the two named layouts.
#include "tnl/attention.h"

namespace tnl {
namespace {
template <class Ptr>
SeqTensorT<Ptr> make(Ptr data, Layout layout, int64_t /*batch*/, int64_t seqlen, int64_t heads,
                     int64_t dim) {
  SeqTensorT<Ptr> t;
  t.data = data;
  if (layout == Layout::bnhd) {  // (B, N, H, dim)
    t.stride_head = dim;
    t.stride_seq = heads * dim;
    t.stride_batch = seqlen * heads * dim;
  } else {  // (B, H, N, dim)
    t.stride_seq = dim;
    t.stride_head = seqlen * dim;
    t.stride_batch = heads * seqlen * dim;
  }
  return t;
}
}  // namespace

SeqTensor seq_tensor(void* data, Layout layout, int64_t batch, int64_t seqlen, int64_t heads,
                     int64_t dim) {
  return make(data, layout, batch, seqlen, heads, dim);
}
ConstSeqTensor seq_tensor(const void* data, Layout layout, int64_t batch, int64_t seqlen,
                          int64_t heads, int64_t dim) {
  return make(data, layout, batch, seqlen, heads, dim);
}

}  // namespace tnl
