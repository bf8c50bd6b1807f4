// prepass_tc.cuh: the segment pre-pass of the bf16 tensor-core scan as one GEMM per segment
// (included by chunk_scan_tc.cuh, inside namespace tnl::cuda::tc).
//
// The pre-pass gives, for every (sequence, head) and segment g < num_segs - 1, the segment's
// local end state: the scan's state update run from zero over the segment's chunks. Each
// chunk's decay λ^C of the state times the in-chunk weights multiplies out to one weight per
// scan row, so
//   S_g = Σ_τ w_τ y_τ z_τᵀ,   w_τ = β λ^(end_g - 1 - τ + off),   τ over the segment,
// a GEMM Yᵀ (w ⊙ Z) with no chain from chunk to chunk (the chunk_scan_tc kernel's pre-pass
// runs the chain, and is bound by its latency). Weights too small for fp32 become zero: those
// rows sit below the fp32 resolution of the state anyway; bf16 has fp32's exponent range, so
// w_τ z_τ rounded to bf16 loses no more than the chain's rounding of w·y does (fp16 keeps the
// chain).
//
// Segments may be split into p.pre_split sub-segments, each its own GEMM with its own local end
// state (the segment prefix, segment_prefix.cu, chains them), so that (sequence, head)
// pairs x segments too few to fill the GPU still do.
//
// One block = one (sequence, head, sub-segment, 128 x 128 tile of the (dk, dv) state); 8 warps,
// warp w owning rows 64 (w / 4) .., columns 32 (w % 4) .. of the tile (64 fp32 accumulators a
// thread). Per chunk of C = 64 scan rows: the Y and Z tiles arrive by cp.async, kStages chunks
// in flight; the block weights Z in shared memory once (hi, and lo into a scratch tile when
// SPLIT: the compensated mode's exact w·z), then each warp runs 16 (or 32) MMAs per 16 rows.

constexpr int kPreThreads = 256;
constexpr int kPreTile = 128;        // state rows and columns per block
constexpr int kPreLd = kPreTile + kPad;

// STAGES chunks of copies in flight; two blocks per SM fit with 3 stages when rounded, with 2
// when compensated (SPLIT: the lo scratch tile).
template <bool SPLIT, int STAGES>
constexpr size_t prepass_smem_bytes() {
  // STAGES x (Y, Z) tiles (C, 128), the lo scratch tile when SPLIT, the chunk's weights
  return 2 * ((size_t)STAGES * 2 + (SPLIT ? 1 : 0)) * kC * kPreLd + sizeof(float) * kC;
}

