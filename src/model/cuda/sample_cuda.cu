// sample_cuda.cu: the next token chosen on the GPU from the decode step's logits (see
// layers_cuda.h): the greedy argmax, and sampling with a temperature and the repetition penalty.
// One block of kPickThreads per sequence, launched with programmatic dependent launch after the
// head's GEMV.
#include <algorithm>
#include <climits>
#include <cmath>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/kernels_common.cuh"
#include "model/cuda/layers_cuda.h"

namespace tnl::model::cuda {
namespace {

constexpr int kPickThreads = 1024;
constexpr int kPickWarps = kPickThreads / 32;
constexpr int kArgmaxUnroll = 4;  // float4 loads in flight per thread

// (v, i) replaces (bv, bi) when larger, or equal at a lower index.
__device__ __forceinline__ void argmax_merge(float& bv, int& bi, float v, int i) {
  if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
}

// The block's largest (v, i) (first of equal maxima), returned to every thread.
__device__ __forceinline__ void block_argmax(float& best, int& arg) {
  __shared__ float wv[kPickWarps];
  __shared__ int wi[kPickWarps];
  for (int o = 16; o > 0; o >>= 1)
    argmax_merge(best, arg, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, arg, o));
  if (threadIdx.x % 32 == 0) wv[threadIdx.x / 32] = best, wi[threadIdx.x / 32] = arg;
  __syncthreads();
  best = wv[threadIdx.x % 32];
  arg = wi[threadIdx.x % 32];
  for (int o = 16; o > 0; o >>= 1)
    argmax_merge(best, arg, __shfl_xor_sync(0xffffffffu, best, o), __shfl_xor_sync(0xffffffffu, arg, o));
}

// The chosen token of sequence b: next[b]; with pos, pos[b] advances by one and, with hist, the
// token also goes to hist[(pos[b] % hist_rows) · B + b] (pos before the advance).
__device__ __forceinline__ void store_pick(int arg, int32_t* next, int64_t* pos, int32_t* hist, int hist_rows) {
  const int b = blockIdx.x;
  next[b] = arg;
  if (pos) {
    const int64_t p = pos[b];
    if (hist) hist[(p % hist_rows) * gridDim.x + b] = arg;
    pos[b] = p + 1;
  }
}

// Greedy choice (first of equal maxima; NaN never wins) of one row of logits per block.
__global__ void __launch_bounds__(kPickThreads) argmax_kernel(const float* logits, int V, int32_t* next,
                                                             int64_t* pos, int32_t* hist, int hist_rows) {
  pdl_launch_dependents();
  pdl_wait();  // the logits are complete
  const float* row = logits + (int64_t)blockIdx.x * V;  // (V)
  float best = -INFINITY;
  int arg = 0;
  if (V % 4 == 0) {  // rows 16-byte aligned
    const int V4 = V / 4;
    for (int g0 = threadIdx.x; g0 < V4; g0 += kPickThreads * kArgmaxUnroll) {
      float4 x[kArgmaxUnroll];
#pragma unroll
      for (int u = 0; u < kArgmaxUnroll; ++u)
        if (g0 + u * kPickThreads < V4) x[u] = reinterpret_cast<const float4*>(row)[g0 + u * kPickThreads];
#pragma unroll
      for (int u = 0; u < kArgmaxUnroll; ++u) {
        const int i = 4 * (g0 + u * kPickThreads);
        if (i < V) {  // increasing indices: strict > keeps the first of equal maxima
          if (x[u].x > best) best = x[u].x, arg = i;
          if (x[u].y > best) best = x[u].y, arg = i + 1;
          if (x[u].z > best) best = x[u].z, arg = i + 2;
          if (x[u].w > best) best = x[u].w, arg = i + 3;
        }
      }
    }
  } else {
    for (int i = threadIdx.x; i < V; i += kPickThreads)
      if (row[i] > best) best = row[i], arg = i;
  }
  block_argmax(best, arg);
  if (threadIdx.x == 0) store_pick(arg, next, pos, hist, hist_rows);
}

// Logit i of a row after the repetition penalty (Hugging Face's: l / p if l > 0, else l · p, for
// a token whose bit is set in seen).
__device__ __forceinline__ float penalized(const float* row, const uint32_t* seen, float penalty, int i) {
  const float x = row[i];
  if (!seen || !((seen[i >> 5] >> (i & 31)) & 1u)) return x;
  return x > 0 ? x / penalty : x * penalty;
}

// A float's order as an unsigned key: x < y exactly when key(x) < key(y) (NaN aside).
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t bits = __float_as_uint(x);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

// A token's softmax weight exp((x - top) / T) in (0, 1] as a fixed-point integer (2^32 = 1),
// so that sums over the block are exact and do not depend on the order of the additions.
__device__ __forceinline__ unsigned long long fixed_weight(float x, float top, float inv_t) {
  return (unsigned long long)(expf((x - top) * inv_t) * 4294967296.0f);
}

// The largest key c with F(c) >= target, where F(c) sums f(i) over this block's row's tokens i
// with key >= max(c, floor): f = 1 (count) or the fixed-point weight (mass). A radix select,
// 8 bits a pass from the top, over integer histograms in shared memory (deterministic).
template <bool kMass>
__device__ uint32_t select_cut(const float* row, int V, const uint32_t* seen, float penalty, float top, float inv_t,
                               uint32_t floor, unsigned long long target) {
  __shared__ unsigned long long hist[256];
  __shared__ uint32_t s_prefix;
  __shared__ unsigned long long s_above;
  uint32_t prefix = 0;
  unsigned long long above = 0;  // F of the tokens above the current prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int d = threadIdx.x; d < 256; d += kPickThreads) hist[d] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < V; i += kPickThreads) {
      const float x = penalized(row, seen, penalty, i);
      const uint32_t key = order_key(x);
      if (key < floor || (shift < 24 && (key >> (shift + 8)) != (prefix >> (shift + 8)))) continue;
      const unsigned long long f = kMass ? fixed_weight(x, top, inv_t) : 1ull;
      if (f) atomicAdd(&hist[(key >> shift) & 255u], f);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long acc = above;
      int d = 255;
      for (; d > 0 && acc + hist[d] < target; --d) acc += hist[d];
      s_prefix = prefix | ((uint32_t)d << shift);
      s_above = acc;
    }
    __syncthreads();
    prefix = s_prefix;
    above = s_above;
    __syncthreads();  // s_prefix, s_above and hist reused by the next pass
  }
  return prefix;
}

