// attention_backward.cpp: the tiled backward pass on the CPU (spec §1-2), as two independent
// scans per (sequence, head), each a task of its own (for a group of heads, block by block):
//
// pass 1 (forward in time, gives dq), carrying Sᵀ (E, D):
//   P  = (dO Vᵀ) ⊙ M                                          // (C, C)
//   dQ = c·(P K + diag(λ^{a+1}) dO Sᵀ)                         // (C, D)
//   Sᵀ ← λ^L Sᵀ + Vᵀ diag(λ^{L-1-b}) K                         // (E, D)
// pass 2 (backward in time, gives dk, dv, dS0), carrying R (D, E) = dS_final at the end:
//   dK = c·Pᵀ Q + diag(λ^{L-1-b}) V Rᵀ                         // (C, D)
//   dV = c·((Q Kᵀ) ⊙ M)ᵀ dO + diag(λ^{L-1-b}) K R              // (C, E)
//   R  ← λ^L R + c·Σ_u λ^{u+1} q_uᵀ dO_u                       // (D, E)
// and dS0 = R at the start of the sequence. Scratch is per thread, nothing grows with N.
#include <algorithm>
#include <vector>

#include "backends/cpu/attention_cpu.h"
#include "backends/cpu/cpu_common.h"
#include "backends/cpu/cpu_gemm.h"
#include "backends/cpu/cpu_load.h"

namespace tnl::cpu {
namespace {

constexpr int C = kBlock;

struct Pass1Tiles {
  float* g;   // (C, Ep)  dO of the block, then c·diag(λ^{a+1}) dO
  float* v;   // (C, Ep)  V
  float* vt;  // (Ep, C)  Vᵀ, then Vᵀ diag(λ^{L-1-b})
  float* k;   // (C, Dp)  K
  float* p;   // (C, C)   masked dO Vᵀ
  float* dq;  // (C, Dp)
  float* ds;  // (Ep, Dp) the block's contribution to Sᵀ; (Dp, Ep) S0 before its transpose
  float* st[kMaxGroup];  // (Ep, Dp) Sᵀ of each head of the group
  float* sc[kMaxGroup];  // (Ep, Dp) compensation of its running sum
  Prefetcher pf;

  static int64_t floats(int64_t Dp, int64_t Ep, int64_t G) {
    return 2 * C * Ep + Ep * C + 2 * C * Dp + C * C + (1 + 2 * G) * Dp * Ep + 16 * (7 + 2 * G);
  }
  Pass1Tiles(Scratch& m, int64_t Dp, int64_t Ep, int64_t G)
      : g(m.take(C * Ep)), v(m.take(C * Ep)), vt(m.take(Ep * C)), k(m.take(C * Dp)),
        p(m.take(C * C)), dq(m.take(C * Dp)), ds(m.take(Dp * Ep)) {
    for (int64_t j = 0; j < G; ++j) st[j] = m.take(Ep * Dp), sc[j] = m.take(Ep * Dp);
  }
};

struct Pass2Tiles {
  float* q;   // (C, Dp)  Q, then c·diag(λ^{u+1}) Q
  float* k;   // (C, Dp)  K, then diag(λ^{L-1-b}) K
  float* kt;  // (Dp, C)  Kᵀ
  float* v;   // (C, Ep)  V, then diag(λ^{L-1-b}) V
  float* vt;  // (Ep, C)  Vᵀ
  float* g;   // (C, Ep)  dO
  float* a;   // (C, C)   c·(Q Kᵀ) ⊙ M
  float* p;   // (C, C)   c·(dO Vᵀ) ⊙ M
  float* dk;  // (C, Dp)
  float* dv;  // (C, Ep)
  float* dr;  // (Dp, Ep) the block's contribution to R
  float* r[kMaxGroup];   // (Dp, Ep) R of each head of the group
  float* rt[kMaxGroup];  // (Ep, Dp) Rᵀ
  float* rc[kMaxGroup];  // (Dp, Ep) compensation of R's running sum
  Prefetcher pf;