template <class T, bool SPLIT, int STAGES>
__global__ void __launch_bounds__(kPreThreads, 2)
    prepass_gemm_kernel(const ScanParams p, const Slopes sl) {
  constexpr int kStages = STAGES;
  using O = Ops<T>;
  constexpr int kTileEl = kC * kPreLd;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sm = reinterpret_cast<T*>(smem_raw);
  T* Zlo = sm + kStages * 2 * kTileEl;                                  // (C, 128), SPLIT
  float* wts = reinterpret_cast<float*>(sm + (kStages * 2 + (SPLIT ? 1 : 0)) * kTileEl);  // (C)
  auto Ys = [&](int stage) { return sm + stage * 2 * kTileEl; };          // (C, 128)
  auto Zs = [&](int stage) { return sm + stage * 2 * kTileEl + kTileEl; };  // (C, 128)

  const int subs = (p.num_segs - 1) * p.pre_split;  // the last segment's state is never needed
  const int sub = (int)(blockIdx.x % subs);
  const int64_t shd = blockIdx.x / subs;  // s·H + h
  const int h = (int)(shd % p.heads);
  const int64_t s = shd / p.heads;
  const int tiles_e = (p.dv + kPreTile - 1) / kPreTile;
  const int d0 = (int)(blockIdx.y / tiles_e) * kPreTile, e0 = (int)(blockIdx.y % tiles_e) * kPreTile;
  const SeqLoc sq = seq_loc(p, s);
  const int64_t seg_begin = (int64_t)sub * p.sub_len, seg_end = seg_begin + p.sub_len;  // full
  const int chunks = (int)(p.sub_len / kC);
  const float slope = sl.s[h];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int wm = warp / 4, wn = warp % 4;

  TileStream<T, kPreTile, kPreThreads> ys, zs;
  ys.init(p.y, sq, h, p.reverse, seg_begin, d0, p.dk, kPreLd);
  zs.init(p.z, sq, h, p.reverse, seg_begin, e0, p.dv, kPreLd);
  auto load = [&](int stage) {
    ys.load(Ys(stage), kPreLd, p.y, p.reverse, seg_end);
    zs.load(Zs(stage), kPreLd, p.z, p.reverse, seg_end);
    cp_async_commit();
  };
#pragma unroll
  for (int c = 0; c < kStages - 1; ++c) {
    if (c < chunks) load(c);
    else cp_async_commit();  // an empty group keeps the wait count below fixed
  }

  float acc[4][4][4];  // (m-tile i: rows 64 wm + 16 i, n-tile j: columns 32 wn + 8 j) fragments
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  for (int c = 0; c < chunks; ++c) {
    const int stage = c % kStages;
    // Chunk c's copies (group c of the NS - 1 + c committed) have landed for this thread.
    cp_async_wait<kStages - 2>();
    if (threadIdx.x < kC) {
      const int b = threadIdx.x;  // w = β λ^(end - 1 - τ + off), τ = seg_begin + C c + b
      const float steps = (float)((chunks - 1 - c) * kC + (kC - 1 - b) + p.off_upd);
      wts[b] = p.beta * expf(-slope * steps);
    }
    // Everyone's copies of chunk c and the weights are visible; every warp is past chunk
    // c - 1's MMAs, so its stage, the lo scratch and (already) the weights may be rewritten.
    __syncthreads();
    if (c + kStages - 1 < chunks) load((c + kStages - 1) % kStages);
    else cp_async_commit();

    // Z ← w ⊙ Z rounded to T (hi), the remainder into Zlo when SPLIT: 8 values a vector.
    T* Z = Zs(stage);
    for (int i = threadIdx.x; i < kC * (kPreTile / 8); i += kPreThreads) {
      const int row = i / (kPreTile / 8), col = (i % (kPreTile / 8)) * 8;
      const float w = wts[row];
      uint4 v = *reinterpret_cast<const uint4*>(Z + at(row, col, kPreLd));
      uint4 lo = v;
      uint32_t* vw = reinterpret_cast<uint32_t*>(&v);
      uint32_t* lw = reinterpret_cast<uint32_t*>(&lo);
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const float2 z = O::to_f2(*reinterpret_cast<const typename O::T2*>(&vw[q]));
        const float x0 = w * z.x, x1 = w * z.y;
        const typename O::T2 hi = O::from_f2(x0, x1);
        vw[q] = *reinterpret_cast<const uint32_t*>(&hi);
        if constexpr (SPLIT) {
          const float2 hf = O::to_f2(hi);
          const typename O::T2 l = O::from_f2(x0 - hf.x, x1 - hf.y);
          lw[q] = *reinterpret_cast<const uint32_t*>(&l);
        }
      }
      *reinterpret_cast<uint4*>(Z + at(row, col, kPreLd)) = v;
      if constexpr (SPLIT) *reinterpret_cast<uint4*>(Zlo + at(row, col, kPreLd)) = lo;
    }
    __syncthreads();

    // acc += Yᵀ (w ⊙ Z) over the chunk's 64 rows: A = Yᵀ (rows d, k = τ) read transposed.
    const T* Y = Ys(stage);
#pragma unroll
    for (int k0 = 0; k0 < kC; k0 += 16) {
      uint32_t a[4][4], bh[4][2], bl[4][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) frag_a_t(a[i], Y, kPreLd, 64 * wm + 16 * i, k0, lane);
#pragma unroll
      for (int j = 0; j < 4; j += 2) {
        frag_b_k2(bh[j], bh[j + 1], Z, kPreLd, k0, 32 * wn + 8 * j, lane);
        if constexpr (SPLIT) frag_b_k2(bl[j], bl[j + 1], Zlo, kPreLd, k0, 32 * wn + 8 * j, lane);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          O::mma(acc[i][j], a[i], bh[j]);
          if constexpr (SPLIT) O::mma(acc[i][j], a[i], bl[j]);
        }
    }
  }
  cp_async_wait_all();  // the trailing empty groups

  float* dst = p.seg_states + (shd * p.num_segs * p.pre_split + sub) * p.dk * p.dv;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int d = d0 + 64 * wm + 16 * i + g + 8 * (r / 2);
        const int e = e0 + 32 * wn + 8 * j + 2 * t + (r % 2);
        if (d < p.dk && e < p.dv) dst[(int64_t)d * p.dv + e] = acc[i][j][r];
      }
}

