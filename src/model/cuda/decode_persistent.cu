// decode_persistent.cu: the decode step's layers in one persistent kernel (layers_cuda.h).
// Batch-1 decode is ~80 small kernels per token; even with programmatic dependent launch each
// boundary costs a few microseconds in which the weight stream runs dry (a kernel waits for the
// whole of the one before it to finish and flush). Here one cooperative grid (as many blocks as
// fit, two per multiprocessor) runs every phase; between phases, each block issues its loads
// for the next phase (weights, or the attention state), then meets the others at a grid-wide
// barrier, then reads the previous phase's outputs through L2. Same work per warp and the same
// arithmetic as the separate kernels: the same results to the bit.
#include <algorithm>

#include "model/cuda/decode_device.cuh"

namespace tnl::model::cuda {
namespace {

constexpr int kBlocksPerSm = 2;

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// All blocks of the grid meet; the writes of every block before it are visible to every block
// after it. bar[0]: arrivals (back to 0 after each barrier), bar[1]: generation.
__device__ __forceinline__ void grid_barrier(unsigned* bar, unsigned blocks) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned gen = ld_acquire(bar + 1);
    __threadfence();  // this block's writes (ordered before by the block barrier) go first
    if (atomicAdd(bar, 1u) == blocks - 1) {
      atomicExch(bar, 0u);
      __threadfence();
      atomicAdd(bar + 1, 1u);  // releases the others
    } else {
      while (ld_acquire(bar + 1) == gen) {
      }
    }
    __threadfence();
  }
  __syncthreads();
}

// Copies phase i into shared memory (slot i % 2: slot (i - 1) % 2 may still be read).
__device__ __forceinline__ const DecodePhase& stage_phase(const DecodePhase* phases, int i, DecodePhase* slots) {
  constexpr int words = sizeof(DecodePhase) / sizeof(int);
  static_assert(sizeof(DecodePhase) % sizeof(int) == 0, "DecodePhase is copied as ints");
  const int* src = reinterpret_cast<const int*>(phases + i);
  int* dst = reinterpret_cast<int*>(slots + (i & 1));
  for (int w = threadIdx.x; w < words; w += kThreads) dst[w] = __ldg(src + w);
  __syncthreads();
  return slots[i & 1];
}

template <int M, bool VEC>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm)
    decode_persistent_kernel(const DecodePhase* phases, int count, unsigned* bar) {
  extern __shared__ __align__(16) unsigned char persistent_smem[];
  __shared__ __align__(16) unsigned char slot_bytes[2 * sizeof(DecodePhase)];
  DecodePhase* slots = reinterpret_cast<DecodePhase*>(slot_bytes);
  bf16* xs = reinterpret_cast<bf16*>(persistent_smem);  // (M, K) of the GEMV phase
  const int block = blockIdx.x, blocks = gridDim.x;
  union {  // one phase's loads are in flight at a time
    GemvLoads gl;
    AttnLoads al;
  } l;
  GemvLoads& gl = l.gl;
  AttnLoads& al = l.al;
  for (int i = 0; i < count; ++i) {
    const DecodePhase& ph = stage_phase(phases, i, slots);
    if (ph.kind == DecodePhase::gemv) gemv_prologue(ph.g, block, gl);
    else if (block < ph.a.blocks()) attn_prologue(ph.a, block, al);
    if (i > 0) grid_barrier(bar, blocks);
    if (ph.kind == DecodePhase::gemv) {
      gemv_body<M, VEC>(ph.g, block, blocks, gl, xs);
    } else {
      for (int b = block; b < ph.a.blocks(); b += blocks) {
        if (b != block) attn_prologue(ph.a, b, al);
        attn_body(ph.a, b, al);
      }
    }
  }
}

size_t smem_bytes(int64_t M, int64_t max_k) { return sizeof(bf16) * (size_t)(M * max_k); }

// Blocks of the kernel that fit a multiprocessor with this much dynamic shared memory, at
// most kBlocksPerSm (the last answer is kept: decode asks with the same size every step).
template <int M, bool VEC>
int blocks_per_sm(size_t smem) {
  static size_t known_smem = 0;
  static int known = -1;
  if (known >= 0 && known_smem == smem) return known;
  auto kernel = decode_persistent_kernel<M, VEC>;
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  int n = 0;
  TNL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem));
  known_smem = smem;
  known = std::min(n, kBlocksPerSm);
  return known;
}

template <int M, bool VEC>
void launch(const DecodePhase* phases, int count, int64_t max_k, unsigned* bar, cudaStream_t st) {
  const size_t smem = smem_bytes(M, max_k);
  const int per_sm = blocks_per_sm<M, VEC>(smem);
  TNL_CHECK(per_sm > 0, "tnl::model::cuda::decode_persistent: the grid does not fit the device");
  TNL_CUDA_CHECK(cudaMemsetAsync(bar, 0, 2 * sizeof(unsigned), st));
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3((unsigned)(per_sm * device_info().sms));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cfg.stream = st;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  TNL_CUDA_CHECK(cudaLaunchKernelEx(&cfg, decode_persistent_kernel<M, VEC>, phases, count, bar));
}

template <bool VEC>
void launch_rows(const DecodePhase* phases, int count, int64_t M, int64_t max_k, unsigned* bar, cudaStream_t st) {
  switch (M) {
    case 1: return launch<1, VEC>(phases, count, max_k, bar, st);
    case 2: return launch<2, VEC>(phases, count, max_k, bar, st);
    case 3: return launch<3, VEC>(phases, count, max_k, bar, st);
    case 4: return launch<4, VEC>(phases, count, max_k, bar, st);
    default: throw Error("tnl::model::cuda::decode_persistent: M outside 1..4");
  }
}

}  // namespace

bool decode_persistent_supported(int64_t M, int64_t max_k) {
  if (!gemv_supported(M, max_k)) return false;
  const size_t smem = smem_bytes(M, max_k);
  switch (M) {
    case 1: return blocks_per_sm<1, true>(smem) > 0 && blocks_per_sm<1, false>(smem) > 0;
    case 2: return blocks_per_sm<2, true>(smem) > 0 && blocks_per_sm<2, false>(smem) > 0;
    case 3: return blocks_per_sm<3, true>(smem) > 0 && blocks_per_sm<3, false>(smem) > 0;
    case 4: return blocks_per_sm<4, true>(smem) > 0 && blocks_per_sm<4, false>(smem) > 0;
    default: return false;
  }
}

void decode_persistent(const DecodePhase* phases, int count, int64_t M, bool vec_input, int64_t max_k,
                       unsigned* barrier, cudaStream_t st) {
  if (count <= 0) return;
  if (vec_input) launch_rows<true>(phases, count, M, max_k, barrier, st);
  else launch_rows<false>(phases, count, M, max_k, barrier, st);
}

}  // namespace tnl::model::cuda
