// transnormer_grad.cpp: see transnormer_grad.h. One template on the element type: float for
// training, double for the finite-difference tests (same code, attention through the fp64
// reference operator).
#include "train/transnormer_grad.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "model/layers_cpu.h"
#include "tnl/attention.h"
#include "tnl/error.h"
#include "train/layers_backward.h"

namespace tnl::train {
namespace {

// Sets the OpenMP thread count for the duration of a call (when n > 0).
class ThreadScope {
 public:
  explicit ThreadScope(int n) : old_(omp_get_max_threads()), set_(n > 0) {
    if (set_) omp_set_num_threads(n);
  }
  ~ThreadScope() {
    if (set_) omp_set_num_threads(old_);
  }
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int old_;
  bool set_;
};

// Pointers to one layer's tensors in a flat buffer (P = const T or T).
template <class P>
struct LayerPtrs {
  P *qkvu = nullptr, *out = nullptr, *theta = nullptr, *l1 = nullptr, *l2 = nullptr, *l3 = nullptr;
};

template <class P>
struct ModelPtrs {
  P* embed = nullptr;
  std::vector<LayerPtrs<P>> layers;
};

template <class P>
ModelPtrs<P> model_ptrs(const ParamSet& layout, P* base) {
  const model::Config& c = layout.config();
  auto at = [&](const std::string& name) { return base + layout.info(name).offset; };
  ModelPtrs<P> m;
  m.embed = at("model.embed_tokens.weight");
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerPtrs<P> L;
    L.qkvu = at(p + "token_mixer.qkvu_proj.weight");
    L.out = at(p + "token_mixer.out_proj.weight");
    if (c.use_lrpe[l]) L.theta = at(p + "token_mixer.lrpe.theta");
    L.l1 = at(p + "channel_mixer.l1.weight");
    L.l2 = at(p + "channel_mixer.l2.weight");
    L.l3 = at(p + "channel_mixer.l3.weight");
    m.layers.push_back(L);
  }
  return m;
}

// What one layer's backward needs from its forward (R = batch·seqlen rows).
template <class T>
struct Acts {
  std::vector<T> x1, r1;    // SRMS(h_in) (R, d), its 1/rms (R)
  std::vector<T> pre;       // x1·W_qkvuᵀ (R, 4·hid): [q | k | v | u] before SiLU
  std::vector<T> act;       // SiLU(q), SiLU(k) (R, 2·hid)
  std::vector<T> qe, ke;    // LRPE(q), LRPE(k) (R, H, 2·dh); LRPE layers only
  std::vector<T> on, r2;    // SRMS(attention output) over the hidden dim (R, hid), 1/rms (R)
  std::vector<T> gated;     // u ⊙ on (R, hid)
  std::vector<T> x2, r3;    // SRMS(h_mid) (R, d), (R)
  std::vector<T> a, b, ab;  // x2·W1ᵀ, x2·W2ᵀ, a ⊙ b (R, glu)
};

// Gradient scratch shared by the layers.
template <class T>
struct Scratch {
  std::vector<T> dx;            // (R, d)
  std::vector<T> dab, da, db;   // (R, glu)
  std::vector<T> dgated, don, dattn;  // (R, hid)
  std::vector<T> dqkvu;         // (R, 4·hid)
  std::vector<T> dqe, dke;      // (R, H, 2·dh)
};

// Every buffer of one call. Kept between calls on the calling thread (fp32): no allocation and
// no page faults per training step. Every element is written before it is read in each call.
template <class T>
struct Workspace {
  std::vector<T> h, xf, rf, dxf, logits, dh;  // (R, d), (R, d), (R), (R, d), (rows of a chunk, V), (R, d)
  std::vector<Acts<T>> acts;                  // per layer, or one reused (recompute, no gradient)
  std::vector<std::vector<T>> inputs;         // per layer input (R, d), recompute only
  Scratch<T> s;
};

Workspace<float>& thread_workspace() {
  static thread_local Workspace<float> ws;
  return ws;
}

template <class T>
class Runner {
 public:
  Runner(const model::Config& cfg, const ModelPtrs<const T>& w, int64_t batch, int64_t seqlen, int threads,
         Workspace<T>& ws)
      : c_(cfg), w_(w), B_(batch), N_(seqlen), R_(batch * seqlen), threads_(threads), ws_(ws) {
    positions_.resize(R_);
    for (int64_t r = 0; r < R_; ++r) positions_[r] = r % N_;
  }