// The GEMM pre-pass serves bf16 scans with 64 < dk, dv (its 128 x 128 tiles; the chain is
// faster for smaller states) and 16-byte aligned rows of Y and Z (the cp.async vectors);
// TNL_CUDA_PREPASS=0 turns it off (the chain in chunk_scan_tc_kernel then runs).
inline bool prepass_gemm_enabled() {
  static const bool on = !env_is("TNL_CUDA_PREPASS", '0');
  return on;
}

template <class T>
bool prepass_gemm_serves(const ScanParams& p) {
  return std::is_same_v<T, __nv_bfloat16> && prepass_gemm_enabled() && p.num_segs > 1 &&
         !p.cu_seqlens && p.seg_len % kC == 0 && p.dk > 64 && p.dv > 64 && vec_rows(p, false);
}

// Stages of the pre-pass: 3 when rounded; 2 when compensated (two blocks per SM), 3 with
// TNL_CUDA_PREPASS_STAGES=3 (one block per SM).
template <bool SPLIT>
int prepass_stages() {
  static const bool three = env_is("TNL_CUDA_PREPASS_STAGES", '3');
  return SPLIT && !three ? 2 : 3;
}

template <class T, bool SPLIT, int STAGES>
void launch_prepass_gemm_staged(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  const dim3 grid((unsigned)(p.num_seqs * p.heads * (p.num_segs - 1) * p.pre_split),
                  (unsigned)(((p.dk + kPreTile - 1) / kPreTile) * ((p.dv + kPreTile - 1) / kPreTile)));
  constexpr size_t bytes = prepass_smem_bytes<SPLIT, STAGES>();
  auto kern = prepass_gemm_kernel<T, SPLIT, STAGES>;
  TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
  kern<<<grid, kPreThreads, bytes, stream>>>(p, sl);
  TNL_CUDA_CHECK_LAUNCH();
}

template <class T, bool SPLIT>
void launch_prepass_gemm(const ScanParams& p, const Slopes& sl, cudaStream_t stream) {
  if (prepass_stages<SPLIT>() == 2) return launch_prepass_gemm_staged<T, SPLIT, 2>(p, sl, stream);
  launch_prepass_gemm_staged<T, SPLIT, 3>(p, sl, stream);
}

// Blocks of the GEMM pre-pass resident on one multiprocessor (occupancy calculator, once).
template <class T, bool SPLIT>
int prepass_blocks_per_sm() {
  static const int blocks = [] {
    const bool two = prepass_stages<SPLIT>() == 2;
    auto kern = two ? prepass_gemm_kernel<T, SPLIT, 2> : prepass_gemm_kernel<T, SPLIT, 3>;
    const int bytes = (int)(two ? prepass_smem_bytes<SPLIT, 2>() : prepass_smem_bytes<SPLIT, 3>());
    TNL_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
    int n = 0;
    TNL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, kPreThreads, bytes));
    return n > 0 ? n : 1;
  }();
  return blocks;
}

// TNL_CUDA_PREPASS_SPLIT=<1..8>: at most that many sub-segments per segment (0: unset). Read once.
inline int prepass_split_forced() {
  static const int forced = [] {
    const char* e = std::getenv("TNL_CUDA_PREPASS_SPLIT");
    return e && e[0] >= '1' && e[0] <= '8' ? e[0] - '0' : 0;
  }();
  return forced;
}

// Sub-segments per segment (prepass_split_count, prepass_split.h) for one wave of the pre-pass's
// blocks on `sms` multiprocessors; TNL_CUDA_PREPASS_SPLIT=<1..8>: at most that many.
template <class T>
int prepass_split(const ScanParams& p, int sms) {
  if (p.num_segs <= 1 || !prepass_gemm_serves<T>(p)) return 1;
  const int64_t tiles = ((p.dk + kPreTile - 1) / kPreTile) * ((p.dv + kPreTile - 1) / kPreTile);
  const int64_t blocks = p.num_seqs * p.heads * (p.num_segs - 1) * tiles;
  const int64_t slots = (int64_t)sms * (p.compensated ? prepass_blocks_per_sm<T, true>()
                                                      : prepass_blocks_per_sm<T, false>());
  return prepass_split_count(blocks, slots, p.seg_len / kC, prepass_split_forced());
}
