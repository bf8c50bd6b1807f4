// device.cu: CUDA device query.
#include "backends/cuda/cuda_check.h"
#include "tnl/device.h"

namespace tnl {

bool cuda_built() { return true; }

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: report none, clear the sticky error
    return 0;
  }
  return n;
}

CudaDeviceInfo cuda_device_info(int index) {
  const int n = cuda_device_count();
  TNL_ARG_CHECK(index >= 0 && index < n, "tnl::cuda_device_info", "index", "expected 0..", n - 1,
                " (", n, " CUDA devices visible), got ", index);
  cudaDeviceProp prop{};
  TNL_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  CudaDeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.global_mem_bytes = (int64_t)prop.totalGlobalMem;
  info.l2_bytes = prop.l2CacheSize;
  info.smem_per_block_optin = (int64_t)prop.sharedMemPerBlockOptin;
  int mem_clock_khz = 0, bus_bits = 0;
  TNL_CUDA_CHECK(cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, index));
  TNL_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index));
  info.peak_bandwidth_gbs = 2.0 * mem_clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
  return info;
}

}  // namespace tnl
