// floor.h: the machine's measured ceilings, against which every timing is reported
// (spec §5: floor = max(bytes / bandwidth, FLOPs / GEMM rate)).
#pragma once

#include <string>

namespace tnl::cli {

struct Floor {
  double bandwidth_gbs = 0;  // read + write bytes per second of a large copy, in GB/s
  double gemm_gflops = 0;    // a well-optimized large GEMM, in GFLOP/s
  std::string bandwidth_how, gemm_how;

  // Seconds the floor allows for this many bytes and FLOPs, and which one binds.
  double floor_ms(double bytes, double flops, bool* memory_bound) const {
    const double t_mem = bytes / (bandwidth_gbs * 1e9) * 1e3;
    const double t_flop = flops / (gemm_gflops * 1e9) * 1e3;
    if (memory_bound) *memory_bound = t_mem >= t_flop;
    return t_mem > t_flop ? t_mem : t_flop;
  }
};

// CPU: multi-threaded copy of 1 GiB; OpenBLAS SGEMM (fp32, the precision the CPU computes in).
Floor measure_cpu_floor(int threads);
// CUDA: device-to-device copy; cuBLAS bf16 GEMM 8192³ with fp32 accumulation.
Floor measure_cuda_floor();

}  // namespace tnl::cli
