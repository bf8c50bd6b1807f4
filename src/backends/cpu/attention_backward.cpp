// attention_backward.cpp: the tiled backward pass on the CPU (spec §1-2), as two independent
// scans per (sequence, head), each a task of its own:
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
  float* st;  // (Ep, Dp) Sᵀ
  float* ds;  // (Ep, Dp) the block's contribution to Sᵀ; (Dp, Ep) S0 before its transpose
  float* sc;  // (Ep, Dp) compensation of Sᵀ's running sum
  Prefetcher pf;

  static int64_t floats(int64_t Dp, int64_t Ep) {
    return 2 * C * Ep + Ep * C + 2 * C * Dp + C * C + 3 * Dp * Ep + 16 * 9;
  }
  Pass1Tiles(Scratch& m, int64_t Dp, int64_t Ep)
      : g(m.take(C * Ep)), v(m.take(C * Ep)), vt(m.take(Ep * C)), k(m.take(C * Dp)),
        p(m.take(C * C)), dq(m.take(C * Dp)), st(m.take(Ep * Dp)), ds(m.take(Dp * Ep)),
        sc(m.take(Ep * Dp)) {}
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
  float* r;   // (Dp, Ep) R
  float* rt;  // (Ep, Dp) Rᵀ
  float* dr;  // (Dp, Ep) the block's contribution to R
  float* rc;  // (Dp, Ep) compensation of R's running sum
  Prefetcher pf;

  static int64_t floats(int64_t Dp, int64_t Ep) {
    return 3 * C * Dp + Dp * C + 4 * C * Ep + Ep * C + 2 * C * C + 4 * Dp * Ep + 16 * 14;
  }
  Pass2Tiles(Scratch& m, int64_t Dp, int64_t Ep)
      : q(m.take(C * Dp)), k(m.take(C * Dp)), kt(m.take(Dp * C)), v(m.take(C * Ep)),
        vt(m.take(Ep * C)), g(m.take(C * Ep)), a(m.take(C * C)), p(m.take(C * C)),
        dk(m.take(C * Dp)), dv(m.take(C * Ep)), r(m.take(Dp * Ep)), rt(m.take(Ep * Dp)),
        dr(m.take(Dp * Ep)), rc(m.take(Dp * Ep)) {}
};

// Everything a task needs about its (sequence, head).
struct Task {
  SeqRange r;
  int64_t h;
  int64_t state_off;  // of (seq, h) in the (S, H, D, E) states
  int D, E, Dp, Ep;
};

Task make_task(const AttnBackwardParams& p, int64_t seq, int64_t h) {
  const AttnShape& sh = p.shape;
  Task t;
  t.r = seq_range(sh, p.cu_seqlens, seq);
  t.h = h;
  t.D = (int)sh.dim_qk;
  t.E = (int)sh.dim_v;
  t.Dp = (int)round_up(t.D, 16);
  t.Ep = (int)round_up(t.E, 16);
  t.state_off = (seq * sh.heads + h) * t.D * t.E;
  return t;
}

const float* state_ptr(const void* base, int64_t off) {
  return base ? static_cast<const float*>(base) + off : nullptr;
}

