// gpu_none.cpp: the CUDA half of buffer.h and floor.h in a build without CUDA: every call is an
// error that says so (the tool checks tnl::cuda_device_count() before it gets here).
#include "buffer.h"
#include "floor.h"
#include "tnl/error.h"

namespace tnl::cli {
namespace {
[[noreturn]] void none() { throw Error("this build of tnl has no CUDA backend"); }
}  // namespace
namespace gpu {
void* alloc(size_t) { none(); }
void release(void*) {}
void fill_normal(void*, DType, int64_t, double, uint64_t) { none(); }
void fill_nan(void*, DType, int64_t) { none(); }
void upload(void*, const void*, size_t) { none(); }
void download(void*, const void*, size_t) { none(); }
void synchronize() {}
size_t free_memory() { return 0; }
void* event_create() { none(); }
void event_destroy(void*) {}
void event_record(void*) { none(); }
double event_elapsed_ms(void*, void*) { none(); }
}  // namespace gpu
Floor measure_cuda_floor() { none(); }
}  // namespace tnl::cli
