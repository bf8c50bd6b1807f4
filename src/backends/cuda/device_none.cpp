// device_none.cpp: the device query of a build without CUDA.
#include "tnl/device.h"
#include "tnl/error.h"

namespace tnl {

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
CudaDeviceInfo cuda_device_info(int index) {
  throw ArgumentError(detail::cat("tnl::cuda_device_info: argument 'index': got ", index,
                                  ", but this build of tnl has no CUDA backend"));
}

}  // namespace tnl
