// gemv_cuda.cu: the decode GEMV of layers_cuda.h, y (M, N) (+)= in (M, K) · Wᵀ for M <= 4 rows,
// with the input row formed in the kernel (SRMS, gate, GLU product) and optional epilogues
// (qkv_prep, GLU product): a warp per work item (a row of W, or a pair with the GLU epilogue),
// 16-byte loads into registers, the next step's loads issued before this step's arithmetic,
// the first ones before waiting on the kernel before (programmatic dependent launch).
#include <algorithm>
#include <cstdlib>

#include "model/cuda/decode_device.cuh"

namespace tnl::model::cuda {
namespace {

// ---- the kernel ----

template <int M, bool VEC>
__global__ void __launch_bounds__(kThreads, kGemvBlocksPerSm) gemv_kernel(const GemvWork g) {
  extern __shared__ __align__(16) unsigned char gemv_smem[];
  GemvLoads l;
  gemv_prologue(g, blockIdx.x, l);
  pdl_launch_dependents();  // the next GEMV may start loading its weights
  pdl_wait();               // the previous kernel's outputs (our input, y) are complete
  gemv_body<M, VEC>(g, blockIdx.x, gridDim.x, l, reinterpret_cast<bf16*>(gemv_smem));
}

// ---- launches ----

cudaLaunchAttribute pdl_attribute() {
  cudaLaunchAttribute a;
  a.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  a.val.programmaticStreamSerializationAllowed = 1;
  return a;
}

template <int M, bool VEC>
void launch_gemv(const GemvArgs& in, int64_t K, const bf16* W, int64_t N, float* y, int64_t ldy, bool accumulate,
                 cudaStream_t st) {
  static bool ready = false;
  if (!ready) {
    TNL_CUDA_CHECK(cudaFuncSetAttribute(gemv_kernel<M, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kGemvMaxSmem));
    ready = true;
  }
  cudaLaunchAttribute attr[1] = {pdl_attribute()};
  cudaLaunchConfig_t cfg = {};
  cfg.blockDim = dim3(kThreads);
  cfg.stream = st;
  cfg.attrs = attr;
  cfg.numAttrs = device_info().pdl ? 1 : 0;
  // A fixed grid of kGemvBlocksPerSm blocks per multiprocessor: items per warp stay balanced
  // (one round more at most) and each block forms its input rows once.
  const int64_t want = (N + kGemvWarps - 1) / kGemvWarps;
  cfg.gridDim = dim3((unsigned)std::max<int64_t>(1, std::min<int64_t>(want, (int64_t)device_info().sms * kGemvBlocksPerSm)));
  cfg.dynamicSmemBytes = sizeof(bf16) * M * (size_t)K;
  const GemvWork g{in, W, (int)K, (int)N, y, ldy, accumulate};
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, gemv_kernel<M, VEC>, g));
}

}  // namespace

bool gemv_supported(int64_t M, int64_t K) {
  return M >= 1 && M <= kGemvMaxRows && K % 8 == 0 && K <= INT32_MAX &&
         sizeof(bf16) * (size_t)(M * K) <= kGemvMaxSmem;
}

void gemv(const GemvArgs& in, int64_t M, int64_t K, const bf16* W, int64_t N, float* y,
          int64_t ldy, bool accumulate, cudaStream_t st) {
  const bool aligned = in.mode == GemvInput::plain ? reinterpret_cast<uintptr_t>(in.o) % 8 == 0
                       : in.mode == GemvInput::rms_gate
                           ? reinterpret_cast<uintptr_t>(in.o) % 8 == 0 && reinterpret_cast<uintptr_t>(in.u) % 16 == 0 && in.ldu % 4 == 0
                           : reinterpret_cast<uintptr_t>(in.a) % 16 == 0 && in.lda % 4 == 0;
  TNL_CHECK(gemv_supported(M, K), "tnl::model::cuda::gemv: unsupported shape M ", M, ", K ", K);
  TNL_CHECK(aligned || !in.vec_input, "tnl::model::cuda::gemv: vec_input needs 16-byte aligned rows and strides "
            "that are multiples of 4");
  TNL_CHECK(reinterpret_cast<uintptr_t>(W) % 16 == 0, "tnl::model::cuda::gemv: W must be 16-byte aligned");
  TNL_CHECK((N * (in.glu_out ? 2 : 1)) * K <= INT64_MAX / 2 && N <= INT32_MAX, "tnl::model::cuda::gemv: N too large");
  switch (M) {
    case 1: return in.vec_input ? launch_gemv<1, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<1, false>(in, K, W, N, y, ldy, accumulate, st);
    case 2: return in.vec_input ? launch_gemv<2, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<2, false>(in, K, W, N, y, ldy, accumulate, st);
    case 3: return in.vec_input ? launch_gemv<3, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<3, false>(in, K, W, N, y, ldy, accumulate, st);
    case 4: return in.vec_input ? launch_gemv<4, true>(in, K, W, N, y, ldy, accumulate, st)
                                : launch_gemv<4, false>(in, K, W, N, y, ldy, accumulate, st);
    default: throw Error("tnl::model::cuda::gemv: M outside 1..4");
  }
}

void gemv(const GemvWork& w, int64_t M, cudaStream_t st) {
  gemv(w.in, M, w.K, w.W, w.N, w.y, w.ldy, w.accumulate, st);
}

}  // namespace tnl::model::cuda
