// kernels_common.cuh: what the model's kernel files share (internal to src/model/cuda/): the
// block size, the norm and activation arithmetic, programmatic dependent launch, and the
// device's properties read once.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <utility>

#include "backends/cuda/cuda_check.h"

namespace tnl::model::cuda {

constexpr int kThreads = 256;

__device__ __forceinline__ float inv_rms(float sum_sq, int64_t cols) {
  return 1.0f / sqrtf(sum_sq / (float)cols + 1e-6f);
}

__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }

// Programmatic dependent launch (sm_90): a kernel launched with the attribute starts while the
// kernel before it finishes, issues the loads that do not depend on it (weights, a state last
// written by an earlier step), then waits for that kernel's completion before it reads its
// input or writes.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

struct DeviceInfo {
  int sms = 0;
  bool pdl = false;  // sm_90 or later, and not turned off by TNL_NO_PDL=1
};
// The current device's properties, read once per process (the model uses one device).
inline const DeviceInfo& device_info() {
  static const DeviceInfo info = [] {
    DeviceInfo i;
    int dev = 0, major = 0;
    TNL_CUDA_CHECK(cudaGetDevice(&dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    TNL_CUDA_CHECK(cudaDeviceGetAttribute(&i.sms, cudaDevAttrMultiProcessorCount, dev));
    const char* off = std::getenv("TNL_NO_PDL");
    i.pdl = major >= 9 && !(off && off[0] == '1');
    return i;
  }();
  return info;
}

// kernel<<<grid, block, smem, st>>>(args...), with programmatic dependent launch when `pdl` and
// the device has it: the kernel may start before the one before it ends, so it must call
// pdl_wait() before reading that kernel's outputs and before writing anything.
template <class... KernelArgs, class... Args>
void launch_pdl(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, bool pdl,
                Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl && device_info().pdl ? 1 : 0;
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace tnl::model::cuda