void pass1_dq(const AttnBackwardParams& p, const Task& tk, Pass1Tiles& t) {
  const DType dt = p.dtype;
  const int D = tk.D, E = tk.E, Dp = tk.Dp, Ep = tk.Ep;
  const DecayTable dec(p.slopes[tk.h]);
  const RowView kv = row_view(p.k, dt, tk.r, tk.h), vv = row_view(p.v, dt, tk.r, tk.h),
                gv = row_view(p.d_o, dt, tk.r, tk.h), dqv = row_view(p.dq, dt, tk.r, tk.h);
  const int64_t es = dtype_size(dt);
  const float* s0 = state_ptr(p.initial_state, tk.state_off);
  bool s_zero = s0 == nullptr;
  if (!s_zero) {
    load_state(s0, E, D, 0, E, t.ds, Ep, Dp);  // (Dp, Ep)
    transpose(Dp, Ep, t.ds, Ep, t.st, Dp);     // (Ep, Dp)
  }
  std::fill(t.sc, t.sc + (int64_t)Ep * Dp, 0.0f);
  for (int64_t n0 = 0; n0 < tk.r.len; n0 += C) {
    const int l = (int)std::min<int64_t>(C, tk.r.len - n0);
    const int l8 = (int)round_up(l, kMR), l16 = (int)round_up(l, 16);
    t.pf.clear();  // the next block's rows, fetched while this one computes
    if (n0 + C < tk.r.len) {
      const int ln = (int)std::min<int64_t>(C, tk.r.len - n0 - C);
      t.pf.add_rows(gv, n0 + C, ln, 0, E * es, false);
      t.pf.add_rows(vv, n0 + C, ln, 0, E * es, false);
      t.pf.add_rows(kv, n0 + C, ln, 0, D * es, false);
      t.pf.add_rows(dqv, n0 + C, ln, 0, D * es, true);
      t.pf.plan(3 * l8 / kMR + Ep / kMR);
    }
    pack_rows(gv, dt, n0, l, 0, E, t.g, Ep, l8);   // (l8, Ep)
    pack_rows(vv, dt, n0, l, 0, E, t.v, Ep, l16);  // (l16, Ep)
    pack_rows(kv, dt, n0, l, 0, D, t.k, Dp, l8);   // (l8, Dp)
    transpose(l16, Ep, t.v, Ep, t.vt, C);           // (Ep, l16)

    // P = c·(dO Vᵀ) ⊙ M                                            // (l8, l16)
    gemm<false>(l8, l16, E, t.g, Ep, t.vt, C, t.p, C, 0.0f, Tri::lower, Tri::none, &t.pf);
    apply_decay_mask(t.p, C, l, p.scale, dec);
    // dQ = c·diag(λ^{a+1}) dO Sᵀ + P K                               // (l8, Dp)
    if (!s_zero) {
      scale_rows(l8, Ep, t.g, Ep, dec.pw + 1, p.scale, t.g, Ep);
      gemm<false>(l8, Dp, E, t.g, Ep, t.st, Dp, t.dq, Dp, 0.0f, Tri::none, Tri::none, &t.pf);
    }
    gemm<false>(l8, Dp, l, t.p, C, t.k, Dp, t.dq, Dp, s_zero ? 0.0f : 1.0f, Tri::none, Tri::lower,
                &t.pf);
    store_rows(t.dq, Dp, l, D, 1.0f, p.dq, dt, tk.r, tk.h, n0, 0);
    // Sᵀ ← λ^l Sᵀ + Vᵀ diag(λ^{l-1-b}) K                            // (Ep, Dp)
    scale_cols(Ep, l16, t.vt, C, dec.rev + (C - l), 1.0f, t.vt, C);
    gemm<false>(Ep, Dp, l, t.vt, C, t.k, Dp, s_zero ? t.st : t.ds, Dp, 0.0f, Tri::none, Tri::none,
                &t.pf);
    if (!s_zero) accumulate_state(E, Dp, t.st, t.sc, t.ds, Dp, dec.pw[l]);
    s_zero = false;
  }
}

