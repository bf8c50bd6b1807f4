// cuda_check.h: the CUDA member of the error family. Every CUDA runtime call and every kernel
// launch is checked; failures throw tnl::Error with the statement, file and line.
#pragma once

#include <cuda_runtime.h>

#include "tnl/error.h"

#define TNL_CUDA_CHECK(stmt)                                                                 \
  do {                                                                                       \
    const cudaError_t tnl_err_ = (stmt);                                                     \
    if (tnl_err_ != cudaSuccess)                                                             \
      throw ::tnl::Error(::tnl::detail::cat("tnl: CUDA error '", cudaGetErrorString(tnl_err_), \
                                            "' in ", #stmt, " at ", __FILE__, ":", __LINE__)); \
  } while (0)

// After a kernel launch: catches bad launch configurations immediately (no synchronization).
#define TNL_CUDA_CHECK_LAUNCH() TNL_CUDA_CHECK(cudaGetLastError())