// One token per row: the penalty, then greedy (first of equal maxima) or a draw from the softmax
// at the temperature, restricted to the top-k tokens and then to the top-p of their mass (ties
// at either cut all kept), by the inverse of its distribution function at u[b]. Thread t owns
// the tokens t, t + kPickThreads, ...: the tokens' intervals of [0, total) are laid out thread
// by thread in that order (any fixed order draws from the same distribution; this one reads the
// logits coalesced). params: u (B), then 1 / temperature, the penalty, greedy (0 or 1), top-k
// (0: no cut), top-p (1: no cut).
__global__ void __launch_bounds__(kPickThreads) sample_kernel(const float* logits, int V, const uint32_t* seen,
                                                             int words, const float* params, int32_t* next,
                                                             int64_t* pos) {
  pdl_launch_dependents();
  pdl_wait();  // the logits are complete
  const int b = blockIdx.x, B = gridDim.x;
  const float* row = logits + (int64_t)b * V;  // (V)
  const float inv_t = params[B], penalty = params[B + 1], top_p = params[B + 4];
  const bool greedy = params[B + 2] != 0.f;
  const int top_k = (int)params[B + 3];
  const uint32_t* seen_b = seen && penalty != 1.f ? seen + (int64_t)b * words : nullptr;
  float best = -INFINITY;
  int arg = 0;
  for (int i = threadIdx.x; i < V; i += kPickThreads) {
    const float x = penalized(row, seen_b, penalty, i);
    if (x > best) best = x, arg = i;
  }
  block_argmax(best, arg);
  if (greedy) {
    if (threadIdx.x == 0) store_pick(arg, next, pos, nullptr, 1);
    return;
  }
  const float top = best;
  uint32_t cut = 0;  // the candidates: key >= cut
  if (top_k > 0 && top_k < V)
    cut = select_cut<false>(row, V, seen_b, penalty, top, inv_t, 0, (unsigned long long)top_k);
  if (top_p < 1.f) {
    __shared__ unsigned long long warp_mass[kPickWarps];
    unsigned long long m = 0;
    for (int i = threadIdx.x; i < V; i += kPickThreads) {
      const float x = penalized(row, seen_b, penalty, i);
      if (order_key(x) >= cut) m += fixed_weight(x, top, inv_t);
    }
    for (int o = 16; o > 0; o >>= 1) m += __shfl_xor_sync(0xffffffffu, m, o);
    if (threadIdx.x % 32 == 0) warp_mass[threadIdx.x / 32] = m;
    __syncthreads();
    unsigned long long mass = 0;
    for (int w = 0; w < kPickWarps; ++w) mass += warp_mass[w];
    const unsigned long long share = (unsigned long long)((double)top_p * (double)mass);
    const unsigned long long want = share > 0 ? share : 1ull;
    cut = max(cut, select_cut<true>(row, V, seen_b, penalty, top, inv_t, cut, want));
  }
  float mine = 0.f;  // this thread's mass
  for (int i = threadIdx.x; i < V; i += kPickThreads) {
    const float x = penalized(row, seen_b, penalty, i);
    if (order_key(x) >= cut) mine += expf((x - top) * inv_t);
  }
  // Exclusive prefix of the threads' masses, in thread order (fixed: deterministic).
  __shared__ float warp_sum[kPickWarps];
  __shared__ int owner;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float incl = mine;  // inclusive prefix within the warp
  for (int o = 1; o < 32; o <<= 1) {
    const float y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  float prev = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) prev = 0.f;
  if (lane == 31) warp_sum[warp] = incl;
  if (threadIdx.x == 0) owner = -1;
  __syncthreads();
  float before = 0.f, total = 0.f;  // the warps before this one, all warps: the same sums for all
  for (int w = 0; w < kPickWarps; ++w) {
    if (w == warp) before = total;
    total += warp_sum[w];
  }
  // [lo, hi): this thread's interval; a thread's hi is the same float as the next one's lo.
  const float lo = before + prev, hi = before + incl;
  const float target = params[b] * total;
  if (lo <= target && target < hi) owner = threadIdx.x;  // one thread at most
  __syncthreads();
  if (owner < 0) {  // rounding put the target at total: the last thread with mass
    if (mine > 0.f && hi >= total) atomicMax(&owner, (int)threadIdx.x);
    __syncthreads();
  }
  if ((int)threadIdx.x != owner) return;
  float c = lo;
  int pick = -1, last = -1;
  for (int i = threadIdx.x; i < V; i += kPickThreads) {
    const float x = penalized(row, seen_b, penalty, i);
    const float w = order_key(x) >= cut ? expf((x - top) * inv_t) : 0.f;
    if (w <= 0.f) continue;
    last = i;
    c += w;
    if (c > target) {
      pick = i;
      break;
    }
  }
  store_pick(pick >= 0 ? pick : last, next, pos, nullptr, 1);
}

