// cluster_probe.cu: the two numbers the cluster-chained scan (bench/cuda/NOTES.md, "The segment
// prefix, the pre-pass on TMA, ...") depends on, measured on the device before that kernel is
// written:
//
// 1. chain: the latency of one hand-off of a segment state (64 KB fp32) from a CTA to the next
//    in a cluster of 8 through distributed shared memory: the receiver waits on an mbarrier, reads
//    the state into registers, computes λ^L S + A (one FMA a value), writes it to shared memory
//    and sends it on with one bulk copy (cp.async.bulk shared::cta -> shared::cluster, completed on
//    the next CTA's mbarrier). A token goes round the ring `rounds` times, in one cluster alone
//    and in every cluster that fits at once (15 on an H200). Also without the register round
//    trip (the copy only) and for 16 / 32 KB.
// 2. l2: whether the pre-pass's K, V come back from L2 when a CTA reads them again one small
//    segment later. 128 CTAs (one per SM) stream rounds of [K,V of a segment; Q; K,V again; O
//    stored] with bulk copies (as TMA does), against [K,V; Q; O] (the floor's traffic) and against
//    a second K,V read from addresses read long before (what today's separate pre-pass does).
//    Same totals as 1x16x128K bf16 at D = E = 128. If "reread" runs as fast as "floor", the
//    re-read hits L2 at that segment length.
//
// Usage: tnl_cluster_probe [rounds]   (sm_90 only; prints two markdown tables)
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define PROBE_CHECK(x)                                                                     \
  do {                                                                                     \
    cudaError_t err_ = (x);                                                                \
    if (err_ != cudaSuccess) {                                                             \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(err_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

namespace {

constexpr int kG = 8;                 // CTAs a cluster
constexpr int kStateBytes = 65536;    // the largest state handed on
constexpr int kChainThreads = 256;
constexpr int kPiece = 16384;         // bytes of one bulk copy in the l2 probe
constexpr int kStages = 4;            // l2 probe: copies in flight per CTA

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_expect(uint64_t* bar, uint32_t bytes) {  // arrive + expect_tx
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
__device__ __forceinline__ uint32_t cluster_rank() {
  uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
__device__ __forceinline__ uint32_t map_to(uint32_t addr, uint32_t rank) {  // the same offset in CTA `rank`
  uint32_t r;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(r) : "r"(addr), "r"(rank));
  return r;
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.aligned;\nbarrier.cluster.wait.aligned;\n" ::: "memory");
}
__device__ __forceinline__ uint64_t now_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}
#endif

// The ring: CTA k receives the state in `recv`, and (COMPUTE) writes λ S + A to `send` and sends
// that, or sends `recv` itself; CTA 0 starts the token and times `rounds` trips. ns_per_link[c]:
// cluster c's mean time per hand-off.
template <bool COMPUTE>
__global__ void __launch_bounds__(kChainThreads, 1) chain_kernel(int rounds, int bytes, double* ns_per_link) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(1024) unsigned char sm[];
  float* recv = reinterpret_cast<float*>(sm);
  float* send = reinterpret_cast<float*>(sm + kStateBytes);
  uint64_t* full = reinterpret_cast<uint64_t*>(sm + 2 * kStateBytes);
  const uint32_t rank = cluster_rank(), next = (rank + 1) % kG;
  const int floats = bytes / 4;
  for (int i = threadIdx.x; i < floats; i += kChainThreads) recv[i] = send[i] = 1.f;
  if (threadIdx.x == 0) {
    mbar_init(full, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    mbar_expect(full, bytes);  // the first receive
  }
  __syncthreads();
  cluster_sync();  // every CTA's barrier armed before any copy

  const float decay = 0.999f, local = 1e-3f * (float)(rank + 1);
  uint32_t parity = 0;
  uint64_t t0 = now_ns();
  for (int r = 0; r < rounds; ++r) {
    if (!(rank == 0 && r == 0)) {  // wait for the token, then arm the next receive
      mbar_wait(full, parity);
      parity ^= 1;
      __syncthreads();
      if (threadIdx.x == 0) mbar_expect(full, bytes);
    }
    if (COMPUTE) {  // 64 KB: 16 float4 a thread, all loaded before any store
      const int vecs = floats / 4 / kChainThreads;
      float4 v[16];
#pragma unroll
      for (int u = 0; u < 16; ++u)
        if (u < vecs) v[u] = reinterpret_cast<const float4*>(recv)[threadIdx.x + u * kChainThreads];
#pragma unroll
      for (int u = 0; u < 16; ++u)
        if (u < vecs) {
          float4 w = v[u];
          w.x = fmaf(decay, w.x, local);
          w.y = fmaf(decay, w.y, local);
          w.z = fmaf(decay, w.z, local);
          w.w = fmaf(decay, w.w, local);
          reinterpret_cast<float4*>(send)[threadIdx.x + u * kChainThreads] = w;
        }
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");  // generic writes -> the copy
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      const uint32_t src = smem_u32(COMPUTE ? send : recv);
      asm volatile(
          "cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
              map_to(smem_u32(recv), next)),
          "r"(src), "r"(bytes), "r"(map_to(smem_u32(full), next))
          : "memory");
    }
  }
  if (rank == 0) {  // the last trip's state back from CTA kG - 1
    mbar_wait(full, parity);
    if (threadIdx.x == 0) {
      const uint64_t t1 = now_ns();
      ns_per_link[blockIdx.x / kG] = (double)(t1 - t0) / ((double)rounds * kG);
    }
  }
  cluster_sync();  // no CTA leaves while a copy from or into it may be in flight
#else
  (void)rounds, (void)bytes, (void)ns_per_link;
#endif
}

// The l2 probe: CTA i streams its own regions (kv: rounds x seg_kv bytes, q and o: rounds x
// seg_kv / 2) with bulk copies of kPiece bytes, kStages in flight. MODE 0: K,V; Q; O (the floor).
// MODE 1: K,V; Q; K,V again; O. MODE 2: K,V; Q; K,V of the CTA `far` places on (read long before
// or long after: a cold second read, as today's separate pre-pass); O.
template <int MODE>
__global__ void __launch_bounds__(32, 1) stream_kernel(const unsigned char* kv, const unsigned char* q, unsigned char* o,
                                                     long long seg_kv, int rounds, int far) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(1024) unsigned char sm[];
  uint64_t* full = reinterpret_cast<uint64_t*>(sm + (kStages + 1) * kPiece);
  if (threadIdx.x != 0) return;
  for (int s = 0; s < kStages; ++s) mbar_init(&full[s], 1);
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  long long issued = 0;  // copies issued so far; copy c uses stage c % kStages
  auto load = [&](const unsigned char* src, long long bytes) {
    for (long long off = 0; off < bytes; off += kPiece, ++issued) {
      const int stage = (int)(issued % kStages);
      if (issued >= kStages) mbar_wait(&full[stage], (uint32_t)((issued / kStages - 1) & 1));
      mbar_expect(&full[stage], kPiece);
      asm volatile(
          "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
              smem_u32(sm + stage * kPiece)),
          "l"(src + off), "r"(kPiece), "r"(smem_u32(&full[stage]))
          : "memory");
    }
  };
  auto store = [&](unsigned char* dst, long long bytes) {
    for (long long off = 0; off < bytes; off += kPiece) {
      asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n" ::"l"(dst + off),
                   "r"(smem_u32(sm + kStages * kPiece)), "r"(kPiece)
                   : "memory");
      asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
      asm volatile("cp.async.bulk.wait_group.read 4;\n" ::: "memory");
    }
  };
  const long long cta = blockIdx.x, ctas = gridDim.x, seg_q = seg_kv / 2;
  const unsigned char* my_kv = kv + cta * rounds * seg_kv;
  const unsigned char* far_kv = kv + ((cta + far) % ctas) * rounds * seg_kv;
  for (int r = 0; r < rounds; ++r) {
    load(my_kv + r * seg_kv, seg_kv);
    load(q + (cta * rounds + r) * seg_q, seg_q);
    if (MODE == 1) load(my_kv + r * seg_kv, seg_kv);
    if (MODE == 2) load(far_kv + (long long)((r + rounds / 2) % rounds) * seg_kv, seg_kv);
    store(o + (cta * rounds + r) * seg_q, seg_q);
  }
  for (long long c = issued > kStages ? issued - kStages : 0; c < issued; ++c)  // the last copies
    mbar_wait(&full[c % kStages], (uint32_t)((c / kStages) & 1));
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#else
  (void)kv, (void)q, (void)o, (void)seg_kv, (void)rounds, (void)far;
#endif
}

