// segment_prefix.cu: the short scan between a segmented scan's pre-pass and its main pass.
//
// The pre-pass leaves, per (sequence, head), the local end state A_j of every sub-segment j
// (segments 0..num_segs-2, pre_split sub-segments each, sub_len scan rows each, from a zero
// state; varlen: those of the segments before the sequence's last). This kernel runs the
// recurrence over them once,
//     X(0) = the initial state (or its transpose; zero when none)
//     X(j + 1) = λ^sub_len X(j) + A_j
// and writes the state each segment g >= 1 starts from, X(g · pre_split), to seg_start, so that
// a main-pass block reads one state instead of summing the g · pre_split states before it (at
// 1x16x128K the last segment's blocks read 14 of them before their first chunk, and the
// kernel's time is that of its slowest block).
//
// One thread per state element (d, e); a block covers 256 consecutive elements of one
// (sequence, head) plane (varlen: of each sequence with more than one segment). fp32 throughout:
// λ^sub_len underflows to zero for long sub-segments and fast decays, which is the true value to
// fp32 precision.
//
// Also here: the varlen segment list (split_segs_kernel), built before the pre-pass, and the
// transpose of the forward's segment starts that the backward's dq scan reuses.
#include <cub/block/block_scan.cuh>

#include <algorithm>

#include "backends/cuda/chunk_scan.h"
#include "backends/cuda/cuda_check.h"

namespace tnl::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) segment_prefix_kernel(const ScanParams p, const Slopes sl) {
  int64_t shd = blockIdx.y;  // s·H + h
  if (p.split_segs) {  // varlen: blockIdx.y = h·pre_rows + k; the sequence of entry k, if its first
    const int2 entry = p.split_segs[blockIdx.y % p.pre_rows];
    if (entry.x < 0 || entry.y != 0) return;
    shd = (int64_t)entry.x * p.heads + blockIdx.y / p.pre_rows;
  }
  const int plane = p.dk * p.dv;
  const int el = blockIdx.x * kThreads + threadIdx.x;  // d·dv + e
  if (el >= plane) return;
  const int d = el / p.dv, e = el % p.dv;
  const float decay = expf(-sl.s[shd % p.heads] * (float)p.sub_len);  // λ^sub_len

  float x = 0.f;  // (d, e) of X(j)
  if (p.init) {
    const int64_t off = shd * (int64_t)plane;
    x = p.init_transposed ? p.init[off + (int64_t)e * p.dk + d] : p.init[off + el];
  }
  // The A_j are read 16 at a time (all in flight, then the 16 steps): the recurrence is a chain,
  // its loads are not.
  constexpr int kBatch = 16;
  // Fixed length: seg_states rows shd·num_segs·subs + j, seg_start rows shd·(num_segs - 1) + g - 1.
  // Varlen (subs = 1): both from segment_row(shd, 0), and only the segments before the
  // sequence's last have local states (the others' blocks did nothing).
  int segs = p.num_segs;
  int64_t local_row = shd * (int64_t)p.num_segs * p.pre_split, start_row = shd * (int64_t)(p.num_segs - 1);
  if (p.cu_seqlens) {
    const int64_t s = shd / p.heads, len = max(0, p.cu_seqlens[s + 1] - p.cu_seqlens[s]);
    const int64_t with_rows = (len + p.seg_len - 1) / p.seg_len;  // 0 for an empty sequence
    segs = (int)min((int64_t)segs, max(int64_t{1}, with_rows));
    local_row = segment_row(p, shd, 0);
    start_row = local_row + 1;
  }
  const int subs = p.pre_split, count = (segs - 1) * subs;
  const float* __restrict__ local = p.seg_states + local_row * plane + el;  // A_0
  float* __restrict__ start = p.seg_start + start_row * plane + el;         // X(subs)
  for (int j0 = 0; j0 < count; j0 += kBatch) {
    float a[kBatch];
#pragma unroll
    for (int k = 0; k < kBatch; ++k) a[k] = j0 + k < count ? __ldg(local + (int64_t)(j0 + k) * plane) : 0.f;
#pragma unroll
    for (int k = 0; k < kBatch; ++k) {
      const int j = j0 + k;
      if (j >= count) break;
      x = fmaf(decay, x, a[k]);
      if ((j + 1) % subs == 0) start[(int64_t)((j + 1) / subs - 1) * plane] = x;
    }
  }
}