  // Returns {Σ nats, count}; with g non-null adds loss_scale·d(mean)/dθ into g.
  std::pair<double, int64_t> run(const int32_t* ids, const int32_t* targets, const ModelPtrs<T>* g,
                                 double loss_scale, bool recompute) {
    const int64_t d = c_.d_model, L = c_.num_layers, V = c_.vocab_size;
    int64_t valid = 0;
    for (int64_t r = 0; r < R_; ++r) {
      TNL_ARG_CHECK(targets[r] >= -1 && targets[r] < V, "tnl::train", "targets", "target ", targets[r],
                    " at row ", r, " is neither -1 (ignored) nor a token id 0..", V - 1);
      valid += targets[r] >= 0;
    }
    const bool grad = g != nullptr && valid > 0 && loss_scale != 0.0;  // else nothing to add
    const T escale = (T)c_.embed_scale();
    std::vector<T>& h = ws_.h;  // (R, d)
    h.resize(R_ * d);
    ops::embed_forward(w_.embed, V, d, ids, R_, escale, h.data());
    const bool keep_all = grad && !recompute;
    std::vector<Acts<T>>& acts = ws_.acts;
    if ((int64_t)acts.size() < (keep_all ? L : 1)) acts.resize(keep_all ? L : 1);
    std::vector<std::vector<T>>& inputs = ws_.inputs;  // each (R, d)
    if (grad && recompute && (int64_t)inputs.size() < L) inputs.resize(L);
    for (int64_t l = 0; l < L; ++l) {
      if (grad && recompute) inputs[l] = h;
      layer_forward(l, h.data(), acts[keep_all ? l : 0]);
    }
    // Head and loss, in chunks of rows: logits (rc, V) = SRMS(h)·Eᵀ, then their gradient in place.
    std::vector<T>& xf = ws_.xf;
    std::vector<T>& rf = ws_.rf;
    std::vector<T>& dxf = ws_.dxf;
    xf.resize(R_ * d);
    rf.resize(R_);
    if (grad) dxf.resize(R_ * d);
    ops::srms_forward(h.data(), d, R_, d, xf.data(), d, rf.data());
    const int64_t rc = std::min(R_, std::max<int64_t>(16, (int64_t{1} << 23) / V));  // ≤ 32 MB of logits
    std::vector<T>& logits = ws_.logits;
    logits.resize(rc * V);
    const T gscale = grad ? (T)(loss_scale / (double)valid) : T(0);
    double total = 0;
    int64_t count = 0;
    for (int64_t r0 = 0; r0 < R_; r0 += rc) {
      const int64_t n = std::min(rc, R_ - r0);
      ops::linear_forward(xf.data() + r0 * d, n, d, w_.embed, V, logits.data());
      total += ops::cross_entropy(logits.data(), n, V, targets + r0, gscale, &count);
      if (grad) ops::linear_backward(logits.data(), xf.data() + r0 * d, n, d, w_.embed, V,
                                     dxf.data() + r0 * d, T(0), g->embed);
    }
    if (!grad) return {total, count};
    // Backward through the layers, last first; dh (R, d) is the gradient of h.
    std::vector<T>& dh = ws_.dh;
    dh.resize(R_ * d);
    ops::srms_backward(dxf.data(), d, xf.data(), d, rf.data(), R_, d, dh.data(), d, false);
    Scratch<T>& s = ws_.s;
    for (int64_t l = L - 1; l >= 0; --l) {
      if (recompute) layer_forward(l, inputs[l].data(), acts[0]);
      layer_backward(l, acts[keep_all ? l : 0], dh.data(), s, g->layers[l]);
    }
    ops::embed_backward(dh.data(), ids, R_, d, escale, g->embed);
    return {total, count};
  }

