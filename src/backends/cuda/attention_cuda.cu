// attention_cuda.cu: the CUDA backend's entry points. Maps the public parameter structs onto the
// chunked scan (chunk_scan.h) and the decode kernel, picks sequence segments when batch×heads
// is too small to fill the GPU, and launches everything on p.stream.
//
// The backward's three scans (dq, dk, dv) are independent: dk and dv (or the one scan that
// fuses them, fused_backward) run on side streams forked from p.stream with events and joined
// back to it, so they fill the GPU together with dq (TNL_CUDA_BWD_STREAMS=0 runs them one after
// the other on p.stream). Event fork/join keeps the backward stream-ordered and capturable in a
// CUDA graph.
//
// No hidden synchronization: nothing here waits on the device. The one workspace (segment
// states, fp32, only when segments are used: each (sub-)segment's local end state and each
// segment's start state) comes from the stream-ordered allocator (cudaMallocFromPoolAsync /
// cudaFreeAsync on the scan's stream) out of a memory pool of our own that keeps what is freed
// (workspace_pool): no device-wide sync, no allocation from the driver after the first calls,
// and capturable in a CUDA graph.
//
// cu_seqlens lives on the device, so its contents are not validated on the host (that would
// need a sync). The kernels read each pair (cu[s], cu[s+1]); a pair with cu[s+1] <= cu[s] is
// an empty sequence (its state passes through: S_final = S0). Out-of-range offsets are the
// caller's responsibility.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>

#include "backends/cuda/attention_cuda.h"
#include "backends/cuda/chunk_scan.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/env_switch.h"
#include "ops/attention/validate.h"

