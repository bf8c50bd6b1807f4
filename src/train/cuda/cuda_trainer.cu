// cuda_trainer.cu: see cuda_trainer.h. The layer stack mirrors train/transnormer_grad.cpp:
//   h (R, d) fp32 = e·E[ids]                                   (E: the fp32 master embedding)
//   per layer: x1 = bf16(SRMS(h)); pre = bf16(x1·W_qkvuᵀ) (R, 4·hid) = [q | k | v | u];
//              q, k = bf16(LRPE(SiLU(·))); o = LightningAttention(q, k, v) bf16 (v read in place);
//              h += bf16(SRMS(o) ⊙ u)·W_outᵀ;  x2 = bf16(SRMS(h)); ab = bf16(x2·W12ᵀ) (W12 = [W1; W2],
//              adjacent in the ParamSet); h += bf16(a ⊙ b)·W3ᵀ
//   logits = bf16(SRMS(h))·Eᵀ (fp32), in chunks of rows, each followed by its cross-entropy and,
//   for the gradient, dE += dlogitsᵀ·x and dx = dlogits·E before the next chunk overwrites it.
// The backward recomputes the cheap element-wise products (q, k, the gated input of W_out, the GLU
// product) from the saved bf16 tensors instead of storing them. GEMMs: cuBLAS, bf16 operands,
// fp32 accumulation, outputs fp32 (residual stream, gradients of the weights, added with beta 1)
// or bf16 (activations that only feed element-wise kernels and GEMMs).
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "tnl/attention.h"
#include "tnl/device.h"
#include "tnl/error.h"
#include "model/cuda/cuda_common.cuh"
#include "train/cuda/cuda_trainer.h"
#include "train/cuda/train_kernels.h"


namespace tnl::train {
using cuda::bf16;
using cuda_common::DevMem;

namespace {


// Carves typed arrays out of one allocation (256-byte aligned): plan with add(), then place().
class Carver {
 public:
  template <class T>
  void add(T** slot, int64_t count) {
    items_.push_back({reinterpret_cast<void**>(slot), (size_t)std::max<int64_t>(count, 0) * sizeof(T)});
  }
  size_t bytes() const {
    size_t t = 0;
    for (const Item& i : items_) t += (i.bytes + 255) / 256 * 256;
    return t;
  }
  void place(char* base) const {
    for (const Item& i : items_) {
      *i.slot = base;
      base += (i.bytes + 255) / 256 * 256;
    }
  }

 private:
  struct Item {
    void** slot;
    size_t bytes;
  };
  std::vector<Item> items_;
};

// What one layer's backward needs from its forward (R rows).
struct Acts {
  bf16 *x1 = nullptr, *pre = nullptr, *o = nullptr, *x2 = nullptr, *ab = nullptr;  // (R, d|4·hid|hid|d|2g)
  float *r1 = nullptr, *r2 = nullptr, *r3 = nullptr;                                // (R)
};

// Offsets (floats) of one layer's tensors in the flat buffer; theta −1 without LRPE.
struct LayerOffsets {
  int64_t qkvu = 0, out = 0, theta = -1, l12 = 0, l3 = 0;
};

constexpr int64_t kThetaChunks = 256;  // row chunks of the dθ reduction

}  // namespace

struct CudaTrainer::Impl {
  model::Config cfg;
  AdamWConfig adamw;
  int device = 0;
  int64_t P = 0;  // floats in the flat buffer
  int64_t embed_off = 0;
  std::vector<LayerOffsets> layers;
  std::vector<std::vector<float>> slopes;  // per layer (H), host
  std::vector<ParamRange> decay_runs;      // maximal runs of equal weight_decay, in order
  int64_t step = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  DevMem blas_ws;
  DevMem master, grads, m, v, norm_partial;  // fp32 (P) ×4, fp64 partial sums
  DevMem w16;                                // bf16 (P)
  size_t peak = 0;

