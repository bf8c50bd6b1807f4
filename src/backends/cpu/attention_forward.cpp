// attention_forward.cpp: the tiled forward pass on the CPU (spec §2).
//
// One task per (sequence, group of heads, value tile); a task walks its sequence in blocks of C
// tokens, each block for every head of its group:
//   A = (Q Kᵀ) ⊙ M                         intra-block scores, causal       // (C, C)
//   O = c·(A V + diag(λ^{a+1}) Q S)         output of the block              // (C, Et)
//   S ← λ^{L} S + (diag(λ^{L-1-b}) K)ᵀ V    state carried to the next block  // (D, Et)
// Scratch is per thread and O(C·(D+E) + D·E); nothing grows with N.
#include <algorithm>
#include <vector>

#include "backends/cpu/attention_cpu.h"
#include "backends/cpu/cpu_common.h"
#include "backends/cpu/cpu_gemm.h"
#include "backends/cpu/cpu_load.h"

namespace tnl::cpu {
namespace {

constexpr int C = kBlock;

// Width of the value tiles: E is split only when the (sequence, head) tasks alone would leave
// threads idle. Each extra tile recomputes the scores, so pick the width with the least
// estimated makespan (per-token cost of a tile: C·D/2 for the scores, (C/2 + 2D)·Et for the
// rest).
int64_t choose_value_tile(int64_t tasks, int threads, int64_t D, int64_t E) {
  int64_t best_et = E;
  double best = 1e300;
  for (int64_t n = 1; n <= ceil_div(E, 16); ++n) {
    const int64_t et = std::min(E, round_up(ceil_div(E, n), 16));
    const int64_t tiles = ceil_div(E, et);
    const double work = C * D / 2.0 + (C / 2.0 + 2.0 * D) * (double)et;
    const double makespan = (double)ceil_div(tasks * tiles, threads) * work;
    if (makespan < best * 0.98) best = makespan, best_et = et;
  }
  return best_et;
}

// Per-thread tiles for value tiles of width <= Ep and up to G heads.
struct ForwardTiles {
  float* q;   // (C, Dp)  Q of the block
  float* qd;  // (C, Dp)  diag(λ^{a+1}) Q
  float* k;   // (C, Dp)  K of the block
  float* kt;  // (Dp, C)  Kᵀ, then diag(λ^{L-1-b}) applied to its columns
  float* v;   // (C, Ep)  V, value tile
  float* a;   // (C, C)   scores
  float* o;   // (C, Ep)  output tile
  float* ds;  // (Dp, Ep) the block's contribution to the state
  float* s[kMaxGroup];   // (Dp, Ep) state of each head of the group
  float* sc[kMaxGroup];  // (Dp, Ep) compensation of its running sum
  Prefetcher pf;

