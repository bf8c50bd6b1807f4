// buffer.h: memory on the CPU or a CUDA device for the tools, with random fills, transfers and a
// timer that uses CUDA events on the GPU and the steady clock on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tnl/dtype.h"

namespace tnl::cli {

class Buffer {
 public:
  Buffer() = default;
  Buffer(Device device, size_t bytes);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { *this = static_cast<Buffer&&>(o); }
  Buffer& operator=(Buffer&& o) noexcept;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  // n elements of dtype ~ N(0, stddev²), from a counter-based generator seeded by `seed`.
  void fill_normal(DType dtype, int64_t n, double stddev, uint64_t seed);
  void fill_nan(DType dtype, int64_t n);
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;

 private:
  Device device_ = Device::cpu;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// CPU buffers of 2 MiB or more ask the kernel for transparent huge pages (madvise), when on.
void set_cpu_hugepages(bool on);

void synchronize(Device device);
// Bytes free for new buffers: available RAM on the CPU, free device memory on CUDA.
size_t free_memory(Device device);

class Timer {
 public:
  explicit Timer(Device device);
  ~Timer();
  void start();
  double stop_ms();  // waits for the timed work to finish

 private:
  Device device_;
  void* events_[2] = {nullptr, nullptr};
  double t0_ = 0;
};

// The counter-based normal sample used by every fill: deterministic in (seed, i).
double normal_sample(uint64_t seed, uint64_t i);

// CUDA halves of the above (gpu.cu, or gpu_none.cpp when built without CUDA).
namespace gpu {
void* alloc(size_t bytes);
void release(void* p);
void fill_normal(void* p, DType dtype, int64_t n, double stddev, uint64_t seed);
void fill_nan(void* p, DType dtype, int64_t n);
void upload(void* dst, const void* src, size_t bytes);
void download(void* dst, const void* src, size_t bytes);
void synchronize();
size_t free_memory();
void* event_create();
void event_destroy(void* e);
void event_record(void* e);
double event_elapsed_ms(void* start, void* stop);  // synchronizes on stop
}  // namespace gpu

}  // namespace tnl::cli