template <bool COMPUTE>
void run_chain(int clusters, int rounds, int bytes, double* d_ns) {
  const int smem = 2 * kStateBytes + 64;
  auto kern = chain_kernel<COMPUTE>;
  PROBE_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(kG * (clusters > 0 ? clusters : 1));  // for the occupancy query
  cfg.blockDim = dim3(kChainThreads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = kG;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  int active = 0;
  PROBE_CHECK(cudaOccupancyMaxActiveClusters(&active, kern, &cfg));
  if (clusters == 0) clusters = active;  // as many as fit at once (15 of 8 CTAs on an H200)
  cfg.gridDim = dim3(kG * clusters);
  if (clusters == 0 || active < clusters) {
    std::printf("| %s | %d KB | %d | only %d clusters fit at once: skipped |\n", COMPUTE ? "read, FMA, send" : "send only",
                bytes / 1024, clusters, active);
    return;
  }
  PROBE_CHECK(cudaLaunchKernelEx(&cfg, kern, rounds, bytes, d_ns));
  PROBE_CHECK(cudaGetLastError());
  PROBE_CHECK(cudaDeviceSynchronize());
  std::vector<double> ns(clusters);
  PROBE_CHECK(cudaMemcpy(ns.data(), d_ns, sizeof(double) * clusters, cudaMemcpyDeviceToHost));
  double lo = ns[0], hi = ns[0], sum = 0;
  for (double v : ns) lo = v < lo ? v : lo, hi = v > hi ? v : hi, sum += v;
  std::printf("| %s | %d KB | %d | %.2f | %.2f .. %.2f | %.1f |\n", COMPUTE ? "read, FMA, send" : "send only",
              bytes / 1024, clusters, sum / clusters / 1e3, lo / 1e3, hi / 1e3, bytes / (sum / clusters));
}

template <int MODE>
double run_stream(const unsigned char* kv, const unsigned char* q, unsigned char* o, long long seg_kv, int rounds,
                  int ctas) {
  const int smem = (kStages + 1) * kPiece + 64;
  auto kern = stream_kernel<MODE>;
  PROBE_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  cudaEvent_t a, b;
  PROBE_CHECK(cudaEventCreate(&a));
  PROBE_CHECK(cudaEventCreate(&b));
  double best = 1e30;
  for (int rep = 0; rep < 4; ++rep) {  // the first is a warm-up; the best of the other three
    PROBE_CHECK(cudaEventRecord(a));
    kern<<<ctas, 32, smem>>>(kv, q, o, seg_kv, rounds, ctas / 2);
    PROBE_CHECK(cudaEventRecord(b));
    PROBE_CHECK(cudaEventSynchronize(b));
    PROBE_CHECK(cudaGetLastError());
    float ms = 0;
    PROBE_CHECK(cudaEventElapsedTime(&ms, a, b));
    if (rep > 0 && ms < best) best = ms;
  }
  PROBE_CHECK(cudaEventDestroy(a));
  PROBE_CHECK(cudaEventDestroy(b));
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 500;
  if (rounds < 1) {
    std::fprintf(stderr, "tnl_cluster_probe: rounds must be a positive integer, got %s\n", argv[1]);
    return 2;
  }
  int dev = 0, major = 0, sms = 0;
  PROBE_CHECK(cudaGetDevice(&dev));
  PROBE_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  PROBE_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  cudaDeviceProp prop;
  PROBE_CHECK(cudaGetDeviceProperties(&prop, dev));
  if (major != 9) {
    std::printf("tnl_cluster_probe: needs an sm_90 GPU (this is %s, sm_%d%d)\n", prop.name, prop.major, prop.minor);
    return 0;
  }
  std::printf("tnl_cluster_probe: %s, %d SMs, L2 %d MB\n\n", prop.name, sms, prop.l2CacheSize >> 20);

  std::printf("State hand-off along a ring of %d CTAs (distributed shared memory), %d trips:\n\n", kG, rounds);
  std::printf("| link | state | clusters | us a link (mean) | us (clusters' range) | GB/s a link |\n"
              "|---|---|---|---|---|---|\n");
  double* d_ns = nullptr;
  PROBE_CHECK(cudaMalloc(&d_ns, sizeof(double) * 1024));
  for (int clusters : {1, 0}) {  // one alone; every one that fits at once
    for (int bytes : {16384, 32768, 65536}) run_chain<true>(clusters, rounds, bytes, d_ns);
    run_chain<false>(clusters, rounds, 65536, d_ns);
  }
  PROBE_CHECK(cudaFree(d_ns));

  // The l2 probe at the 1x16x128K totals: K,V 1 GiB, Q and O 0.5 GiB each, over 128 CTAs.
  const int ctas = 128;
  const long long kv_total = 1LL << 30, q_total = kv_total / 2;
  unsigned char *kv = nullptr, *q = nullptr, *o = nullptr;
  PROBE_CHECK(cudaMalloc(&kv, kv_total));
  PROBE_CHECK(cudaMalloc(&q, q_total));
  PROBE_CHECK(cudaMalloc(&o, q_total));
  PROBE_CHECK(cudaMemset(kv, 1, kv_total));
  PROBE_CHECK(cudaMemset(q, 1, q_total));
  std::printf("\nK,V read again one segment later (bulk copies, %d CTAs, 1 GiB of K,V, 0.5 GiB each of Q, O;\n"
              "GB/s of the floor's traffic, K,V + Q + O, over the time):\n\n", ctas);
  std::printf("| segment (tokens of 512 B of K,V) | floor: K,V; Q; O | reread: K,V; Q; K,V; O | cold: a far K,V again |\n"
              "|---|---|---|---|\n");
  for (long long tokens : {256LL, 512LL, 1024LL, 2048LL}) {
    const long long seg_kv = tokens * 512;
    const int seg_rounds = (int)(kv_total / ctas / seg_kv);
    const double floor_ms = run_stream<0>(kv, q, o, seg_kv, seg_rounds, ctas);
    const double reread_ms = run_stream<1>(kv, q, o, seg_kv, seg_rounds, ctas);
    const double cold_ms = run_stream<2>(kv, q, o, seg_kv, seg_rounds, ctas);
    const double bytes = (double)(kv_total + 2 * q_total);
    std::printf("| %lld | %.3f ms, %.0f GB/s | %.3f ms, %.0f GB/s | %.3f ms, %.0f GB/s |\n", tokens, floor_ms,
                bytes / floor_ms / 1e6, reread_ms, bytes / reread_ms / 1e6, cold_ms, bytes / cold_ms / 1e6);
  }
  PROBE_CHECK(cudaFree(kv));
  PROBE_CHECK(cudaFree(q));
  PROBE_CHECK(cudaFree(o));
  return 0;
}