// split_segs (chunk_scan.h) from cu_seqlens, by one block: sequence s has varlen_segments of them
// and one entry {s, g} for each but the last, at the exclusive prefix sum of those counts; {-1,
// -1} past them. Entries beyond n_out (only for overlapping offsets) are dropped. The same list
// as segments.h's split_segs_host.
constexpr int kListThreads = 1024;
__global__ void __launch_bounds__(kListThreads)
    split_segs_kernel(const int32_t* __restrict__ cu, int64_t num_seqs, int64_t seg_len, int2* out, int64_t n_out) {
  using Scan = cub::BlockScan<long long, kListThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  long long base = 0;  // entries of the sequences before this round's
  for (int64_t s0 = 0; s0 < num_seqs; s0 += kListThreads) {
    const int64_t s = s0 + threadIdx.x;
    long long count = 0;
    if (s < num_seqs) count = varlen_segments(max(0, cu[s + 1] - cu[s]), seg_len) - 1;
    long long first = 0, round_total = 0;
    Scan(scan_tmp).ExclusiveSum(count, first, round_total);
    __syncthreads();  // scan_tmp is reused next round
    for (long long g = 0; g < count; ++g) {
      const long long k = base + first + g;
      if (k < n_out) out[k] = make_int2((int)s, (int)g);
    }
    base += round_total;
  }
  for (long long k = base + threadIdx.x; k < n_out; k += kListThreads) out[k] = make_int2(-1, -1);
}

// dst[m] = src[m]ᵀ for `count` (rows, cols) matrices: 32 x 32 tiles through shared memory
// (coalesced reads and writes), matrices m = blockIdx.z, + gridDim.z, ...
constexpr int kTile = 32, kTileRows = 8;
__global__ void __launch_bounds__(kTile * kTileRows)
    transpose_states_kernel(const float* __restrict__ src, float* __restrict__ dst, int64_t count, int rows, int cols) {
  __shared__ float tile[kTile][kTile + 1];
  const int r0 = blockIdx.y * kTile, c0 = blockIdx.x * kTile;
  const int64_t plane = (int64_t)rows * cols;
  for (int64_t m = blockIdx.z; m < count; m += gridDim.z) {
    const float* a = src + m * plane;  // (rows, cols)
    float* b = dst + m * plane;        // (cols, rows)
    for (int i = threadIdx.y; i < kTile; i += kTileRows) {
      const int r = r0 + i, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[i][threadIdx.x] = a[(int64_t)r * cols + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < kTile; i += kTileRows) {
      const int c = c0 + i, r = r0 + threadIdx.x;
      if (c < cols && r < rows) b[(int64_t)c * rows + r] = tile[threadIdx.x][i];
    }
    __syncthreads();  // the tile is refilled for the next matrix
  }
}

}  // namespace

void launch_transpose_states(const float* src, float* dst, int64_t count, int rows, int cols, cudaStream_t stream) {
  if (count <= 0) return;
  const dim3 grid((unsigned)((cols + kTile - 1) / kTile), (unsigned)((rows + kTile - 1) / kTile),
                  (unsigned)std::min<int64_t>(count, 65535));
  transpose_states_kernel<<<grid, dim3(kTile, kTileRows), 0, stream>>>(src, dst, count, rows, cols);
  TNL_CUDA_CHECK_LAUNCH();
}

void launch_segment_prefix(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  const int plane = p.dk * p.dv;
  const int64_t planes = p.split_segs ? p.heads * p.pre_rows : p.num_seqs * p.heads;
  const dim3 grid((unsigned)((plane + kThreads - 1) / kThreads), (unsigned)planes);
  segment_prefix_kernel<<<grid, kThreads, 0, stream>>>(p, sl);
  TNL_CUDA_CHECK_LAUNCH();
}

void launch_split_segs(const ScanParams& p, int2* split_segs, cudaStream_t stream) {
  split_segs_kernel<<<1, kListThreads, 0, stream>>>(p.cu_seqlens, p.num_seqs, p.seg_len, split_segs, p.pre_rows);
  TNL_CUDA_CHECK_LAUNCH();
}

}  // namespace tnl::cuda