void pass2_dkdv(const AttnBackwardParams& p, const Task& tk, Pass2Tiles& t) {
  const DType dt = p.dtype;
  const int D = tk.D, E = tk.E, Dp = tk.Dp, Ep = tk.Ep;
  const DecayTable dec(p.slopes[tk.h]);
  const RowView qv = row_view(p.q, dt, tk.r, tk.h), kv = row_view(p.k, dt, tk.r, tk.h),
                vv = row_view(p.v, dt, tk.r, tk.h), gv = row_view(p.d_o, dt, tk.r, tk.h),
                dkv = row_view(p.dk, dt, tk.r, tk.h), dvv = row_view(p.dv, dt, tk.r, tk.h);
  const int64_t es = dtype_size(dt);
  const float* dsf = state_ptr(p.d_final_state, tk.state_off);
  load_state(dsf, E, D, 0, E, t.r, Ep, Dp);  // (Dp, Ep)
  bool r_zero = dsf == nullptr;
  if (!r_zero) transpose(Dp, Ep, t.r, Ep, t.rt, Dp);  // (Ep, Dp)
  std::fill(t.rc, t.rc + (int64_t)Dp * Ep, 0.0f);

  for (int64_t blk = ceil_div(tk.r.len, C) - 1; blk >= 0; --blk) {
    const int64_t n0 = blk * C;
    const int l = (int)std::min<int64_t>(C, tk.r.len - n0);
    const int l8 = (int)round_up(l, kMR), l16 = (int)round_up(l, 16);
    t.pf.clear();  // the previous block's rows (a full block), fetched while this one computes
    if (blk > 0) {
      for (const RowView* in : {&qv, &kv}) t.pf.add_rows(*in, n0 - C, C, 0, D * es, false);
      for (const RowView* in : {&vv, &gv}) t.pf.add_rows(*in, n0 - C, C, 0, E * es, false);
      t.pf.add_rows(dkv, n0 - C, C, 0, D * es, true);
      t.pf.add_rows(dvv, n0 - C, C, 0, E * es, true);
      t.pf.plan(6 * l8 / kMR + Dp / kMR);
    }
    pack_rows(qv, dt, n0, l, 0, D, t.q, Dp, l8);   // (l8, Dp)
    pack_rows(kv, dt, n0, l, 0, D, t.k, Dp, l16);  // (l16, Dp)
    pack_rows(vv, dt, n0, l, 0, E, t.v, Ep, l16);  // (l16, Ep)
    pack_rows(gv, dt, n0, l, 0, E, t.g, Ep, l8);   // (l8, Ep)
    transpose(l16, Dp, t.k, Dp, t.kt, C);           // (Dp, l16)
    transpose(l16, Ep, t.v, Ep, t.vt, C);           // (Ep, l16)

    // Scores and their gradient counterpart, lower triangles, scaled by c      // (l8, l16)
    gemm<false>(l8, l16, D, t.q, Dp, t.kt, C, t.a, C, 0.0f, Tri::lower, Tri::none, &t.pf);
    apply_decay_mask(t.a, C, l, p.scale, dec);
    gemm<false>(l8, l16, E, t.g, Ep, t.vt, C, t.p, C, 0.0f, Tri::lower, Tri::none, &t.pf);
    apply_decay_mask(t.p, C, l, p.scale, dec);

    // dK = diag(λ^{l-1-b}) V Rᵀ + Pᵀ Q   (Pᵀ read in place: upper triangular)  // (l8, Dp)
    // dV = diag(λ^{l-1-b}) K R  + Aᵀ dO                                           // (l8, Ep)
    if (!r_zero) {
      scale_rows(l8, Ep, t.v, Ep, dec.rev + (C - l), 1.0f, t.v, Ep);
      scale_rows(l8, Dp, t.k, Dp, dec.rev + (C - l), 1.0f, t.k, Dp);
      gemm<false>(l8, Dp, E, t.v, Ep, t.rt, Dp, t.dk, Dp, 0.0f, Tri::none, Tri::none, &t.pf);
      gemm<false>(l8, Ep, D, t.k, Dp, t.r, Ep, t.dv, Ep, 0.0f, Tri::none, Tri::none, &t.pf);
    }
    const float beta = r_zero ? 0.0f : 1.0f;
    gemm<true>(l8, Dp, l, t.p, C, t.q, Dp, t.dk, Dp, beta, Tri::none, Tri::upper, &t.pf);
    gemm<true>(l8, Ep, l, t.a, C, t.g, Ep, t.dv, Ep, beta, Tri::none, Tri::upper, &t.pf);
    store_rows(t.dk, Dp, l, D, 1.0f, p.dk, dt, tk.r, tk.h, n0, 0);
    store_rows(t.dv, Ep, l, E, 1.0f, p.dv, dt, tk.r, tk.h, n0, 0);

    // R ← λ^l R + (c·diag(λ^{u+1}) Q)ᵀ dO, and its transpose for the next block  // (Dp, Ep)
    scale_rows(l, Dp, t.q, Dp, dec.pw + 1, p.scale, t.q, Dp);
    gemm<true>(Dp, Ep, l, t.q, Dp, t.g, Ep, r_zero ? t.r : t.dr, Ep, 0.0f, Tri::none, Tri::none,
               &t.pf);
    if (!r_zero) accumulate_state(D, Ep, t.r, t.rc, t.dr, Ep, dec.pw[l]);
    transpose(Dp, Ep, t.r, Ep, t.rt, Dp);
    r_zero = false;
  }
  if (p.d_initial_state)
    store_state(t.r, Ep, D, static_cast<float*>(p.d_initial_state) + tk.state_off, E, 0, E);
}

}  // namespace

void attention_backward(const AttnBackwardParams& p) {
  const AttnShape& sh = p.shape;
  const int64_t nseq = attn::num_sequences(sh, p.cu_seqlens, p.num_seqs);
  const int64_t H = sh.heads;
  const int64_t Dp = round_up(sh.dim_qk, 16), Ep = round_up(sh.dim_v, 16);
  const int64_t pairs = nseq * H, total = 2 * pairs;
  const int threads =
      (int)std::max<int64_t>(1, std::min<int64_t>(resolve_threads(p.num_threads), total));

#pragma omp parallel num_threads(threads)
  {
    Scratch scratch((size_t)(Pass1Tiles::floats(Dp, Ep) + Pass2Tiles::floats(Dp, Ep)));
    Pass2Tiles t2(scratch, Dp, Ep);
    Pass1Tiles t1(scratch, Dp, Ep);
    // The heavier pass-2 tasks first, so that dynamic scheduling balances the tail.
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < total; ++i) {
      const int64_t j = i % pairs;
      const Task tk = make_task(p, j / H, j % H);
      if (i < pairs) pass2_dkdv(p, tk, t2);
      else pass1_dq(p, tk, t1);
    }
  }
}

}  // namespace tnl::cpu