  static int64_t floats(int64_t Dp, int64_t Ep, int64_t G) {
    return 3 * C * Dp + Dp * C + 4 * C * Ep + Ep * C + 2 * C * C + (1 + 3 * G) * Dp * Ep +
           16 * (11 + 3 * G);
  }
  Pass2Tiles(Scratch& m, int64_t Dp, int64_t Ep, int64_t G)
      : q(m.take(C * Dp)), k(m.take(C * Dp)), kt(m.take(Dp * C)), v(m.take(C * Ep)),
        vt(m.take(Ep * C)), g(m.take(C * Ep)), a(m.take(C * C)), p(m.take(C * C)),
        dk(m.take(C * Dp)), dv(m.take(C * Ep)), dr(m.take(Dp * Ep)) {
    for (int64_t j = 0; j < G; ++j)
      r[j] = m.take(Dp * Ep), rt[j] = m.take(Ep * Dp), rc[j] = m.take(Dp * Ep);
  }
};

// One head of a task: its rows, decay table and carried state (Sᵀ for pass 1, R for pass 2).
struct HeadScan {
  int64_t h;
  int64_t state_off;  // of (seq, h) in the (S, H, D, E) states
  DecayTable dec;
  RowView qv, kv, vv, gv, dqv, dkv, dvv;
  float *st, *rt, *sc;  // Sᵀ (pass 1) or R (pass 2), Rᵀ (pass 2), compensation
  bool zero;            // the carried state is still all zeros
};

HeadScan head_scan(const AttnBackwardParams& p, const SeqRange& r, int64_t seq, int64_t h) {
  const DType dt = p.dtype;
  return {h,
          (seq * p.shape.heads + h) * p.shape.dim_qk * p.shape.dim_v,
          DecayTable(p.slopes[h]),
          row_view(p.q, dt, r, h), row_view(p.k, dt, r, h), row_view(p.v, dt, r, h),
          row_view(p.d_o, dt, r, h), row_view(p.dq, dt, r, h), row_view(p.dk, dt, r, h),
          row_view(p.dv, dt, r, h), nullptr, nullptr, nullptr, true};
}

const float* state_ptr(const void* base, int64_t off) {
  return base ? static_cast<const float*>(base) + off : nullptr;
}

// Pass 1, block [n0, n0 + l) of one head: dQ rows, then the Sᵀ update.
void pass1_block(const AttnBackwardParams& p, const SeqRange& r, int64_t n0, HeadScan& hs,
                 Pass1Tiles& t) {
  const DType dt = p.dtype;
  const int D = (int)p.shape.dim_qk, E = (int)p.shape.dim_v;
  const int Dp = (int)round_up(D, 16), Ep = (int)round_up(E, 16);
  const int64_t es = dtype_size(dt);
  const DecayTable& dec = hs.dec;
  const int l = (int)std::min<int64_t>(C, r.len - n0);
  const int l8 = (int)round_up(l, kMR), l16 = (int)round_up(l, 16);
  t.pf.clear();  // this head's rows of the next block, fetched while this one computes
  if (n0 + C < r.len) {
    const int ln = (int)std::min<int64_t>(C, r.len - n0 - C);
    t.pf.add_rows(hs.gv, n0 + C, ln, 0, E * es, false);
    t.pf.add_rows(hs.vv, n0 + C, ln, 0, E * es, false);
    t.pf.add_rows(hs.kv, n0 + C, ln, 0, D * es, false);
    t.pf.add_rows(hs.dqv, n0 + C, ln, 0, D * es, true);
    t.pf.plan(3 * l8 / kMR + Ep / kMR);
  }
  pack_rows(hs.gv, dt, n0, l, 0, E, t.g, Ep, l8);   // (l8, Ep)
  pack_rows(hs.vv, dt, n0, l, 0, E, t.v, Ep, l16);  // (l16, Ep)
  pack_rows(hs.kv, dt, n0, l, 0, D, t.k, Dp, l8);   // (l8, Dp)
  transpose(l16, Ep, t.v, Ep, t.vt, C);              // (Ep, l16)

  // P = c·(dO Vᵀ) ⊙ M                                            // (l8, l16)
  gemm<false>(l8, l16, E, t.g, Ep, t.vt, C, t.p, C, 0.0f, Tri::lower, Tri::none, &t.pf);
  apply_decay_mask(t.p, C, l, p.scale, dec);
  // dQ = c·diag(λ^{a+1}) dO Sᵀ + P K                               // (l8, Dp)
  if (!hs.zero) {
    scale_rows(l8, Ep, t.g, Ep, dec.pw + 1, p.scale, t.g, Ep);
    gemm<false>(l8, Dp, E, t.g, Ep, hs.st, Dp, t.dq, Dp, 0.0f, Tri::none, Tri::none, &t.pf);
  }
  gemm<false>(l8, Dp, l, t.p, C, t.k, Dp, t.dq, Dp, hs.zero ? 0.0f : 1.0f, Tri::none, Tri::lower,
              &t.pf);
  store_rows(t.dq, Dp, l, D, 1.0f, p.dq, dt, r, hs.h, n0, 0);
  // Sᵀ ← λ^l Sᵀ + Vᵀ diag(λ^{l-1-b}) K                            // (Ep, Dp)
  scale_cols(Ep, l16, t.vt, C, dec.rev + (C - l), 1.0f, t.vt, C);
  gemm<false>(Ep, Dp, l, t.vt, C, t.k, Dp, hs.zero ? hs.st : t.ds, Dp, 0.0f, Tri::none,
              Tri::none, &t.pf);
  if (!hs.zero) accumulate_state(E, Dp, hs.st, hs.sc, t.ds, Dp, dec.pw[l]);
  hs.zero = false;
}

// Pass 2, block [n0, n0 + l) of one head: dK, dV rows, then the R update.
void pass2_block(const AttnBackwardParams& p, const SeqRange& r, int64_t n0, HeadScan& hs,
                 Pass2Tiles& t) {
  const DType dt = p.dtype;
  const int D = (int)p.shape.dim_qk, E = (int)p.shape.dim_v;
  const int Dp = (int)round_up(D, 16), Ep = (int)round_up(E, 16);
  const int64_t es = dtype_size(dt);
  const DecayTable& dec = hs.dec;
  const int l = (int)std::min<int64_t>(C, r.len - n0);
  const int l8 = (int)round_up(l, kMR), l16 = (int)round_up(l, 16);
  t.pf.clear();  // this head's rows of the previous (full) block, fetched while this one computes
  if (n0 > 0) {
    for (const RowView* in : {&hs.qv, &hs.kv}) t.pf.add_rows(*in, n0 - C, C, 0, D * es, false);
    for (const RowView* in : {&hs.vv, &hs.gv}) t.pf.add_rows(*in, n0 - C, C, 0, E * es, false);
    t.pf.add_rows(hs.dkv, n0 - C, C, 0, D * es, true);
    t.pf.add_rows(hs.dvv, n0 - C, C, 0, E * es, true);
    t.pf.plan(6 * l8 / kMR + Dp / kMR);
  }
  pack_rows(hs.qv, dt, n0, l, 0, D, t.q, Dp, l8);   // (l8, Dp)
  pack_rows(hs.kv, dt, n0, l, 0, D, t.k, Dp, l16);  // (l16, Dp)
  pack_rows(hs.vv, dt, n0, l, 0, E, t.v, Ep, l16);  // (l16, Ep)
  pack_rows(hs.gv, dt, n0, l, 0, E, t.g, Ep, l8);   // (l8, Ep)
  transpose(l16, Dp, t.k, Dp, t.kt, C);              // (Dp, l16)
  transpose(l16, Ep, t.v, Ep, t.vt, C);              // (Ep, l16)

  // Scores and their gradient counterpart, lower triangles, scaled by c      // (l8, l16)
  gemm<false>(l8, l16, D, t.q, Dp, t.kt, C, t.a, C, 0.0f, Tri::lower, Tri::none, &t.pf);
  apply_decay_mask(t.a, C, l, p.scale, dec);
  gemm<false>(l8, l16, E, t.g, Ep, t.vt, C, t.p, C, 0.0f, Tri::lower, Tri::none, &t.pf);
  apply_decay_mask(t.p, C, l, p.scale, dec);

  // dK = diag(λ^{l-1-b}) V Rᵀ + Pᵀ Q   (Pᵀ read in place: upper triangular)  // (l8, Dp)
  // dV = diag(λ^{l-1-b}) K R  + Aᵀ dO                                           // (l8, Ep)
  if (!hs.zero) {
    scale_rows(l8, Ep, t.v, Ep, dec.rev + (C - l), 1.0f, t.v, Ep);
    scale_rows(l8, Dp, t.k, Dp, dec.rev + (C - l), 1.0f, t.k, Dp);
    gemm<false>(l8, Dp, E, t.v, Ep, hs.rt, Dp, t.dk, Dp, 0.0f, Tri::none, Tri::none, &t.pf);
    gemm<false>(l8, Ep, D, t.k, Dp, hs.st, Ep, t.dv, Ep, 0.0f, Tri::none, Tri::none, &t.pf);
  }
  const float beta = hs.zero ? 0.0f : 1.0f;
  gemm<true>(l8, Dp, l, t.p, C, t.q, Dp, t.dk, Dp, beta, Tri::none, Tri::upper, &t.pf);
  gemm<true>(l8, Ep, l, t.a, C, t.g, Ep, t.dv, Ep, beta, Tri::none, Tri::upper, &t.pf);
  store_rows(t.dk, Dp, l, D, 1.0f, p.dk, dt, r, hs.h, n0, 0);
  store_rows(t.dv, Ep, l, E, 1.0f, p.dv, dt, r, hs.h, n0, 0);

  // R ← λ^l R + (c·diag(λ^{u+1}) Q)ᵀ dO, and its transpose for the next block  // (Dp, Ep)
  scale_rows(l, Dp, t.q, Dp, dec.pw + 1, p.scale, t.q, Dp);
  gemm<true>(Dp, Ep, l, t.q, Dp, t.g, Ep, hs.zero ? hs.st : t.dr, Ep, 0.0f, Tri::none, Tri::none,
             &t.pf);
  if (!hs.zero) accumulate_state(D, Ep, hs.st, hs.sc, t.dr, Ep, dec.pw[l]);
  transpose(Dp, Ep, hs.st, Ep, hs.rt, Dp);
  hs.zero = false;
}

// Pass 1 for heads [h0, h0 + G) of sequence `seq`, block by block, forward in time.
void pass1_dq(const AttnBackwardParams& p, int64_t seq, int64_t h0, int64_t G, Pass1Tiles& t) {
  const int D = (int)p.shape.dim_qk, E = (int)p.shape.dim_v;
  const int Dp = (int)round_up(D, 16), Ep = (int)round_up(E, 16);
  const SeqRange r = seq_range(p.shape, p.cu_seqlens, seq);
  std::vector<HeadScan> heads;
  heads.reserve(G);
  for (int64_t j = 0; j < G; ++j) {
    HeadScan hs = head_scan(p, r, seq, h0 + j);
    hs.st = t.st[j], hs.sc = t.sc[j];
    const float* s0 = state_ptr(p.initial_state, hs.state_off);
    hs.zero = s0 == nullptr;
    if (s0) {
      load_state(s0, E, D, 0, E, t.ds, Ep, Dp);  // (Dp, Ep)
      transpose(Dp, Ep, t.ds, Ep, hs.st, Dp);     // (Ep, Dp)
    }
    std::fill(hs.sc, hs.sc + (int64_t)Ep * Dp, 0.0f);
    heads.push_back(hs);
  }
  for (int64_t n0 = 0; n0 < r.len; n0 += C)
    for (HeadScan& hs : heads) pass1_block(p, r, n0, hs, t);
}

// Pass 2 for heads [h0, h0 + G) of sequence `seq`, block by block, backward in time.
void pass2_dkdv(const AttnBackwardParams& p, int64_t seq, int64_t h0, int64_t G, Pass2Tiles& t) {
  const int D = (int)p.shape.dim_qk, E = (int)p.shape.dim_v;
  const int Dp = (int)round_up(D, 16), Ep = (int)round_up(E, 16);
  const SeqRange r = seq_range(p.shape, p.cu_seqlens, seq);
  std::vector<HeadScan> heads;
  heads.reserve(G);
  for (int64_t j = 0; j < G; ++j) {
    HeadScan hs = head_scan(p, r, seq, h0 + j);
    hs.st = t.r[j], hs.rt = t.rt[j], hs.sc = t.rc[j];
    const float* dsf = state_ptr(p.d_final_state, hs.state_off);
    hs.zero = dsf == nullptr;
    load_state(dsf, E, D, 0, E, hs.st, Ep, Dp);       // (Dp, Ep)
    if (dsf) transpose(Dp, Ep, hs.st, Ep, hs.rt, Dp);  // (Ep, Dp)
    std::fill(hs.sc, hs.sc + (int64_t)Dp * Ep, 0.0f);
    heads.push_back(hs);
  }
  for (int64_t blk = ceil_div(r.len, C) - 1; blk >= 0; --blk)
    for (HeadScan& hs : heads) pass2_block(p, r, blk * C, hs, t);
  if (p.d_initial_state)
    for (const HeadScan& hs : heads)
      store_state(hs.st, Ep, D, static_cast<float*>(p.d_initial_state) + hs.state_off, E, 0, E);
}

}  // namespace

void attention_backward(const AttnBackwardParams& p) {
  const AttnShape& sh = p.shape;
  const int64_t nseq = attn::num_sequences(sh, p.cu_seqlens, p.num_seqs);
  const int64_t H = sh.heads;
  const int64_t Dp = round_up(sh.dim_qk, 16), Ep = round_up(sh.dim_v, 16);
  int threads = resolve_threads(p.num_threads);
  // Two tasks (the passes, pass 2 the heavier) per (sequence, head group): at least two per
  // thread, so that pass-1 tasks fill in behind the heavier pass-2 ones.
  const int64_t G = choose_head_group(2 * nseq, H, 2 * threads, threads, Dp, Ep);
  const int64_t pairs = nseq * (H / G), total = 2 * pairs;
  threads = (int)std::max<int64_t>(1, std::min<int64_t>(threads, total));

#pragma omp parallel num_threads(threads)
  {
    Scratch& scratch =
        Scratch::local((size_t)(Pass1Tiles::floats(Dp, Ep, G) + Pass2Tiles::floats(Dp, Ep, G)));
    Pass2Tiles t2(scratch, Dp, Ep, G);
    Pass1Tiles t1(scratch, Dp, Ep, G);
    // The heavier pass-2 tasks first, so that dynamic scheduling balances the tail.
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < total; ++i) {
      const int64_t j = i % pairs, seq = j / (H / G), h0 = j % (H / G) * G;
      if (i < pairs) pass2_dkdv(p, seq, h0, G, t2);
      else pass1_dq(p, seq, h0, G, t1);
    }
  }
}

}  // namespace tnl::cpu
