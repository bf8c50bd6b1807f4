// cuda_common.cuh: small pieces shared by the model's and training's CUDA code: the cuBLAS status
// check, device memory that grows on demand, and a block-wide sum.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "backends/cuda/cuda_check.h"
#include "tnl/error.h"

#define TNL_CUBLAS_CHECK(stmt)                                                              \
  do {                                                                                      \
    const cublasStatus_t tnl_st_ = (stmt);                                                  \
    if (tnl_st_ != CUBLAS_STATUS_SUCCESS)                                                   \
      throw ::tnl::Error(::tnl::detail::cat("tnl: cuBLAS error ", (int)tnl_st_, " in ", #stmt, \
                                            " at ", __FILE__, ":", __LINE__));              \
  } while (0)

namespace tnl::cuda_common {

// Device memory that grows on demand (contents are not kept when it grows).
class DevMem {
 public:
  DevMem() = default;
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
  DevMem(DevMem&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  ~DevMem() { release(); }
  // Returns true when it had to reallocate.
  bool ensure(size_t bytes) {
    if (bytes <= n_) return false;
    release();
    TNL_CUDA_CHECK(cudaMalloc(&p_, bytes));
    n_ = bytes;
    return true;
  }
  void release() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }
  size_t bytes() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Sum over a block of kBlock threads, in a fixed order; every thread gets the total.
template <int kBlock, class T>
__device__ T block_sum(T v) {
  __shared__ T part[kBlock / 32];
  __shared__ T total;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T s = 0;
    for (int w = 0; w < kBlock / 32; ++w) s += part[w];
    total = s;
  }
  __syncthreads();
  const T t = total;
  __syncthreads();  // part/total may be reused by the next call
  return t;
}

}  // namespace tnl::cuda_common