 private:
  const model::Config& c_;
  const ModelPtrs<const T>& w_;
  int64_t B_, N_, R_;
  int threads_;
  Workspace<T>& ws_;
  std::vector<int64_t> positions_;  // (R): r % seqlen

  static void attention_forward_t(AttnForwardParams& p) {
    if constexpr (std::is_same_v<T, double>) {
      p.dtype = DType::f64;
      reference::attention_forward(p);
    } else {
      attention_forward(p);
    }
  }
  static void attention_backward_t(AttnBackwardParams& p) {
    if constexpr (std::is_same_v<T, double>) {
      p.dtype = DType::f64;
      reference::attention_backward(p);
    } else {
      attention_backward(p);
    }
  }

  // h (R, d) ← the layer's output, from its input; fills A.
  void layer_forward(int64_t l, T* h, Acts<T>& A) {
    const LayerPtrs<const T>& W = w_.layers[l];
    const int64_t R = R_, d = c_.d_model, hid = c_.hidden_dim, H = c_.num_heads, dh = c_.head_dim();
    const int64_t g = c_.glu_dim;
    const bool lrpe = W.theta != nullptr;
    const int64_t D = lrpe ? 2 * dh : dh;
    A.x1.resize(R * d);
    A.r1.resize(R);
    A.pre.resize(R * 4 * hid);
    A.act.resize(R * 2 * hid);
    A.on.resize(R * hid);
    A.r2.resize(R);
    A.gated.resize(R * hid);
    ops::srms_forward(h, d, R, d, A.x1.data(), d, A.r1.data());
    ops::linear_forward(A.x1.data(), R, d, W.qkvu, 4 * hid, A.pre.data());
    ops::silu_forward(A.pre.data(), 4 * hid, R, 2 * hid, A.act.data(), 2 * hid);
    const T* q = A.act.data();
    const T* k = A.act.data() + hid;
    int64_t ld_qk = 2 * hid;
    if (lrpe) {
      A.qe.resize(R * H * D);
      A.ke.resize(R * H * D);
      model::cpu::lrpe(A.act.data(), R, H, dh, 2 * hid, W.theta, positions_.data(), A.qe.data());
      model::cpu::lrpe(A.act.data() + hid, R, H, dh, 2 * hid, W.theta, positions_.data(), A.ke.data());
      q = A.qe.data();
      k = A.ke.data();
      ld_qk = H * D;
    }
    const std::vector<float> slopes = slopes_transnormer(H, l, c_.num_layers);
    AttnForwardParams p;
    p.shape = {B_, N_, H, D, dh};
    p.q = ConstSeqTensor(q, N_ * ld_qk, ld_qk, D);
    p.k = ConstSeqTensor(k, N_ * ld_qk, ld_qk, D);
    p.v = ConstSeqTensor(A.pre.data() + 2 * hid, N_ * 4 * hid, 4 * hid, dh);
    p.o = SeqTensor(A.on.data(), N_ * hid, hid, dh);
    p.slopes = slopes.data();
    p.num_threads = threads_;
    attention_forward_t(p);
    ops::srms_forward(A.on.data(), hid, R, hid, A.on.data(), hid, A.r2.data());  // all heads jointly
    ops::mul_forward(A.pre.data() + 3 * hid, 4 * hid, A.on.data(), hid, R, hid, A.gated.data(), hid);
    ops::linear_forward(A.gated.data(), R, hid, W.out, d, h, T(1));  // h_mid = h_in + gated·W_outᵀ
    // Channel mixer: h_out = h_mid + ((x2·W1ᵀ) ⊙ (x2·W2ᵀ))·W3ᵀ.
    A.x2.resize(R * d);
    A.r3.resize(R);
    A.a.resize(R * g);
    A.b.resize(R * g);
    A.ab.resize(R * g);
    ops::srms_forward(h, d, R, d, A.x2.data(), d, A.r3.data());
    ops::linear_forward(A.x2.data(), R, d, W.l1, g, A.a.data());
    ops::linear_forward(A.x2.data(), R, d, W.l2, g, A.b.data());
    ops::mul_forward(A.a.data(), g, A.b.data(), g, R, g, A.ab.data(), g);
    ops::linear_forward(A.ab.data(), R, g, W.l3, d, h, T(1));
  }