  // Per-call buffers, sized for cap_rows rows and cap_acts activation sets.
  DevMem scratch_mem, acts_mem, inputs_mem;
  int64_t cap_rows = 0, cap_acts = 0, cap_inputs = 0;
  // The attention forward's segment starts, one slot of starts_slot bytes per activation set
  // (acts): the backward's dq scan starts from them (tnl::attention_segment_starts_bytes; 0 when
  // this call's attention does not split into segments).
  DevMem starts_mem;
  size_t starts_slot = 0;
  std::vector<Acts> acts;
  float* inputs = nullptr;  // (L, R, d) fp32, recompute only
  struct Scratch {
    int32_t *ids = nullptr, *targets = nullptr, *order = nullptr, *seg = nullptr, *uid = nullptr;
    float *nll = nullptr, *h = nullptr, *dh = nullptr, *fbuf = nullptr, *rf = nullptr, *dxf = nullptr;
    float *theta_partial = nullptr, *logits = nullptr;
    bf16 *q = nullptr, *k = nullptr, *dqe = nullptr, *dke = nullptr, *p16 = nullptr, *dh16 = nullptr;
    bf16 *dab = nullptr, *dpre = nullptr, *dattn = nullptr, *xf = nullptr, *dlogits = nullptr;
  } s;
  int64_t chunk_rows = 0;  // rows of logits per head chunk

  Impl(const ParamSet& p, AdamWConfig a, int dev) : cfg(p.config()), adamw(a), device(dev), P(p.size()) {
    validate(adamw);
    const int n = cuda_device_count();
    if (!cuda_built()) throw Error("tnl::train::CudaTrainer: this build of tnl has no CUDA backend");
    TNL_ARG_CHECK(n > 0, "tnl::train::CudaTrainer", "device", "cuda requested, but no CUDA device is visible");
    TNL_ARG_CHECK(dev >= 0 && dev < n, "tnl::train::CudaTrainer", "device", "expected 0..", n - 1, ", got ", dev);
    TNL_CUDA_CHECK(cudaSetDevice(dev));
    const int64_t d = cfg.d_model, g = cfg.glu_dim;
    embed_off = p.info("model.embed_tokens.weight").offset;
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const std::string pre = "model.layers." + std::to_string(l) + ".";
      LayerOffsets L;
      L.qkvu = p.info(pre + "token_mixer.qkvu_proj.weight").offset;
      L.out = p.info(pre + "token_mixer.out_proj.weight").offset;
      if (cfg.use_lrpe[l]) L.theta = p.info(pre + "token_mixer.lrpe.theta").offset;
      L.l12 = p.info(pre + "channel_mixer.l1.weight").offset;
      TNL_CHECK(p.info(pre + "channel_mixer.l2.weight").offset == L.l12 + g * d,
                "tnl::train::CudaTrainer: l1 and l2 are expected adjacent in the ParamSet layout");
      L.l3 = p.info(pre + "channel_mixer.l3.weight").offset;
      layers.push_back(L);
      slopes.push_back(slopes_transnormer(cfg.num_heads, l, cfg.num_layers));
    }
    std::vector<ParamRange> ranges;
    for (const ParamInfo& i : p.infos()) ranges.push_back({i.offset, i.numel, i.weight_decay});
    std::sort(ranges.begin(), ranges.end(), [](const ParamRange& x, const ParamRange& y) { return x.offset < y.offset; });
    for (const ParamRange& r : ranges) {
      if (!decay_runs.empty() && decay_runs.back().weight_decay == r.weight_decay &&
          decay_runs.back().offset + decay_runs.back().numel == r.offset)
        decay_runs.back().numel += r.numel;
      else
        decay_runs.push_back(r);
    }
    TNL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    TNL_CUBLAS_CHECK(cublasCreate(&blas));
    TNL_CUBLAS_CHECK(cublasSetStream(blas, stream));
    blas_ws.ensure(size_t(32) << 20);
    TNL_CUBLAS_CHECK(cublasSetWorkspace(blas, blas_ws.as<void>(), size_t(32) << 20));
    const size_t bytes = sizeof(float) * (size_t)P;
    master.ensure(bytes);
    grads.ensure(bytes);
    m.ensure(bytes);
    v.ensure(bytes);
    w16.ensure(sizeof(bf16) * (size_t)P);
    norm_partial.ensure(sizeof(double) * (size_t)((P + cuda::kNormBlock - 1) / cuda::kNormBlock + 1));
    TNL_CUDA_CHECK(cudaMemsetAsync(grads.as<void>(), 0, bytes, stream));
    TNL_CUDA_CHECK(cudaMemsetAsync(m.as<void>(), 0, bytes, stream));
    TNL_CUDA_CHECK(cudaMemsetAsync(v.as<void>(), 0, bytes, stream));
    upload(p);
  }
  ~Impl() {
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }

