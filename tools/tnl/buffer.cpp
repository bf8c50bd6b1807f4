// buffer.cpp: the CPU side of buffer.h.
#include "buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "tnl/error.h"

namespace tnl::cli {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void store(void* p, DType dt, int64_t i, float x) {
  switch (dt) {
    case DType::f32: static_cast<float*>(p)[i] = x; break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = f32_to_f16_bits(x); break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16_bits(x); break;
    case DType::f64: static_cast<double*>(p)[i] = x; break;
  }
}

bool g_hugepages = false;

}  // namespace

void set_cpu_hugepages(bool on) { g_hugepages = on; }

double normal_sample(uint64_t seed, uint64_t i) {
  const uint64_t a = splitmix64(seed ^ splitmix64(2 * i));
  const uint64_t b = splitmix64(seed ^ splitmix64(2 * i + 1));
  const double u1 = ((double)(a >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
  const double u2 = (double)(b >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

Buffer::Buffer(Device device, size_t bytes) : device_(device), bytes_(bytes) {
  if (bytes == 0) return;
  if (device == Device::cpu) {
    const size_t huge = size_t(2) << 20;
    const bool use_huge = g_hugepages && bytes >= huge;
    const size_t align = use_huge ? huge : 64;
    data_ = std::aligned_alloc(align, (bytes + align - 1) / align * align);
    if (!data_) throw Error(detail::cat("out of host memory allocating ", bytes, " bytes"));
    if (use_huge) madvise(data_, (bytes + align - 1) / align * align, MADV_HUGEPAGE);  // a hint
  } else {
    data_ = gpu::alloc(bytes);
  }
}

Buffer::~Buffer() {
  if (!data_) return;
  if (device_ == Device::cpu) std::free(data_);
  else gpu::release(data_);
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    this->~Buffer();
    device_ = o.device_;
    data_ = o.data_;
    bytes_ = o.bytes_;
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

void Buffer::fill_normal(DType dtype, int64_t n, double stddev, uint64_t seed) {
  TNL_CHECK((size_t)(n * dtype_size(dtype)) <= bytes_);
  if (device_ == Device::cuda) return gpu::fill_normal(data_, dtype, n, stddev, seed);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) store(data_, dtype, i, (float)(stddev * normal_sample(seed, i)));
}

void Buffer::fill_nan(DType dtype, int64_t n) {
  TNL_CHECK((size_t)(n * dtype_size(dtype)) <= bytes_);
  if (device_ == Device::cuda) return gpu::fill_nan(data_, dtype, n);
  const float nan = std::numeric_limits<float>::quiet_NaN();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) store(data_, dtype, i, nan);
}

void Buffer::upload(const void* host, size_t bytes) {
  TNL_CHECK(bytes <= bytes_);
  if (device_ == Device::cpu) std::memcpy(data_, host, bytes);
  else gpu::upload(data_, host, bytes);
}

void Buffer::download(void* host, size_t bytes) const {
  TNL_CHECK(bytes <= bytes_);
  if (device_ == Device::cpu) std::memcpy(host, data_, bytes);
  else gpu::download(host, data_, bytes);
}

void synchronize(Device device) {
  if (device == Device::cuda) gpu::synchronize();
}

size_t free_memory(Device device) {
  if (device == Device::cuda) return gpu::free_memory();
  return (size_t)sysconf(_SC_AVPHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
}

Timer::Timer(Device device) : device_(device) {
  if (device_ == Device::cuda) {
    events_[0] = gpu::event_create();
    events_[1] = gpu::event_create();
  }
}

Timer::~Timer() {
  for (void* e : events_)
    if (e) gpu::event_destroy(e);
}

void Timer::start() {
  if (device_ == Device::cuda) return gpu::event_record(events_[0]);
  t0_ = std::chrono::duration<double, std::milli>(
            std::chrono::steady_clock::now().time_since_epoch()).count();
}

double Timer::stop_ms() {
  if (device_ == Device::cuda) {
    gpu::event_record(events_[1]);
    return gpu::event_elapsed_ms(events_[0], events_[1]);
  }
  const double t1 = std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now().time_since_epoch()).count();
  return t1 - t0_;
}

}  // namespace tnl::cli