  // dh (R, d): gradient of the layer's output in, of its input out; weight gradients added to G.
  void layer_backward(int64_t l, const Acts<T>& A, T* dh, Scratch<T>& s, const LayerPtrs<T>& G) {
    const LayerPtrs<const T>& W = w_.layers[l];
    const int64_t R = R_, d = c_.d_model, hid = c_.hidden_dim, H = c_.num_heads, dh_ = c_.head_dim();
    const int64_t g = c_.glu_dim;
    const bool lrpe = W.theta != nullptr;
    const int64_t D = lrpe ? 2 * dh_ : dh_;
    s.dx.resize(R * d);
    s.dab.resize(R * g);
    s.da.resize(R * g);
    s.db.resize(R * g);
    s.dgated.resize(R * hid);
    s.don.resize(R * hid);
    s.dattn.resize(R * hid);
    s.dqkvu.resize(R * 4 * hid);
    // Channel mixer.
    ops::linear_backward(dh, A.ab.data(), R, g, W.l3, d, s.dab.data(), T(0), G.l3);
    ops::mul_backward(s.dab.data(), g, A.a.data(), g, A.b.data(), g, R, g, s.da.data(), g, s.db.data(), g);
    ops::linear_backward(s.da.data(), A.x2.data(), R, d, W.l1, g, s.dx.data(), T(0), G.l1);
    ops::linear_backward(s.db.data(), A.x2.data(), R, d, W.l2, g, s.dx.data(), T(1), G.l2);
    ops::srms_backward(s.dx.data(), d, A.x2.data(), d, A.r3.data(), R, d, dh, d, true);  // residual
    // Token mixer: out projection, gate, SRMS over the hidden dim.
    T* dq = s.dqkvu.data();
    T* dk = s.dqkvu.data() + hid;
    T* dv = s.dqkvu.data() + 2 * hid;
    T* du = s.dqkvu.data() + 3 * hid;
    ops::linear_backward(dh, A.gated.data(), R, hid, W.out, d, s.dgated.data(), T(0), G.out);
    ops::mul_backward(s.dgated.data(), hid, A.pre.data() + 3 * hid, 4 * hid, A.on.data(), hid, R, hid, du,
                      4 * hid, s.don.data(), hid);
    ops::srms_backward(s.don.data(), hid, A.on.data(), hid, A.r2.data(), R, hid, s.dattn.data(), hid, false);
    // Lightning attention: dq, dk straight into dqkvu (or into the LRPE-expanded buffers), dv too.
    const T* q = A.act.data();
    const T* k = A.act.data() + hid;
    int64_t ld_qk = 2 * hid, ld_dqk = 4 * hid;
    T* dqa = dq;
    T* dka = dk;
    if (lrpe) {
      s.dqe.resize(R * H * D);
      s.dke.resize(R * H * D);
      q = A.qe.data();
      k = A.ke.data();
      ld_qk = ld_dqk = H * D;
      dqa = s.dqe.data();
      dka = s.dke.data();
    }
    const std::vector<float> slopes = slopes_transnormer(H, l, c_.num_layers);
    AttnBackwardParams p;
    p.shape = {B_, N_, H, D, dh_};
    p.q = ConstSeqTensor(q, N_ * ld_qk, ld_qk, D);
    p.k = ConstSeqTensor(k, N_ * ld_qk, ld_qk, D);
    p.v = ConstSeqTensor(A.pre.data() + 2 * hid, N_ * 4 * hid, 4 * hid, dh_);
    p.d_o = ConstSeqTensor(s.dattn.data(), N_ * hid, hid, dh_);
    p.dq = SeqTensor(dqa, N_ * ld_dqk, ld_dqk, D);
    p.dk = SeqTensor(dka, N_ * ld_dqk, ld_dqk, D);
    p.dv = SeqTensor(dv, N_ * 4 * hid, 4 * hid, dh_);
    p.slopes = slopes.data();
    p.num_threads = threads_;
    attention_backward_t(p);
    if (lrpe) {
      ops::lrpe_backward(s.dqe.data(), A.act.data(), 2 * hid, R, H, dh_, W.theta, positions_.data(), dq,
                         4 * hid, G.theta);
      ops::lrpe_backward(s.dke.data(), A.act.data() + hid, 2 * hid, R, H, dh_, W.theta, positions_.data(),
                         dk, 4 * hid, G.theta);
    }
    ops::silu_backward(A.pre.data(), 4 * hid, R, 2 * hid, s.dqkvu.data(), 4 * hid);  // q, k
    ops::linear_backward(s.dqkvu.data(), A.x1.data(), R, d, W.qkvu, 4 * hid, s.dx.data(), T(0), G.qkvu);
    ops::srms_backward(s.dx.data(), d, A.x1.data(), d, A.r1.data(), R, d, dh, d, true);  // residual
  }
};

void check_shape(const char* fn, int64_t batch, int64_t seqlen) {
  TNL_ARG_CHECK(batch >= 1 && seqlen >= 1, fn, "ids", "expected batch >= 1 and seqlen >= 1, got ", batch,
                " x ", seqlen);
}

}  // namespace

