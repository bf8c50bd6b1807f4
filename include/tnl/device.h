// tnl/device.h: what this build and this machine offer (CUDA devices, CPU threads).
#pragma once

#include <cstdint>
#include <string>

namespace tnl {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;       // compute capability
  int multiprocessors = 0;
  int64_t global_mem_bytes = 0;
  int64_t l2_bytes = 0;
  int64_t smem_per_block_optin = 0;     // largest dynamic shared memory a block may ask for
  double peak_bandwidth_gbs = 0;        // from memory clock and bus width (a datasheet lead)
};

bool cuda_built();                      // compiled with the CUDA backend
int cuda_device_count();                // 0 when not built with CUDA or no device is visible
CudaDeviceInfo cuda_device_info(int index);  // throws tnl::Error for a bad index
int cpu_thread_count();                 // hardware threads the CPU backend uses by default

}  // namespace tnl