__global__ void mark_seen_kernel(const int32_t* ids, int64_t T, int64_t rows_per_seq, uint32_t* seen, int words) {
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < T; r += (int64_t)gridDim.x * blockDim.x) {
    const int32_t t = ids[r];
    atomicOr(seen + (r / rows_per_seq) * words + (t >> 5), 1u << (t & 31));
  }
}

}  // namespace

void argmax_rows(const float* logits, int64_t B, int64_t V, int32_t* next, int64_t* pos, int32_t* hist,
                 int64_t hist_rows, cudaStream_t st) {
  TNL_CHECK(V >= 1 && V <= INT32_MAX, "tnl::model::cuda::argmax_rows: vocabulary size ", V, " outside 1..2^31-1");
  TNL_CHECK(!hist || (pos && hist_rows >= 1 && hist_rows <= INT32_MAX), "tnl::model::cuda::argmax_rows: hist needs pos and 1..2^31-1 rows");
  launch_pdl(argmax_kernel, dim3((unsigned)B), dim3(kPickThreads), 0, st, true, logits, (int)V, next, pos, hist,
             (int)hist_rows);
  TNL_CUDA_CHECK_LAUNCH();
}

void sample_rows(const float* logits, int64_t B, int64_t V, const uint32_t* seen, const float* params,
                 int32_t* next, int64_t* pos, cudaStream_t st) {
  TNL_CHECK(V >= 1 && V <= INT32_MAX, "tnl::model::cuda::sample_rows: vocabulary size ", V, " outside 1..2^31-1");
  launch_pdl(sample_kernel, dim3((unsigned)B), dim3(kPickThreads), 0, st, true, logits, (int)V, seen,
             (int)seen_words(V), params, next, pos);
  TNL_CUDA_CHECK_LAUNCH();
}

void mark_seen(const int32_t* ids, int64_t T, int64_t rows_per_seq, uint32_t* seen, int64_t V, cudaStream_t st) {
  if (T == 0) return;
  mark_seen_kernel<<<(unsigned)std::min<int64_t>((T + kThreads - 1) / kThreads, 1024), kThreads, 0, st>>>(
      ids, T, rows_per_seq, seen, (int)seen_words(V));
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace tnl::model::cuda