namespace tnl::cuda {
namespace {

Slopes make_slopes(const char* fn, const float* s, int64_t heads) {
  TNL_ARG_CHECK(heads <= kMaxHeads, fn, "shape.heads", "the CUDA backend supports at most ",
                kMaxHeads, " heads, got ", heads);
  Slopes sl;
  std::memset(&sl, 0, sizeof(sl));
  std::memcpy(sl.s, s, sizeof(float) * heads);
  return sl;
}

Rows rows(const ConstSeqTensor& t) { return {t.data, t.stride_batch, t.stride_seq, t.stride_head}; }

cudaStream_t stream_of(void* s) { return static_cast<cudaStream_t>(s); }

int multiprocessors() {
  int dev = 0, n = 0;
  TNL_CUDA_CHECK(cudaGetDevice(&dev));
  TNL_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

void launch_scan(DType dt, const ScanParams& p, const Slopes& sl, bool local, cudaStream_t st) {
  switch (dt) {
    case DType::f32: return launch_chunk_scan_f32(p, sl, local, st);
    case DType::f16: return launch_chunk_scan_f16(p, sl, local, st);
    case DType::bf16: return launch_chunk_scan_bf16(p, sl, local, st);
    default: throw Error("tnl::cuda: unsupported dtype");
  }
}

// The current device's workspace pool: a memory pool of its own whose release threshold keeps
// freed memory (the default pool's threshold, 0, hands it back to the driver at every
// synchronization, so that each call after one mapped its workspace again: ~0.05-0.1 ms of host
// time before the first kernel of a 1x16x128K forward). It holds at most the largest workspace
// in use at once (segment states: tens of MB at N = 1M). Null while `st` is being captured and
// the pool does not exist yet (created outside a capture; the caller then uses the default pool),
// or when TNL_CUDA_WS_POOL=0 asks for the default pool (an A/B switch).
cudaMemPool_t workspace_pool(cudaStream_t st) {
  static const bool on = !env_is("TNL_CUDA_WS_POOL", '0');
  if (!on) return nullptr;
  static std::mutex lock;
  static std::map<int, cudaMemPool_t> pools;
  int dev = 0;
  TNL_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> guard(lock);
  const auto it = pools.find(dev);
  if (it != pools.end()) return it->second;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  TNL_CUDA_CHECK(cudaStreamIsCapturing(st, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = dev;
  cudaMemPool_t pool = nullptr;
  TNL_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
  uint64_t keep = UINT64_MAX;
  TNL_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
  return pools.emplace(dev, pool).first->second;
}

// TNL_CUDA_VARLEN_SEGMENTS=0: varlen batches are not split (an A/B switch). Read once.
bool varlen_segments_enabled() {
  static const bool on = !env_is("TNL_CUDA_VARLEN_SEGMENTS", '0');
  return on;
}

// TNL_CUDA_VARLEN_TAIL=0: varlen batches split only by their mean length, whatever max_seqlen
// says (an A/B switch; plan_segments). Read once.
bool varlen_tail_enabled() {
  static const bool on = !env_is("TNL_CUDA_VARLEN_TAIL", '0');
  return on;
}

// TNL_CUDA_SEGMENTS_PAIRS=0: scans on the TMA kernels split to fill the occupancy slots, as the
// others do (an A/B switch; run_scan). Read once.
bool segments_one_block_an_sm() {
  static const bool on = !env_is("TNL_CUDA_SEGMENTS_PAIRS", '0');
  return on;
}

// How run_scan (below) splits scan p: no split, or plan_segments on the scan's inputs.
SegmentPlan scan_plan(DType dt, const ScanParams& p, int64_t max_seqlen) {
  const bool varlen = p.cu_seqlens != nullptr, tail = varlen && varlen_tail_enabled() && max_seqlen > 0;
  if ((varlen && !varlen_segments_enabled()) || !(may_split(p.seqlen, p.num_seqs, varlen) || tail)) return {};
  SegmentInputs in;
  in.seqlen = p.seqlen;
  in.num_seqs = p.num_seqs;
  in.varlen = varlen;
  in.max_seqlen = tail ? max_seqlen : 0;
  in.heads = p.heads;
  in.tiles = (p.dv + 63) / 64;
  in.sms = multiprocessors();
  in.tiles_per_sm = chunk_scan_tiles_per_sm(dt, p);
  in.tma_blocks = segments_one_block_an_sm() ? chunk_scan_tma_blocks(dt, p) : 0;
  return plan_segments(in);
}

// The floats of seg_start of scan p split by `plan` (num_segs > 1): (S·H, num_segs - 1, dk, dv),
// varlen (H, seg_rows, dk, dv).
size_t start_floats(const ScanParams& p, const SegmentPlan& plan) {
  const size_t plane = (size_t)p.dk * p.dv;
  if (p.cu_seqlens) return (size_t)p.heads * varlen_segment_rows(p.seqlen, p.num_seqs, plan.seg_len) * plane;
  return (size_t)(p.num_seqs * p.heads) * (plan.num_segs - 1) * plane;
}

// Segment starts handed from the forward to the backward (AttnForwardParams::segment_starts):
// `keep`, the forward's scan writes its seg_start there (its own (d, e) layout) instead of into
// the workspace; `reuse`, the backward's dq scan, whose state is the forward's transposed (same
// segments: segment_starts_bytes), transposes them into its workspace instead of running a
// pre-pass over K and V and the segment prefix.
struct StartsHandoff {
  float* keep = nullptr;
  const float* reuse = nullptr;
};

// TNL_CUDA_KEEP_STARTS=0: the forward keeps no segment starts (attention_segment_starts_bytes
// says 0, a buffer given is not used) and the backward's dq scan runs its own pre-pass (an A/B
// switch). Read once.
bool keep_starts_enabled() {
  static const bool on = !env_is("TNL_CUDA_KEEP_STARTS", '0');
  return on;
}

// The bytes of the forward's segment starts, `fwd` its scan's planning inputs, `dq` the dq
// scan's: 0 when the forward does not split or the dq scan splits differently.
size_t segment_starts_bytes(DType dt, const ScanParams& fwd, const ScanParams& dq, int64_t max_seqlen) {
  if (!keep_starts_enabled()) return 0;
  const SegmentPlan a = scan_plan(dt, fwd, max_seqlen);
  if (a.num_segs <= 1) return 0;
  const SegmentPlan b = scan_plan(dt, dq, max_seqlen);
  if (b.num_segs != a.num_segs || b.seg_len != a.seg_len || b.tail != a.tail) return 0;
  return sizeof(float) * start_floats(fwd, a);
}

// Runs one scan, splitting sequences into segments when the (sequence, head, column tile)
// blocks alone would leave multiprocessors idle: a pre-pass of local end states, the short scan
// of those into each segment's start state, then the main pass.
// How many: scans on the TMA kernels (sm_90, fp16/bf16, the streaming designs) split until every
// multiprocessor has one block; filling their slots instead (two blocks an SM) split 8x16x8K,
// D = 64 in two and cost 0.160 -> 0.212 ms forward, 0.567 -> 0.779 fwd+bwd (the pre-pass's
// re-read exceeding the gain; H200, bench/logs/2026-12-01-h200-segment-rule-ab.txt), and was
// even elsewhere. The other kernels fill the occupancy slots: the mma.sync scan at D = 256,
// E = 128 (4x16x8K) lost 0.69 -> 0.83 ms forward with one (sequence, head) an SM.
// Varlen: the lengths are on the device (reading them would synchronize), so the segment length
// is chosen from the mean length T/S, and the grid has the segments of a sequence of all T
// tokens; a longer than average sequence gets more segments, and the blocks past a sequence's
// end return at once. When the mean does not split (S·H fills the GPU) but the caller's
// max_seqlen is longer than a wave's share of all the tokens' work, that sequence would run alone
// after the others (the tail): then segments of that share (plan_segments), listed from
// cu_seqlens by a small kernel (launch_split_segs), and grids of a block for each sequence's first
// segment plus one per list entry, at most ⌊T/seg_len⌋ a head (a grid over T for every sequence
// would be mostly empty blocks). H200, 64 sequences x 16 heads, D = 128, the first sequence half
// of 128K tokens: forward 1.97 -> 1.40 ms, fwd+bwd 5.1 -> 3.9 (rounded).
// max_seqlen: AttnForwardParams'. handoff: segment starts kept for, or reused from, another scan.
void run_scan(DType dt, ScanParams p, const Slopes& sl, cudaStream_t st, int64_t max_seqlen,
              StartsHandoff handoff = {}) {
  const SegmentPlan plan = scan_plan(dt, p, max_seqlen);
  p.num_segs = plan.num_segs;
  p.seg_len = plan.seg_len;
  if (p.num_segs <= 1) {
    launch_scan(dt, p, sl, false, st);
    return;
  }
  const bool varlen = p.cu_seqlens != nullptr, reuse = handoff.reuse != nullptr, keep = handoff.keep && !reuse;
  p.pre_split = varlen || reuse ? 1 : chunk_scan_prepass_split(dt, p, multiprocessors());  // varlen: 1 (segment_row)
  p.sub_len = p.seg_len / p.pre_split;
  // The workspace: seg_states (S·H, num_segs, pre_split, dk, dv) unless reused starts make the
  // pre-pass unneeded, then seg_start (S·H, num_segs - 1, dk, dv) unless kept in the caller's
  // buffer; varlen: (H, seg_rows, dk, dv) each (segment_row); then by the tail rule split_segs
  // (pre_rows int2, 8-byte aligned: an even count of floats before it).
  const size_t plane = (size_t)p.dk * p.dv, planes = (size_t)(p.num_seqs * p.heads);
  const size_t start_n = start_floats(p, plan);
  size_t local_floats = planes * p.num_segs * p.pre_split * plane;
  if (varlen) {
    p.seg_rows = varlen_segment_rows(p.seqlen, p.num_seqs, p.seg_len);
    local_floats = start_n;
  }
  if (reuse) local_floats = 0;
  const size_t ws_floats = (local_floats + (keep ? 0 : start_n) + 1) & ~size_t{1};
  size_t list_bytes = 0;
  if (plan.tail) {
    p.pre_rows = p.seqlen / p.seg_len;  // >= 1: seg_len < T
    list_bytes = sizeof(int2) * (size_t)p.pre_rows;
  }
  const size_t bytes = sizeof(float) * ws_floats + list_bytes;
  void* ws = nullptr;
  if (cudaMemPool_t pool = workspace_pool(st)) {
    TNL_CUDA_CHECK(cudaMallocFromPoolAsync(&ws, bytes, pool, st));
  } else {
    TNL_CUDA_CHECK(cudaMallocAsync(&ws, bytes, st));
  }
  p.seg_states = static_cast<float*>(ws);
  p.seg_start = keep ? handoff.keep : p.seg_states + local_floats;
  if (plan.tail) {
    int2* list = reinterpret_cast<int2*>(p.seg_states + ws_floats);
    launch_split_segs(p, list, st);
    p.split_segs = list;
  }
  if (reuse) {  // the forward's (D, E) states, this scan's (E, D) = (p.dk, p.dv)
    launch_transpose_states(handoff.reuse, p.seg_start, (int64_t)(start_n / plane), p.dv, p.dk, st);
  } else {
    launch_scan(dt, p, sl, true, st);  // local end states of the (sub-)segments
    launch_segment_prefix(p, sl, st);  // the state each segment starts from
  }
  launch_scan(dt, p, sl, false, st);   // every segment from its true start
  TNL_CUDA_CHECK(cudaFreeAsync(ws, st));
}

// Two non-blocking side streams per device, with the events of a fork and a join, created on
// first use and kept for the life of the process. `side_lock` is held while a backward enqueues its
// fork, side-stream work and join, so that concurrent host threads cannot re-record an event
// between another thread's record and wait.
struct SideStreams {
  cudaStream_t stream[2] = {nullptr, nullptr};
  cudaEvent_t fork = nullptr, join[2] = {nullptr, nullptr};
};
std::mutex side_lock;

// The current device's side streams, or null when they do not exist yet and `main` is being
// captured (creating streams is not allowed during a capture): the caller then runs serially.
// Call with side_lock held.
SideStreams* side_streams(cudaStream_t main) {
  static std::map<int, SideStreams> per_device;
  int dev = 0;
  TNL_CUDA_CHECK(cudaGetDevice(&dev));
  auto it = per_device.find(dev);
  if (it != per_device.end()) return &it->second;
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  TNL_CUDA_CHECK(cudaStreamIsCapturing(main, &capturing));
  if (capturing != cudaStreamCaptureStatusNone) return nullptr;
  SideStreams ss;
  for (int i = 0; i < 2; ++i) {
    TNL_CUDA_CHECK(cudaStreamCreateWithFlags(&ss.stream[i], cudaStreamNonBlocking));
    TNL_CUDA_CHECK(cudaEventCreateWithFlags(&ss.join[i], cudaEventDisableTiming));
  }
  TNL_CUDA_CHECK(cudaEventCreateWithFlags(&ss.fork, cudaEventDisableTiming));
  return &per_device.emplace(dev, ss).first->second;
}

bool backward_streams_enabled() {
  static const bool on = !env_is("TNL_CUDA_BWD_STREAMS", '0');
  return on;
}

// Whether the backward's dk scan runs fused into its dv scan (`fused`: the dv scan's parameters
// with the fused fields set): one pass over K, Q, dO, V with one state for both. Rounded
// fp16/bf16 with 64 < D, E <= 128 (one block then holds the whole 128 x 128 state) on GPUs with
// the shared memory for it (chunk_scan_tc.cuh's FUSED, or the TMA version on sm_90); compensated
// only where the TMA version runs (chunk_scan_tma_bwd.cuh, SPLIT; the mma.sync one has no room for
// the hi + lo parts). TNL_CUDA_BWD_FUSED=0 runs the two scans apart. On the H200 the rounded
// mma.sync fused scan made fwd+bwd 10% faster at 4x32x32K and 14% at 1x16x128K, same at 1K
// (bench/RESULTS.md).
bool fused_backward(const AttnBackwardParams& p, const ScanParams& fused) {
  static const bool on = !env_is("TNL_CUDA_BWD_FUSED", '0');
  const int64_t D = p.shape.dim_qk, E = p.shape.dim_v;
  if (!on || (p.dtype != DType::bf16 && p.dtype != DType::f16) || D <= 64 || D > 128 || E <= 64 || E > 128)
    return false;
  if (p.intermediates != Intermediates::rounded) return chunk_scan_fused_tma(p.dtype, fused);
  // ~193 KB of shared memory per block (two buffers of K, Q, dO, V tiles, two score tiles, R;
  // the TMA version on sm_90, chunk_scan_tma_bwd.cuh, 209 KB): more than an A100 offers. Asked
  // of the current device on every call (a host-side lookup), so that a process driving GPUs of
  // different kinds picks right on each.
  int dev = 0, optin = 0;
  TNL_CUDA_CHECK(cudaGetDevice(&dev));
  TNL_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return optin >= 200 * 1024;
}

// The fields every scan shares, from the shape.
ScanParams base_params(const AttnShape& sh, const int32_t* cu, int64_t num_seqs) {
  ScanParams sp;
  sp.num_seqs = attn::num_sequences(sh, cu, num_seqs);
  sp.seqlen = sh.seqlen;
  sp.heads = (int)sh.heads;
  sp.cu_seqlens = cu;
  return sp;
}

// The fields that choose a scan's segments (scan_plan): base_params, the inputs x, y, z and
// the state's (dk, dv).
ScanParams plan_params(const AttnShape& sh, const int32_t* cu, int64_t num_seqs, const ConstSeqTensor& x,
                       const ConstSeqTensor& y, const ConstSeqTensor& z, int64_t dk, int64_t dv,
                       Intermediates im) {
  ScanParams sp = base_params(sh, cu, num_seqs);
  sp.x = rows(x);
  sp.y = rows(y);
  sp.z = rows(z);
  sp.dk = (int)dk;
  sp.dv = (int)dv;
  sp.compensated = im == Intermediates::compensated;
  return sp;
}

// The forward's segment starts in bytes (segment_starts_bytes) from a forward's or a backward's
// parameters: the forward scan x = q, y = k, z = v, state (D, E); the dq scan x = dO (`d_o`; the
// forward passes o, the same shape), y = v, z = k, state (E, D).
template <class P>
size_t starts_bytes(const P& p, const ConstSeqTensor& d_o) {
  const int64_t D = p.shape.dim_qk, E = p.shape.dim_v;
  const ScanParams fwd = plan_params(p.shape, p.cu_seqlens, p.num_seqs, p.q, p.k, p.v, D, E, p.intermediates);
  const ScanParams dq = plan_params(p.shape, p.cu_seqlens, p.num_seqs, d_o, p.v, p.k, E, D, p.intermediates);
  return segment_starts_bytes(p.dtype, fwd, dq, p.max_seqlen);
}

// The caller's segment starts buffer when it is to be used (`need` > 0 bytes): large enough and
// 16-byte aligned, else an ArgumentError.
void check_starts(const char* fn, const void* buf, size_t bytes, size_t need) {
  TNL_ARG_CHECK(bytes >= need, fn, "segment_starts_bytes", "expected at least ", need,
                " bytes (attention_segment_starts_bytes), got ", bytes);
  TNL_ARG_CHECK(reinterpret_cast<uintptr_t>(buf) % 16 == 0, fn, "segment_starts",
                "expected device memory aligned to 16 bytes");
}

}  // namespace

size_t attention_segment_starts_bytes(const AttnForwardParams& p) { return starts_bytes(p, p.o); }

int chunk_scan_prepass_split(DType dt, const ScanParams& p, int sms) {
  return dt == DType::bf16 ? chunk_scan_prepass_split_bf16(p, sms) : 1;
}

int chunk_scan_tma_blocks(DType dt, const ScanParams& p) {
  if (dt == DType::f16) return chunk_scan_tma_blocks_f16(p);
  if (dt == DType::bf16) return chunk_scan_tma_blocks_bf16(p);
  return 0;
}

bool chunk_scan_fused_tma(DType dt, const ScanParams& p) {
  if (dt == DType::f16) return chunk_scan_fused_tma_f16(p);
  if (dt == DType::bf16) return chunk_scan_fused_tma_bf16(p);
  return false;
}

int chunk_scan_tiles_per_sm(DType dt, const ScanParams& p) {
  if (dt == DType::f16) return chunk_scan_tiles_per_sm_f16(p);
  if (dt == DType::bf16) return chunk_scan_tiles_per_sm_bf16(p);
  // fp32: shared memory per block over the 227 KB an H100/A100 multiprocessor offers (1 KB
  // reserved per block); at most 8 blocks of 256 threads.
  const size_t per_block = chunk_scan_smem_bytes_simt(p.dk) + 1024;
  return (int)std::max<size_t>(1, std::min<size_t>(8, (227 * 1024) / per_block));
}

void attention_forward(const AttnForwardParams& p) {
  const Slopes sl = make_slopes("tnl::attention_forward", p.slopes, p.shape.heads);
  ScanParams sp =
      plan_params(p.shape, p.cu_seqlens, p.num_seqs, p.q, p.k, p.v, p.shape.dim_qk, p.shape.dim_v, p.intermediates);
  sp.out = p.o.data;
  sp.out_sb = p.o.stride_batch;
  sp.out_sn = p.o.stride_seq;
  sp.out_sh = p.o.stride_head;
  sp.init = static_cast<const float*>(p.initial_state);
  sp.final_state = static_cast<float*>(p.final_state);
  sp.scale = p.scale;
  sp.alpha = p.scale;
  sp.off_out = 1;
  sp.beta = 1.f;
  sp.off_upd = 0;
  StartsHandoff handoff;
  if (p.segment_starts && keep_starts_enabled()) {  // kept whenever this scan splits (the backward
                                                    // checks the dq scan's split)
    const SegmentPlan plan = scan_plan(p.dtype, sp, p.max_seqlen);
    if (plan.num_segs > 1) {
      check_starts("tnl::attention_forward", p.segment_starts, p.segment_starts_bytes,
                   sizeof(float) * start_floats(sp, plan));
      handoff.keep = static_cast<float*>(p.segment_starts);
    }
  }
  run_scan(p.dtype, sp, sl, stream_of(p.stream), p.max_seqlen, handoff);
}

void attention_backward(const AttnBackwardParams& p) {
  const Slopes sl = make_slopes("tnl::attention_backward", p.slopes, p.shape.heads);
  const cudaStream_t st = stream_of(p.stream);
  const int D = (int)p.shape.dim_qk, E = (int)p.shape.dim_v;
  ScanParams base = base_params(p.shape, p.cu_seqlens, p.num_seqs);
  base.compensated = p.intermediates == Intermediates::compensated;
  auto set_out = [](ScanParams& sp, const SeqTensor& t) {
    sp.out = t.data;
    sp.out_sb = t.stride_batch;
    sp.out_sn = t.stride_seq;
    sp.out_sh = t.stride_head;
  };
  ScanParams sq = base, sk = base, sv = base;
  {  // dq = c (dO Vᵀ ⊙ M) K + c λ^{a+1} dO S_prevᵀ: a forward scan of the state Sᵀ (E, D)
    ScanParams& sp = sq;
    sp.x = rows(p.d_o);
    sp.y = rows(p.v);
    sp.z = rows(p.k);
    set_out(sp, p.dq);
    sp.dk = E;
    sp.dv = D;
    sp.init = static_cast<const float*>(p.initial_state);
    sp.init_transposed = true;
    sp.scale = p.scale;
    sp.alpha = p.scale;
    sp.off_out = 1;
    sp.beta = 1.f;
    sp.off_upd = 0;
  }
  {  // dk = c (dO Vᵀ ⊙ M)ᵀ Q + λ^{..} V Rᵀ: a reverse scan of Rᵀ (E, D)
    ScanParams& sp = sk;
    sp.x = rows(p.v);
    sp.y = rows(p.d_o);
    sp.z = rows(p.q);
    set_out(sp, p.dk);
    sp.dk = E;
    sp.dv = D;
    sp.init = static_cast<const float*>(p.d_final_state);
    sp.init_transposed = true;
    sp.reverse = true;
    sp.scale = p.scale;
    sp.alpha = 1.f;
    sp.off_out = 0;
    sp.beta = p.scale;
    sp.off_upd = 1;
  }
  {  // dv = c (Q Kᵀ ⊙ M)ᵀ dO + λ^{..} K R: a reverse scan of R (D, E); dS0 = R at the start
    ScanParams& sp = sv;
    sp.x = rows(p.k);
    sp.y = rows(p.q);
    sp.z = rows(p.d_o);
    set_out(sp, p.dv);
    sp.dk = D;
    sp.dv = E;
    sp.init = static_cast<const float*>(p.d_final_state);
    sp.final_state = static_cast<float*>(p.d_initial_state);
    sp.reverse = true;
    sp.scale = p.scale;
    sp.alpha = 1.f;
    sp.off_out = 0;
    sp.beta = p.scale;
    sp.off_upd = 1;
  }
  // The scans beside dq: dk and dv, or the two fused into one (dk as the dv scan's out2).
  const ScanParams* side[2] = {&sk, &sv};
  int num_side = 2;
  ScanParams fused = sv;
  fused.fused = true;
  fused.x2 = rows(p.v);
  fused.out2 = p.dk.data;
  fused.out2_sb = p.dk.stride_batch;
  fused.out2_sn = p.dk.stride_seq;
  fused.out2_sh = p.dk.stride_head;
  if (fused_backward(p, fused)) {
    side[0] = &fused;
    num_side = 1;
  }
  // dq from the forward's segment starts, when it kept them and dq splits the same way.
  StartsHandoff dq_starts;
  if (p.segment_starts) {
    if (const size_t need = starts_bytes(p, p.d_o)) {
      check_starts("tnl::attention_backward", p.segment_starts, p.segment_starts_bytes, need);
      dq_starts.reuse = static_cast<const float*>(p.segment_starts);
    }
  }
  if (backward_streams_enabled()) {
    std::lock_guard<std::mutex> guard(side_lock);
    if (SideStreams* ss = side_streams(st)) {  // beside dq: fork, run, join
      TNL_CUDA_CHECK(cudaEventRecord(ss->fork, st));
      for (int i = 0; i < num_side; ++i) {
        TNL_CUDA_CHECK(cudaStreamWaitEvent(ss->stream[i], ss->fork, 0));
        run_scan(p.dtype, *side[i], sl, ss->stream[i], p.max_seqlen);
        TNL_CUDA_CHECK(cudaEventRecord(ss->join[i], ss->stream[i]));
      }
      run_scan(p.dtype, sq, sl, st, p.max_seqlen, dq_starts);
      for (int i = 0; i < num_side; ++i) TNL_CUDA_CHECK(cudaStreamWaitEvent(st, ss->join[i], 0));
      return;
    }
  }
  run_scan(p.dtype, sq, sl, st, p.max_seqlen, dq_starts);
  for (int i = 0; i < num_side; ++i) run_scan(p.dtype, *side[i], sl, st, p.max_seqlen);
}

void attention_decode(const AttnDecodeParams& p) {
  const Slopes sl = make_slopes("tnl::attention_decode", p.slopes, p.heads);
  DecodeParams dp;
  dp.q = rows(p.q);
  dp.k = rows(p.k);
  dp.v = rows(p.v);
  dp.out = p.o.data;
  dp.out_sb = p.o.stride_batch;
  dp.out_sh = p.o.stride_head;
  dp.state = static_cast<float*>(p.state);
  dp.batch = p.batch;
  dp.heads = (int)p.heads;
  dp.dk = (int)p.dim_qk;
  dp.dv = (int)p.dim_v;
  dp.scale = p.scale;
  launch_decode(p.dtype, dp, sl, stream_of(p.stream));
}

}  // namespace tnl::cuda
