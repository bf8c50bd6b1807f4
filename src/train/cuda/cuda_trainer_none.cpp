// cuda_trainer_none.cpp: CudaTrainer in a build without the CUDA backend: the constructor and
// every method throw tnl::Error saying so (src/train/cuda/*.cu are built only with CUDA).
#ifndef TNL_WITH_CUDA
#include "tnl/error.h"
#include "train/cuda/cuda_trainer.h"

namespace tnl::train {
namespace {
[[noreturn]] void none() {
  throw Error("tnl::train::CudaTrainer: this build of tnl has no CUDA backend (rebuild with -DTNL_CUDA=ON)");
}
}  // namespace

struct CudaTrainer::Impl {};
CudaTrainer::CudaTrainer(const ParamSet&, AdamWConfig, int) { none(); }
CudaTrainer::~CudaTrainer() = default;
const model::Config& CudaTrainer::config() const { none(); }
int64_t CudaTrainer::num_params() const { none(); }
double CudaTrainer::loss_and_grad(const int32_t*, const int32_t*, int64_t, int64_t, const GradOptions&) { none(); }
std::pair<double, int64_t> CudaTrainer::loss_sum(const int32_t*, const int32_t*, int64_t, int64_t) { none(); }
void CudaTrainer::zero_grads() { none(); }
double CudaTrainer::grad_norm() { none(); }
double CudaTrainer::clip_grad_norm(double) { none(); }
void CudaTrainer::adamw_step(double) { none(); }
int64_t CudaTrainer::steps() const { none(); }
void CudaTrainer::upload(const ParamSet&) { none(); }
void CudaTrainer::download(ParamSet&) const { none(); }
void CudaTrainer::set_grads(const float*) { none(); }
void CudaTrainer::get_grads(float*) const { none(); }
void CudaTrainer::set_optimizer(const AdamW&) { none(); }
void CudaTrainer::get_optimizer(AdamW&) const { none(); }
void CudaTrainer::synchronize() { none(); }
size_t CudaTrainer::device_bytes_in_use() const { none(); }
size_t CudaTrainer::peak_device_bytes() const { none(); }
void CudaTrainer::reset_peak() { none(); }
void CudaTrainer::release_workspace() { none(); }

}  // namespace tnl::train
#endif  // TNL_WITH_CUDA