double loss_and_grad(const ParamSet& p, const int32_t* ids, const int32_t* targets, int64_t batch,
                     int64_t seqlen, float* grads, const GradOptions& opt) {
  check_shape("tnl::train::loss_and_grad", batch, seqlen);
  TNL_ARG_CHECK(grads != nullptr, "tnl::train::loss_and_grad", "grads", "expected a buffer of ", p.size(),
                " floats, got null");
  ThreadScope threads(opt.num_threads);
  const ModelPtrs<const float> w = model_ptrs<const float>(p, p.data());
  const ModelPtrs<float> g = model_ptrs<float>(p, grads);
  Runner<float> run(p.config(), w, batch, seqlen, opt.num_threads, thread_workspace());
  const auto [total, count] = run.run(ids, targets, &g, opt.loss_scale, opt.recompute);
  return count > 0 ? total / (double)count : 0.0;
}

std::pair<double, int64_t> loss_sum(const ParamSet& p, const int32_t* ids, const int32_t* targets,
                                    int64_t batch, int64_t seqlen, int num_threads) {
  check_shape("tnl::train::loss_sum", batch, seqlen);
  ThreadScope threads(num_threads);
  const ModelPtrs<const float> w = model_ptrs<const float>(p, p.data());
  Runner<float> run(p.config(), w, batch, seqlen, num_threads, thread_workspace());
  return run.run(ids, targets, nullptr, 0.0, false);
}

void release_workspace() { thread_workspace() = Workspace<float>{}; }

double loss_and_grad_f64(const ParamSet& layout, const double* params, const int32_t* ids,
                         const int32_t* targets, int64_t batch, int64_t seqlen, double* grads,
                         const GradOptions& opt) {
  check_shape("tnl::train::loss_and_grad_f64", batch, seqlen);
  ThreadScope threads(opt.num_threads);
  const ModelPtrs<const double> w = model_ptrs<const double>(layout, params);
  const ModelPtrs<double> g = grads ? model_ptrs<double>(layout, grads) : ModelPtrs<double>{};
  Workspace<double> ws;
  Runner<double> run(layout.config(), w, batch, seqlen, opt.num_threads, ws);
  const auto [total, count] = run.run(ids, targets, grads ? &g : nullptr, opt.loss_scale, opt.recompute);
  return count > 0 ? total / (double)count : 0.0;
}

}  // namespace tnl::train