  static int64_t floats(int64_t Dp, int64_t Ep, int64_t G) {
    return 4 * C * Dp + Dp * C + 2 * C * Ep + C * C + (1 + 2 * G) * Dp * Ep + 16 * (8 + 2 * G);
  }
  ForwardTiles(Scratch& m, int64_t Dp, int64_t Ep, int64_t G)
      : q(m.take(C * Dp)), qd(m.take(C * Dp)), k(m.take(C * Dp)), kt(m.take(Dp * C)),
        v(m.take(C * Ep)), a(m.take(C * C)), o(m.take(C * Ep)), ds(m.take(Dp * Ep)) {
    for (int64_t j = 0; j < G; ++j) s[j] = m.take(Dp * Ep), sc[j] = m.take(Dp * Ep);
  }
};

// One head of a task: its rows, decay table and state.
struct HeadScan {
  int64_t h;
  DecayTable dec;
  RowView qv, kv, vv, ov;
  float* s;
  float* sc;
  bool s_zero;
};

// Block [n0, n0 + l) of one head: output rows, then the state update.
void forward_block(const AttnForwardParams& p, const SeqRange& r, int64_t n0, int64_t e0, int et,
                   HeadScan& hs, ForwardTiles& t) {
  const DType dt = p.dtype;
  const int D = (int)p.shape.dim_qk;
  const int Dp = (int)round_up(D, 16), Ep = (int)round_up(et, 16);
  const int64_t es = dtype_size(dt);
  const int l = (int)std::min<int64_t>(C, r.len - n0);
  const int l8 = (int)round_up(l, kMR), l16 = (int)round_up(l, 16);
  const DecayTable& dec = hs.dec;
  t.pf.clear();  // this head's rows of the next block, fetched while this one computes
  if (n0 + C < r.len) {
    const int ln = (int)std::min<int64_t>(C, r.len - n0 - C);
    t.pf.add_rows(hs.qv, n0 + C, ln, 0, D * es, false);
    t.pf.add_rows(hs.kv, n0 + C, ln, 0, D * es, false);
    t.pf.add_rows(hs.vv, n0 + C, ln, e0 * es, et * es, false);
    t.pf.add_rows(hs.ov, n0 + C, ln, e0 * es, et * es, true);
    t.pf.plan(3 * l8 / kMR + Dp / kMR);
  }
  pack_rows(hs.qv, dt, n0, l, 0, D, t.q, Dp, l8);    // (l8, Dp)
  pack_rows(hs.kv, dt, n0, l, 0, D, t.k, Dp, l16);   // (l16, Dp)
  transpose(l16, Dp, t.k, Dp, t.kt, C);              // (Dp, l16)
  pack_rows(hs.vv, dt, n0, l, e0, et, t.v, Ep, l8);  // (l8, Ep)

  // Intra-block scores, lower triangle only: A = (Q Kᵀ) ⊙ M        // (l8, l16)
  gemm<false>(l8, l16, D, t.q, Dp, t.kt, C, t.a, C, 0.0f, Tri::lower, Tri::none, &t.pf);
  apply_decay_mask(t.a, C, l, 1.0f, dec);

  // O = diag(λ^{a+1}) Q S + A V                                    // (l8, Ep)
  if (!hs.s_zero) {
    scale_rows(l8, Dp, t.q, Dp, dec.pw + 1, 1.0f, t.qd, Dp);
    gemm<false>(l8, Ep, D, t.qd, Dp, hs.s, Ep, t.o, Ep, 0.0f, Tri::none, Tri::none, &t.pf);
  }
  gemm<false>(l8, Ep, l, t.a, C, t.v, Ep, t.o, Ep, hs.s_zero ? 0.0f : 1.0f, Tri::none,
              Tri::lower, &t.pf);
  store_rows(t.o, Ep, l, et, p.scale, p.o, dt, r, hs.h, n0, e0);

  // S ← λ^l S + (diag(λ^{l-1-b}) K)ᵀ V: scale the columns of Kᵀ, then one GEMM  // (Dp, Ep)
  scale_cols(Dp, l16, t.kt, C, dec.rev + (C - l), 1.0f, t.kt, C);
  gemm<false>(Dp, Ep, l, t.kt, C, t.v, Ep, hs.s_zero ? hs.s : t.ds, Ep, 0.0f, Tri::none,
              Tri::none, &t.pf);
  if (!hs.s_zero) accumulate_state(D, Ep, hs.s, hs.sc, t.ds, Ep, dec.pw[l]);
  hs.s_zero = false;
}

// Heads [h0, h0 + G) of sequence `seq`, value columns [e0, e0 + et), block by block.
void forward_task(const AttnForwardParams& p, int64_t seq, int64_t h0, int64_t G, int64_t e0,
                  int et, ForwardTiles& t) {
  const AttnShape& sh = p.shape;
  const DType dt = p.dtype;
  const int64_t H = sh.heads, E = sh.dim_v;
  const int D = (int)sh.dim_qk;
  const int Dp = (int)round_up(D, 16), Ep = (int)round_up(et, 16);
  const SeqRange r = seq_range(sh, p.cu_seqlens, seq);
  std::vector<HeadScan> heads;
  heads.reserve(G);
  for (int64_t j = 0; j < G; ++j) {
    const int64_t h = h0 + j;
    const float* s0 = p.initial_state ? static_cast<const float*>(p.initial_state) +
                                            (seq * H + h) * D * E
                                      : nullptr;
    load_state(s0, E, D, e0, et, t.s[j], Ep, Dp);  // (Dp, Ep)
    std::fill(t.sc[j], t.sc[j] + (int64_t)Dp * Ep, 0.0f);
    heads.push_back({h, DecayTable(p.slopes[h]), row_view(p.q, dt, r, h), row_view(p.k, dt, r, h),
                     row_view(p.v, dt, r, h), row_view(p.o, dt, r, h), t.s[j], t.sc[j],
                     s0 == nullptr});
  }
  for (int64_t n0 = 0; n0 < r.len; n0 += C)
    for (HeadScan& hs : heads) forward_block(p, r, n0, e0, et, hs, t);
  if (p.final_state)
    for (const HeadScan& hs : heads)
      store_state(hs.s, Ep, D, static_cast<float*>(p.final_state) + (seq * H + hs.h) * D * E, E,
                  e0, et);
}

}  // namespace

void attention_forward(const AttnForwardParams& p) {
  const AttnShape& sh = p.shape;
  const int64_t nseq = attn::num_sequences(sh, p.cu_seqlens, p.num_seqs);
  const int64_t H = sh.heads, D = sh.dim_qk, E = sh.dim_v;
  int threads = resolve_threads(p.num_threads);
  const int64_t et = choose_value_tile(nseq * H, threads, D, E);
  const int64_t tiles = ceil_div(E, et);
  const int64_t Dp = round_up(D, 16), Ep = round_up(et, 16);
  // At least one task per thread (more heads per task: fewer page walks, +10% at N = 128K in
  // bnhd; fewer tasks: less slack when another process holds a core).
  const int64_t G = tiles == 1 ? choose_head_group(nseq, H, threads, threads, Dp, Ep) : 1;
  const int64_t groups = H / G;
  const int64_t total = nseq * groups * tiles;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, total));

#pragma omp parallel num_threads(threads)
  {
    Scratch& scratch = Scratch::local((size_t)ForwardTiles::floats(Dp, Ep, G));
    ForwardTiles t(scratch, Dp, Ep, G);
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < total; ++i) {
      const int64_t tile = i % tiles, grp = (i / tiles) % groups, seq = i / tiles / groups;
      const int64_t e0 = tile * et;
      forward_task(p, seq, grp * G, G, e0, (int)std::min(et, E - e0), t);
    }
  }
}

}  // namespace tnl::cpu
