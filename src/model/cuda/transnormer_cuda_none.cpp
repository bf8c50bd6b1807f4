// transnormer_cuda_none.cpp: TransNormerCuda in a build without the CUDA backend: every
// constructor throws tnl::Error saying so (src/model/cuda/*.cu are built only with CUDA).
#ifndef TNL_WITH_CUDA
#include "model/cuda/transnormer_cuda.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {
[[noreturn]] void none() {
  throw Error("tnl::model::TransNormerCuda: this build of tnl has no CUDA backend (rebuild with -DTNL_CUDA=ON)");
}
}  // namespace

struct CudaGenState::Impl {};
CudaGenState::CudaGenState() = default;
CudaGenState::~CudaGenState() = default;
CudaGenState::CudaGenState(CudaGenState&&) noexcept = default;
CudaGenState& CudaGenState::operator=(CudaGenState&&) noexcept = default;
int64_t CudaGenState::batch() const { return 0; }
const std::vector<int64_t>& CudaGenState::positions() const {
  static const std::vector<int64_t> empty;
  return empty;
}
size_t CudaGenState::bytes() const { return 0; }

struct TransNormerCuda::Impl {};
TransNormerCuda::TransNormerCuda(const Checkpoint&, int) { none(); }
TransNormerCuda::TransNormerCuda(const Config&, uint64_t, int) { none(); }
TransNormerCuda::~TransNormerCuda() = default;
const Config& TransNormerCuda::config() const { none(); }
size_t TransNormerCuda::weight_bytes() const { none(); }
void TransNormerCuda::forward(const int32_t*, int64_t, int64_t, float*) { none(); }
void TransNormerCuda::prefill(const std::vector<std::vector<int32_t>>&, CudaGenState&, float*, int64_t) { none(); }
void TransNormerCuda::extend(const int32_t*, int64_t, CudaGenState&, float*) { none(); }
void TransNormerCuda::decode(const int32_t*, float*, CudaGenState&) { none(); }
void TransNormerCuda::decode_greedy(const int32_t*, int32_t*, CudaGenState&) { none(); }
void TransNormerCuda::decode_sample(const int32_t*, const float*, const SamplingOptions&, int32_t*, CudaGenState&) {
  none();
}
void TransNormerCuda::decode_greedy_steps(const int32_t*, int64_t, int32_t*, CudaGenState&) { none(); }
void TransNormerCuda::set_graphs(bool) { none(); }
void TransNormerCuda::set_gemv_rows(int64_t) { none(); }
void TransNormerCuda::set_attn_split(bool) { none(); }
size_t TransNormerCuda::device_bytes_in_use() const { none(); }
size_t TransNormerCuda::peak_device_bytes() const { none(); }

}  // namespace tnl::model
#endif  // TNL_WITH_CUDA
