// gpu.cu: the CUDA half of buffer.h (allocation, random fills, transfers, event timing) and of
// floor.h (device copy bandwidth, cuBLAS bf16 GEMM rate).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/cuda_common.cuh"  // TNL_CUBLAS_CHECK
#include "buffer.h"
#include "floor.h"

namespace tnl::cli {
namespace {

__device__ uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Same generator as normal_sample() on the host.
__global__ void fill_normal_kernel(void* p, int dtype, int64_t n, double stddev, uint64_t seed,
                                   bool nan) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    float x;
    if (nan) {
      x = __int_as_float(0x7fc00000);
    } else {
      const uint64_t a = splitmix64(seed ^ splitmix64(2 * i));
      const uint64_t b = splitmix64(seed ^ splitmix64(2 * i + 1));
      const double u1 = ((double)(a >> 11) + 0.5) * 0x1.0p-53;
      const double u2 = (double)(b >> 11) * 0x1.0p-53;
      x = (float)(stddev * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    switch (dtype) {
      case 0: static_cast<float*>(p)[i] = x; break;
      case 1: static_cast<__half*>(p)[i] = __float2half_rn(x); break;
      case 2: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x); break;
      default: static_cast<double*>(p)[i] = x; break;
    }
  }
}

void launch_fill(void* p, DType dtype, int64_t n, double stddev, uint64_t seed, bool nan) {
  if (n == 0) return;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65536);
  fill_normal_kernel<<<(unsigned)blocks, threads>>>(p, (int)dtype, n, stddev, seed, nan);
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace

namespace gpu {
void* alloc(size_t bytes) {
  void* p = nullptr;
  TNL_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}
void release(void* p) { cudaFree(p); }
void fill_normal(void* p, DType dtype, int64_t n, double stddev, uint64_t seed) {
  launch_fill(p, dtype, n, stddev, seed, false);
}
void fill_nan(void* p, DType dtype, int64_t n) { launch_fill(p, dtype, n, 0, 0, true); }
void upload(void* dst, const void* src, size_t bytes) {
  TNL_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void download(void* dst, const void* src, size_t bytes) {
  TNL_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void synchronize() { TNL_CUDA_CHECK(cudaDeviceSynchronize()); }
size_t free_memory() {
  size_t free_b = 0, total = 0;
  TNL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
  return free_b;
}
void* event_create() {
  cudaEvent_t e;
  TNL_CUDA_CHECK(cudaEventCreate(&e));
  return e;
}
void event_destroy(void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); }
void event_record(void* e) { TNL_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(e))); }
double event_elapsed_ms(void* start, void* stop) {
  TNL_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(stop)));
  float ms = 0;
  TNL_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start),
                                      static_cast<cudaEvent_t>(stop)));
  return ms;
}
}  // namespace gpu

Floor measure_cuda_floor() {
  Floor fl;
  Timer timer(Device::cuda);
  auto median_ms = [&](int reps, auto&& f) {
    f();
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
      timer.start();
      f();
      ms.push_back(timer.stop_ms());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  {  // copy bandwidth: 4 GiB device to device
    const size_t bytes = size_t(4) << 30;
    Buffer a(Device::cuda, bytes), b(Device::cuda, bytes);
    a.fill_normal(DType::f32, bytes / 4, 1.0, 1);
    const double ms = median_ms(10, [&] {
      TNL_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice));
    });
    fl.bandwidth_gbs = 2.0 * bytes / (ms * 1e-3) / 1e9;
    fl.bandwidth_how = "cudaMemcpy device-to-device 4 GiB, read+write, median of 10";
  }
  {  // bf16 GEMM 8192³, fp32 accumulation, random data
    const int n = 8192;
    const size_t elems = (size_t)n * n;
    Buffer a(Device::cuda, elems * 2), b(Device::cuda, elems * 2), c(Device::cuda, elems * 2);
    a.fill_normal(DType::bf16, elems, 1.0, 2);
    b.fill_normal(DType::bf16, elems, 1.0, 3);
    cublasHandle_t h;
    TNL_CUBLAS_CHECK(cublasCreate(&h));
    const float one = 1.0f, zero = 0.0f;
    auto gemm = [&] {
      TNL_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data(),
                                    CUDA_R_16BF, n, b.data(), CUDA_R_16BF, n, &zero, c.data(),
                                    CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    };
    const double ms = median_ms(10, gemm);
    cublasDestroy(h);
    fl.gemm_gflops = 2.0 * n * (double)n * n / (ms * 1e-3) / 1e9;
    fl.gemm_how = "cuBLAS bf16 GEMM 8192³, fp32 accumulation, median of 10";
  }
  return fl;
}

}  // namespace tnl::cli