  void sync() { TNL_CUDA_CHECK(cudaStreamSynchronize(stream)); }
  size_t in_use() const {
    size_t free_b = 0, total = 0;
    TNL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    return total - free_b;
  }
  void note_memory() { peak = std::max(peak, in_use()); }

  void check_layout(const ParamSet& p, const char* fn) const {
    TNL_ARG_CHECK(p.size() == P && p.config().d_model == cfg.d_model && p.config().num_layers == cfg.num_layers &&
                      p.config().vocab_size == cfg.vocab_size,
                  fn, "params", "expected a ParamSet of this trainer's config (", P, " floats), got ", p.size());
  }
  void upload(const ParamSet& p) {
    check_layout(p, "tnl::train::CudaTrainer::upload");
    TNL_CUDA_CHECK(cudaMemcpyAsync(master.as<float>(), p.data(), sizeof(float) * P, cudaMemcpyHostToDevice, stream));
    cuda::to_bf16(master.as<float>(), P, w16.as<bf16>(), stream);
    sync();
  }

  const bf16* W(int64_t off) const { return w16.as<bf16>() + off; }
  float* G(int64_t off) const { return grads.as<float>() + off; }

  // ---- GEMMs (row-major views of cuBLAS's column-major calls) ----
  // y (M, N) = x (M, K)·Wᵀ + beta·y, W (N, K); y fp32 or bf16.
  void gemm_xwT(const bf16* x, int64_t M, int64_t K, const bf16* w, int64_t N, void* y, bool y_bf16, float beta) {
    const float one = 1.0f;
    TNL_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, w, CUDA_R_16BF,
                                  (int)K, x, CUDA_R_16BF, (int)K, &beta, y, y_bf16 ? CUDA_R_16BF : CUDA_R_32F,
                                  (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  // dx (M, K) fp32 = dy (M, N)·W, W (N, K).
  void gemm_dyW(const bf16* dy, int64_t M, int64_t N, const bf16* w, int64_t K, float* dx) {
    const float one = 1.0f, zero = 0.0f;
    TNL_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)K, (int)M, (int)N, &one, w, CUDA_R_16BF,
                                  (int)K, dy, CUDA_R_16BF, (int)N, &zero, dx, CUDA_R_32F, (int)K,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  // dW (N, K) fp32 += dyᵀ·x, dy (M, N), x (M, K).
  void gemm_dW(const bf16* dy, int64_t M, int64_t N, const bf16* x, int64_t K, float* dw) {
    const float one = 1.0f;
    TNL_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)K, (int)N, (int)M, &one, x, CUDA_R_16BF,
                                  (int)K, dy, CUDA_R_16BF, (int)N, &one, dw, CUDA_R_32F, (int)K,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  // ---- buffers ----
  bool any_lrpe() const {
    for (int64_t l = 0; l < cfg.num_layers; ++l)
      if (cfg.use_lrpe[l]) return true;
    return false;
  }
  void prepare(int64_t R, int64_t nacts, bool keep_inputs) {
    const int64_t d = cfg.d_model, hid = cfg.hidden_dim, g = cfg.glu_dim, V = cfg.vocab_size, L = cfg.num_layers;
    const int64_t HD = any_lrpe() ? 2 * hid : hid;  // H·D at most
    if (R > cap_rows) {
      chunk_rows = std::min(R, std::max<int64_t>(16, (int64_t{1} << 28) / V));  // ≤ 1 GiB of fp32 logits
      Carver c;
      c.add(&s.ids, R);
      c.add(&s.targets, R);
      c.add(&s.order, R);
      c.add(&s.seg, R + 1);
      c.add(&s.uid, R);
      c.add(&s.nll, R);
      c.add(&s.h, R * d);
      c.add(&s.dh, R * d);
      c.add(&s.fbuf, R * std::max({d, hid, g}));
      c.add(&s.rf, R);
      c.add(&s.dxf, R * d);
      c.add(&s.theta_partial, kThetaChunks * hid);
      c.add(&s.logits, chunk_rows * V);
      c.add(&s.q, R * HD);
      c.add(&s.k, R * HD);
      c.add(&s.dqe, any_lrpe() ? R * HD : 0);
      c.add(&s.dke, any_lrpe() ? R * HD : 0);
      c.add(&s.p16, R * std::max(g, hid));
      c.add(&s.dh16, R * d);
      c.add(&s.dab, R * 2 * g);
      c.add(&s.dpre, R * 4 * hid);
      c.add(&s.dattn, R * hid);
      c.add(&s.xf, R * d);
      c.add(&s.dlogits, chunk_rows * V);
      scratch_mem.release();
      scratch_mem.ensure(c.bytes());
      c.place(scratch_mem.as<char>());
      cap_rows = R;
      cap_acts = 0;  // re-laid out for the new row count
      cap_inputs = 0;
    }
    if (nacts > cap_acts) {
      Carver c;
      acts.assign(nacts, Acts{});
      for (Acts& a : acts) {
        c.add(&a.x1, cap_rows * d);
        c.add(&a.pre, cap_rows * 4 * hid);
        c.add(&a.o, cap_rows * hid);
        c.add(&a.x2, cap_rows * d);
        c.add(&a.ab, cap_rows * 2 * g);
        c.add(&a.r1, cap_rows);
        c.add(&a.r2, cap_rows);
        c.add(&a.r3, cap_rows);
      }
      acts_mem.release();
      acts_mem.ensure(c.bytes());
      c.place(acts_mem.as<char>());
      cap_acts = nacts;
    }
    if (keep_inputs && cap_inputs < cap_rows) {
      inputs_mem.release();
      inputs_mem.ensure(sizeof(float) * (size_t)(L * cap_rows * d));
      inputs = inputs_mem.as<float>();
      cap_inputs = cap_rows;
    }
  }
  // Sizes the segment starts' slots for a call of B sequences of N tokens with nacts activation
  // sets (after prepare: the planning reads the scratch tensors' strides and alignment).
  void prepare_starts(int64_t B, int64_t N, int64_t nacts) {
    size_t need = 0;
    for (int64_t l = 0; l < cfg.num_layers; ++l)
      need = std::max(need, attention_segment_starts_bytes(attn_forward_params(l, B, N, acts[0], nullptr)));
    starts_slot = (need + 255) / 256 * 256;
    starts_mem.ensure(starts_slot * (size_t)nacts);
  }
  // The segment starts of activation set i, or null (no splitting, or no backward follows).
  void* starts_of(int64_t i) const {
    return starts_slot ? starts_mem.as<char>() + starts_slot * (size_t)i : nullptr;
  }

  void release() {
    scratch_mem.release();
    acts_mem.release();
    inputs_mem.release();
    starts_mem.release();
    starts_slot = 0;
    cap_rows = cap_acts = cap_inputs = 0;
    acts.clear();
    inputs = nullptr;
  }

  // ---- the model ----
  int64_t qk_dim(int64_t l) const { return cfg.use_lrpe[l] ? 2 * cfg.head_dim() : cfg.head_dim(); }

  // Layer l's attention forward: q, k (B, N, H, D) from the scratch, v a view of A.pre's
  // (R, 4·hid) columns, o (B, N, H, dh) into A.o; its segment starts in `starts` (a slot of
  // starts_slot bytes) or none.
  AttnForwardParams attn_forward_params(int64_t l, int64_t B, int64_t N, const Acts& A, void* starts) const {
    const int64_t hid = cfg.hidden_dim, H = cfg.num_heads, dh = cfg.head_dim(), D = qk_dim(l);
    AttnForwardParams p;
    p.dtype = DType::bf16;
    p.device = Device::cuda;
    p.shape = {B, N, H, D, dh};
    p.q = ConstSeqTensor(s.q, N * H * D, H * D, D);
    p.k = ConstSeqTensor(s.k, N * H * D, H * D, D);
    p.v = ConstSeqTensor(A.pre + 2 * hid, N * 4 * hid, 4 * hid, dh);
    p.o = SeqTensor(A.o, N * hid, hid, dh);
    p.slopes = slopes[l].data();
    p.stream = stream;
    p.segment_starts = starts;
    p.segment_starts_bytes = starts ? starts_slot : 0;
    return p;
  }

  // h (R, d) ← the layer's output, from its input; fills A (and `starts`, the attention's
  // segment starts, when not null).
  void layer_forward(int64_t l, int64_t B, int64_t N, float* h, const Acts& A, void* starts) {
    const LayerOffsets& Lo = layers[l];
    const int64_t R = B * N, d = cfg.d_model, hid = cfg.hidden_dim, g = cfg.glu_dim, H = cfg.num_heads;
    const int64_t dh = cfg.head_dim();
    const float* theta = Lo.theta >= 0 ? master.as<float>() + Lo.theta : nullptr;
    cuda::srms_forward(h, R, d, A.x1, A.r1, stream);
    gemm_xwT(A.x1, R, d, W(Lo.qkvu), 4 * hid, A.pre, true, 0.0f);
    cuda::qk_forward(A.pre, R, N, H, dh, theta, s.q, s.k, stream);
    attention_forward(attn_forward_params(l, B, N, A, starts));
    cuda::gate_forward(A.o, A.pre, R, hid, A.r2, true, s.p16, stream);
    gemm_xwT(s.p16, R, hid, W(Lo.out), d, h, false, 1.0f);
    cuda::srms_forward(h, R, d, A.x2, A.r3, stream);
    gemm_xwT(A.x2, R, d, W(Lo.l12), 2 * g, A.ab, true, 0.0f);
    cuda::glu_forward(A.ab, R, g, s.p16, stream);
    gemm_xwT(s.p16, R, g, W(Lo.l3), d, h, false, 1.0f);
  }

  // dh (R, d): gradient of the layer's output in, of its input out; weight gradients added.
  // starts: what layer_forward kept, or null.
  void layer_backward(int64_t l, int64_t B, int64_t N, const Acts& A, void* starts, float* dh) {
    const LayerOffsets& Lo = layers[l];
    const int64_t R = B * N, d = cfg.d_model, hid = cfg.hidden_dim, g = cfg.glu_dim, H = cfg.num_heads;
    const int64_t dh_ = cfg.head_dim(), D = qk_dim(l);
    const bool lrpe = Lo.theta >= 0;
    const float* theta = lrpe ? master.as<float>() + Lo.theta : nullptr;
    // Channel mixer.
    cuda::glu_forward(A.ab, R, g, s.p16, stream);
    cuda::to_bf16(dh, R * d, s.dh16, stream);
    gemm_dW(s.dh16, R, d, s.p16, g, G(Lo.l3));
    gemm_dyW(s.dh16, R, d, W(Lo.l3), g, s.fbuf);  // dp (R, g)
    cuda::glu_backward(s.fbuf, A.ab, R, g, s.dab, stream);
    gemm_dW(s.dab, R, 2 * g, A.x2, d, G(Lo.l12));
    gemm_dyW(s.dab, R, 2 * g, W(Lo.l12), d, s.fbuf);  // dx2 (R, d)
    cuda::srms_backward(s.fbuf, A.x2, A.r3, R, d, dh, true, stream);
    // Token mixer: out projection, gate, SRMS over the hidden dim.
    cuda::to_bf16(dh, R * d, s.dh16, stream);
    cuda::gate_forward(A.o, A.pre, R, hid, A.r2, false, s.p16, stream);  // the gated input again
    gemm_dW(s.dh16, R, d, s.p16, hid, G(Lo.out));
    gemm_dyW(s.dh16, R, d, W(Lo.out), hid, s.fbuf);  // dgated (R, hid)
    cuda::gate_backward(s.fbuf, A.o, A.r2, A.pre, R, hid, s.dpre, s.dattn, stream);
    // Lightning attention: dv straight into dpre, dq and dk too without LRPE.
    cuda::qk_forward(A.pre, R, N, H, dh_, theta, s.q, s.k, stream);
    // The forward's q, k, v (q, k recomputed into the scratch) and segment starts.
    AttnBackwardParams p = attention_backward_params(attn_forward_params(l, B, N, A, starts));
    p.d_o = ConstSeqTensor(s.dattn, N * hid, hid, dh_);
    if (lrpe) {
      p.dq = SeqTensor(s.dqe, N * H * D, H * D, D);
      p.dk = SeqTensor(s.dke, N * H * D, H * D, D);
    } else {
      p.dq = SeqTensor(s.dpre, N * 4 * hid, 4 * hid, dh_);
      p.dk = SeqTensor(s.dpre + hid, N * 4 * hid, 4 * hid, dh_);
    }
    p.dv = SeqTensor(s.dpre + 2 * hid, N * 4 * hid, 4 * hid, dh_);
    attention_backward(p);
    cuda::qk_backward(A.pre, R, N, H, dh_, theta, s.dqe, s.dke, s.dpre, s.theta_partial, kThetaChunks,
                      lrpe ? G(Lo.theta) : nullptr, stream);
    gemm_dW(s.dpre, R, 4 * hid, A.x1, d, G(Lo.qkvu));
    gemm_dyW(s.dpre, R, 4 * hid, W(Lo.qkvu), d, s.fbuf);  // dx1 (R, d)
    cuda::srms_backward(s.fbuf, A.x1, A.r1, R, d, dh, true, stream);
  }

  // Returns {Σ nats, count}; with `grad` adds loss_scale·d(mean)/dθ into the gradients.
  std::pair<double, int64_t> run(const int32_t* ids, const int32_t* targets, int64_t B, int64_t N, bool grad_wanted,
                                 double loss_scale, bool recompute, const char* fn) {
    TNL_ARG_CHECK(B >= 1 && N >= 1, fn, "ids", "expected batch >= 1 and seqlen >= 1, got ", B, " x ", N);
    TNL_ARG_CHECK(ids && targets, fn, "ids", "null pointer");
    const int64_t R = B * N, d = cfg.d_model, V = cfg.vocab_size, L = cfg.num_layers;
    int64_t valid = 0;
    for (int64_t r = 0; r < R; ++r) {
      TNL_ARG_CHECK(ids[r] >= 0 && ids[r] < V, fn, "ids", "token ", ids[r], " at row ", r,
                    " is outside the vocabulary 0..", V - 1);
      TNL_ARG_CHECK(targets[r] >= -1 && targets[r] < V, fn, "targets", "target ", targets[r], " at row ", r,
                    " is neither -1 (ignored) nor a token id 0..", V - 1);
      valid += targets[r] >= 0;
    }
    const bool grad = grad_wanted && valid > 0 && loss_scale != 0.0;
    const bool keep_all = grad && !recompute;
    prepare(R, keep_all ? L : 1, grad && recompute);
    if (grad) prepare_starts(B, N, keep_all ? L : 1);  // after prepare: it plans on the scratch tensors
    TNL_CUDA_CHECK(cudaMemcpyAsync(s.ids, ids, sizeof(int32_t) * R, cudaMemcpyHostToDevice, stream));
    TNL_CUDA_CHECK(cudaMemcpyAsync(s.targets, targets, sizeof(int32_t) * R, cudaMemcpyHostToDevice, stream));
    std::vector<int32_t> order, seg, uid;
    if (grad) {  // the rows of each token id, in row order (a counting sort): the embedding's backward
      std::vector<int32_t> count(V + 1, 0);
      for (int64_t r = 0; r < R; ++r) ++count[ids[r] + 1];
      for (int64_t t = 0; t < V; ++t) count[t + 1] += count[t];
      order.resize(R);
      std::vector<int32_t> at(count.begin(), count.end() - 1);
      for (int64_t r = 0; r < R; ++r) order[at[ids[r]]++] = (int32_t)r;
      for (int64_t t = 0; t < V; ++t)
        if (count[t + 1] > count[t]) {
          uid.push_back((int32_t)t);
          seg.push_back(count[t]);
        }
      seg.push_back((int32_t)R);
      TNL_CUDA_CHECK(cudaMemcpyAsync(s.order, order.data(), sizeof(int32_t) * R, cudaMemcpyHostToDevice, stream));
      TNL_CUDA_CHECK(cudaMemcpyAsync(s.seg, seg.data(), sizeof(int32_t) * seg.size(), cudaMemcpyHostToDevice, stream));
      TNL_CUDA_CHECK(cudaMemcpyAsync(s.uid, uid.data(), sizeof(int32_t) * uid.size(), cudaMemcpyHostToDevice, stream));
    }
    const float escale = (float)cfg.embed_scale();
    cuda::embed_forward(master.as<float>() + embed_off, s.ids, R, d, escale, s.h, stream);
    for (int64_t l = 0; l < L; ++l) {
      if (grad && recompute)
        TNL_CUDA_CHECK(cudaMemcpyAsync(inputs + l * R * d, s.h, sizeof(float) * R * d, cudaMemcpyDeviceToDevice, stream));
      const int64_t set = keep_all ? l : 0;
      layer_forward(l, B, N, s.h, acts[set], keep_all ? starts_of(set) : nullptr);  // recompute: kept later
    }
    // Head and loss in chunks of rows.
    const bf16* E16 = W(embed_off);
    cuda::srms_forward(s.h, R, d, s.xf, s.rf, stream);
    const float gscale = grad ? (float)(loss_scale / (double)valid) : 0.0f;
    for (int64_t r0 = 0; r0 < R; r0 += chunk_rows) {
      const int64_t n = std::min(chunk_rows, R - r0);
      gemm_xwT(s.xf + r0 * d, n, d, E16, V, s.logits, false, 0.0f);
      cuda::cross_entropy(s.logits, n, V, s.targets + r0, gscale, s.nll + r0, grad ? s.dlogits : nullptr, stream);
      if (grad) {
        gemm_dW(s.dlogits, n, V, s.xf + r0 * d, d, G(embed_off));
        gemm_dyW(s.dlogits, n, V, E16, d, s.dxf + r0 * d);
      }
    }
    note_memory();
    if (grad) {
      cuda::srms_backward(s.dxf, s.xf, s.rf, R, d, s.dh, false, stream);
      for (int64_t l = L - 1; l >= 0; --l) {
        if (recompute) {
          TNL_CUDA_CHECK(cudaMemcpyAsync(s.h, inputs + l * R * d, sizeof(float) * R * d, cudaMemcpyDeviceToDevice, stream));
          layer_forward(l, B, N, s.h, acts[0], starts_of(0));
        }
        const int64_t set = keep_all ? l : 0;
        layer_backward(l, B, N, acts[set], starts_of(set), s.dh);
      }
      cuda::embed_backward(s.dh, s.order, s.seg, s.uid, (int64_t)uid.size(), d, escale, G(embed_off), stream);
    }
    std::vector<float> nll(R);
    TNL_CUDA_CHECK(cudaMemcpyAsync(nll.data(), s.nll, sizeof(float) * R, cudaMemcpyDeviceToHost, stream));
    sync();
    note_memory();
    double total = 0;
    for (int64_t r = 0; r < R; ++r) total += targets[r] >= 0 ? (double)nll[r] : 0.0;
    return {total, valid};
  }

  double grad_norm() {
    const int64_t blocks = (P + cuda::kNormBlock - 1) / cuda::kNormBlock;
    cuda::sum_squares(grads.as<float>(), P, norm_partial.as<double>(), stream);
    std::vector<double> part(blocks);
    TNL_CUDA_CHECK(cudaMemcpyAsync(part.data(), norm_partial.as<double>(), sizeof(double) * blocks,
                                   cudaMemcpyDeviceToHost, stream));
    sync();
    double total = 0;
    for (double x : part) total += x;  // in block order
    return std::sqrt(total);
  }

  void adamw_step(double lr) {
    TNL_ARG_CHECK(std::isfinite(lr) && lr >= 0, "tnl::train::CudaTrainer::adamw_step", "lr",
                  "expected a finite value >= 0, got ", lr);
    ++step;
    const double bc1 = 1.0 - std::pow(adamw.beta1, (double)step);
    const double bc2 = 1.0 - std::pow(adamw.beta2, (double)step);
    cuda::AdamWArgs a;
    a.one_minus_b1 = (float)(1.0 - adamw.beta1);
    a.b2 = (float)adamw.beta2;
    a.one_minus_b2 = (float)(1.0 - adamw.beta2);
    a.step_size = (float)(lr / bc1);
    a.bc2_sqrt = (float)std::sqrt(bc2);
    a.eps = (float)adamw.eps;
    for (const ParamRange& r : decay_runs) {
      a.decay = r.weight_decay ? (float)(1.0 - lr * adamw.weight_decay) : 1.0f;
      cuda::adamw(master.as<float>(), grads.as<float>(), m.as<float>(), v.as<float>(), w16.as<bf16>(), r.offset,
                  r.offset + r.numel, a, stream);
    }
  }
};

CudaTrainer::CudaTrainer(const ParamSet& params, AdamWConfig adamw, int device)
    : impl_(std::make_unique<Impl>(params, adamw, device)) {}
CudaTrainer::~CudaTrainer() = default;

const model::Config& CudaTrainer::config() const { return impl_->cfg; }
int64_t CudaTrainer::num_params() const { return impl_->P; }

double CudaTrainer::loss_and_grad(const int32_t* ids, const int32_t* targets, int64_t batch, int64_t seqlen,
                                  const GradOptions& opt) {
  const auto [total, count] =
      impl_->run(ids, targets, batch, seqlen, true, opt.loss_scale, opt.recompute, "tnl::train::CudaTrainer::loss_and_grad");
  return count > 0 ? total / (double)count : 0.0;
}

std::pair<double, int64_t> CudaTrainer::loss_sum(const int32_t* ids, const int32_t* targets, int64_t batch,
                                                 int64_t seqlen) {
  return impl_->run(ids, targets, batch, seqlen, false, 0.0, false, "tnl::train::CudaTrainer::loss_sum");
}

void CudaTrainer::zero_grads() {
  TNL_CUDA_CHECK(cudaMemsetAsync(impl_->grads.as<void>(), 0, sizeof(float) * impl_->P, impl_->stream));
}

double CudaTrainer::grad_norm() { return impl_->grad_norm(); }

double CudaTrainer::clip_grad_norm(double max_norm) {
  TNL_ARG_CHECK(max_norm > 0, "tnl::train::CudaTrainer::clip_grad_norm", "max_norm", "expected > 0, got ", max_norm);
  const double norm = impl_->grad_norm();
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) cuda::scale(impl_->grads.as<float>(), impl_->P, (float)coef, impl_->stream);
  return norm;
}

void CudaTrainer::adamw_step(double lr) { impl_->adamw_step(lr); }
int64_t CudaTrainer::steps() const { return impl_->step; }

void CudaTrainer::upload(const ParamSet& p) { impl_->upload(p); }

void CudaTrainer::download(ParamSet& p) const {
  impl_->check_layout(p, "tnl::train::CudaTrainer::download");
  TNL_CUDA_CHECK(cudaMemcpyAsync(p.data(), impl_->master.as<float>(), sizeof(float) * impl_->P,
                                 cudaMemcpyDeviceToHost, impl_->stream));
  impl_->sync();
}

void CudaTrainer::set_grads(const float* g) {
  TNL_CUDA_CHECK(cudaMemcpyAsync(impl_->grads.as<float>(), g, sizeof(float) * impl_->P, cudaMemcpyHostToDevice,
                                 impl_->stream));
  impl_->sync();
}

void CudaTrainer::get_grads(float* g) const {
  TNL_CUDA_CHECK(cudaMemcpyAsync(g, impl_->grads.as<float>(), sizeof(float) * impl_->P, cudaMemcpyDeviceToHost,
                                 impl_->stream));
  impl_->sync();
}

void CudaTrainer::set_optimizer(const AdamW& opt) {
  TNL_ARG_CHECK(opt.num_params() == impl_->P, "tnl::train::CudaTrainer::set_optimizer", "opt", "expected an AdamW of ",
                impl_->P, " parameters, got ", opt.num_params());
  const size_t bytes = sizeof(float) * impl_->P;
  TNL_CUDA_CHECK(cudaMemcpyAsync(impl_->m.as<float>(), opt.exp_avg().data(), bytes, cudaMemcpyHostToDevice, impl_->stream));
  TNL_CUDA_CHECK(cudaMemcpyAsync(impl_->v.as<float>(), opt.exp_avg_sq().data(), bytes, cudaMemcpyHostToDevice, impl_->stream));
  impl_->sync();
  impl_->step = opt.steps();
}

void CudaTrainer::get_optimizer(AdamW& opt) const {
  std::vector<float> m(impl_->P), v(impl_->P);
  const size_t bytes = sizeof(float) * impl_->P;
  TNL_CUDA_CHECK(cudaMemcpyAsync(m.data(), impl_->m.as<float>(), bytes, cudaMemcpyDeviceToHost, impl_->stream));
  TNL_CUDA_CHECK(cudaMemcpyAsync(v.data(), impl_->v.as<float>(), bytes, cudaMemcpyDeviceToHost, impl_->stream));
  impl_->sync();
  opt.set_state(impl_->step, std::move(m), std::move(v));
}

void CudaTrainer::synchronize() { impl_->sync(); }
size_t CudaTrainer::device_bytes_in_use() const { return impl_->in_use(); }
size_t CudaTrainer::peak_device_bytes() const { return impl_->peak; }
size_t CudaTrainer::attention_starts_bytes() const { return impl_->starts_slot; }
void CudaTrainer::reset_peak() { impl_->peak = impl_->in_use(); }
void CudaTrainer::release_workspace() {
  impl_->sync();
  impl_->release();
}

}  // namespace tnl::train
