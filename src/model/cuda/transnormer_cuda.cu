// transnormer_cuda.cu: see transnormer_cuda.h. The layer stack mirrors transnormer.cpp:
//   h (T, d) fp32 = e·Embed[ids]
//   per layer: x = bf16(SRMS(h)); qkvu = x·W_qkvuᵀ (fp32); q, k = LRPE(SiLU(·)), v -> bf16;
//              o = LightningAttention(q, k, v) bf16; h += bf16(SRMS(o) ⊙ u)·W_outᵀ;
//              h += bf16((x'·W1ᵀ) ⊙ (x'·W2ᵀ))·W3ᵀ with x' = bf16(SRMS(h))  (W1, W2 one [2g, d] matrix)
//   logits = bf16(SRMS(h))·Embedᵀ (fp32)
// Scratch buffers: the model's own (forward, prefill, extend; grown as needed), and each
// state's decode scratch (fixed at B rows, so that its CUDA graphs stay valid).
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "model/cuda/cuda_common.cuh"
#include "model/cuda/layers_cuda.h"
#include "model/cuda/transnormer_cuda.h"
#include "tnl/attention.h"
#include "tnl/device.h"


namespace tnl::model {
using cuda::bf16;
using cuda_common::DevMem;

namespace {


// Pinned host memory.
class HostMem {
 public:
  HostMem() = default;
  HostMem(const HostMem&) = delete;
  HostMem& operator=(const HostMem&) = delete;
  ~HostMem() { if (p_) cudaFreeHost(p_); }
  void alloc(size_t bytes) { TNL_CUDA_CHECK(cudaMallocHost(&p_, bytes)); }
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
};

// Pointers to the activations of `rows` token rows (one scratch set).
struct Scratch {
  int64_t rows = 0;
  float* h = nullptr;       // (T, d)
  bf16* x = nullptr;        // (T, max(d, hid, g)): the next GEMM's input
  float* qkvu = nullptr;    // (T, 4·hid)
  bf16* q = nullptr;        // (T, H, D), D = 2·dh with LRPE
  bf16* k = nullptr;        // (T, H, D)
  bf16* v = nullptr;        // (T, H, dh)
  bf16* o = nullptr;        // (T, H, dh)
  float* ab = nullptr;      // (T, 2·g) = [W1 x | W2 x]
  int32_t* ids = nullptr;   // (T)
  int64_t* pos = nullptr;   // (T)
};

// Lays a Scratch for `rows` rows out in one allocation.
struct ScratchBlock {
  DevMem mem;
  Scratch s;
  void ensure(const Config& c, int64_t rows) {
    if (rows <= s.rows) return;
    const int64_t d = c.d_model, hid = c.hidden_dim, g = c.glu_dim;
    const int64_t wide = std::max({d, hid, g});
    const size_t sizes[] = {4 * (size_t)(rows * d),       2 * (size_t)(rows * wide),
                            4 * (size_t)(rows * 4 * hid), 2 * (size_t)(rows * 2 * hid),
                            2 * (size_t)(rows * 2 * hid), 2 * (size_t)(rows * hid),
                            2 * (size_t)(rows * hid),     4 * (size_t)(rows * 2 * g),
                            4 * (size_t)rows,             8 * (size_t)rows};
    size_t total = 0;
    for (size_t b : sizes) total += (b + 255) / 256 * 256;
    mem.ensure(total);
    char* p = mem.as<char>();
    void* ptr[10];
    for (int i = 0; i < 10; ++i) {
      ptr[i] = p;
      p += (sizes[i] + 255) / 256 * 256;
    }
    s.rows = rows;
    s.h = static_cast<float*>(ptr[0]);
    s.x = static_cast<bf16*>(ptr[1]);
    s.qkvu = static_cast<float*>(ptr[2]);
    s.q = static_cast<bf16*>(ptr[3]);
    s.k = static_cast<bf16*>(ptr[4]);
    s.v = static_cast<bf16*>(ptr[5]);
    s.o = static_cast<bf16*>(ptr[6]);
    s.ab = static_cast<float*>(ptr[7]);
    s.ids = static_cast<int32_t*>(ptr[8]);
    s.pos = static_cast<int64_t*>(ptr[9]);
  }
};

// How the T rows are laid out for attention: (batch, seqlen), or packed with cu_seqlens.
struct Packing {
  int64_t batch = 1, seqlen = 0;
  const int32_t* cu_seqlens = nullptr;  // device
  int64_t num_seqs = 0;
};

int dtype_code(const io::TensorEntry& t, const std::string& file) {
  if (t.dtype == "F32") return 0;
  if (t.dtype == "F16") return 1;
  if (t.dtype == "BF16") return 2;
  throw Error(detail::cat("tnl::model: tensor '", t.name, "' in ", file, " is ", t.dtype,
                          "; the GPU model reads F32, F16 or BF16"));
}

// Chained greedy decode (decode_greedy_steps): steps launched back to back (a graph each)
// before the host waits for their tokens. Eight steps to a graph, the embedding launched
// after the argmax with programmatic dependent launch, measured 2% slower (bench/RESULTS.md).
constexpr int64_t kChainSteps = 64;

std::vector<float> host_f32(const io::TensorEntry& t) {
  std::vector<float> out(t.numel());
  for (int64_t i = 0; i < (int64_t)out.size(); ++i) {
    if (t.dtype == "F32") {
      std::memcpy(&out[i], t.data + 4 * i, 4);
    } else {
      uint16_t b;
      std::memcpy(&b, t.data + 2 * i, 2);
      out[i] = t.dtype == "BF16" ? bf16_bits_to_f32(b) : f16_bits_to_f32(b);
    }
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
struct CudaGenState::Impl {
  const TransNormerCuda::Impl* owner = nullptr;
  int64_t batch = 0;
  std::vector<int64_t> positions;
  std::vector<DevMem> layers;   // per layer (B, H, D, E) fp32
  size_t state_bytes = 0;
  ScratchBlock scratch;         // B rows, for decode
  DevMem logits, next;          // (B, V) fp32, (B) int32
  HostMem host_ids, host_next;  // (B) int32, pinned
  DevMem hist;                  // chained greedy decode: (kChainSteps, B) int32, row = position % kChainSteps
  DevMem seen;                  // (B, seen_words(V)) uint32: the tokens each sequence has seen
  DevMem sample_params;         // (B + kSampleParams) fp32: sample_rows' params
  HostMem host_sample;          // the same, pinned
  cudaGraphExec_t graph[4] = {nullptr, nullptr, nullptr, nullptr};  // decode graphs, by StepOut
  int64_t graph_setting = -1;  // the settings the graphs were captured with (GEMV rows, split)
  void drop_graphs() {
    for (cudaGraphExec_t& g : graph) {
      if (g) cudaGraphExecDestroy(g);
      g = nullptr;
    }
  }
  ~Impl() { drop_graphs(); }
};

CudaGenState::CudaGenState() = default;
CudaGenState::~CudaGenState() = default;
CudaGenState::CudaGenState(CudaGenState&&) noexcept = default;
CudaGenState& CudaGenState::operator=(CudaGenState&&) noexcept = default;
int64_t CudaGenState::batch() const { return impl_ ? impl_->batch : 0; }
const std::vector<int64_t>& CudaGenState::positions() const {
  static const std::vector<int64_t> none;
  return impl_ ? impl_->positions : none;
}
size_t CudaGenState::bytes() const { return impl_ ? impl_->state_bytes : 0; }

// ---------------------------------------------------------------------------------------------
struct TransNormerCuda::Impl {
  struct Layer {
    DevMem qkvu, out, l12, l3;  // bf16: [4·hid, d], [d, hid], [2·g, d], [d, g]
    DevMem theta;               // fp32 [H, dh] when the layer has LRPE
    std::vector<float> slopes;  // (H), host
    DevMem slopes_dev;          // (H) fp32, the same on the device
  };
  Config cfg;
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  DevMem blas_ws;
  DevMem embed;  // bf16 (V, d)
  std::vector<Layer> layers;
  ScratchBlock ws;          // forward / prefill / extend rows
  DevMem ws_logits, ws_rows, ws_cu, next_state;
  bool graphs = true;
  int64_t gemv_rows = cuda::kGemvMaxRows;
  bool prep_in_gemv = true;  // decode: qkv_prep as the input GEMV's epilogue (TNL_GEMV_PREP=0: off)
  bool attn_split = true;    // decode: attention split over blocks (TNL_ATTN_SPLIT=0: the attention API)
  bool attn_pdl = true;      // ... launched with programmatic dependent launch (TNL_ATTN_PDL=0: off)
  bool gemv_vec = true;      // GemvArgs::vec_input (TNL_GEMV_VEC=0: off)
  // TNL_PROFILE=1: decode launches without a graph are timed one by one with events (this
  // breaks the overlap of programmatic dependent launch) and a table goes to stderr at the end.
  bool profiling = false;
  std::vector<std::pair<const char*, cudaEvent_t>> prof_marks;
  std::vector<cudaEvent_t> prof_pool;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> prof_sum;  // label, (ms, count)
  int64_t prof_steps = 0;
  size_t peak = 0;

  explicit Impl(const Config& c, int dev) : cfg(c), device(dev) {
    const int n = cuda_device_count();
    if (!cuda_built()) throw Error("tnl::model::TransNormerCuda: this build of tnl has no CUDA backend");
    TNL_ARG_CHECK(n > 0, "tnl::model::TransNormerCuda", "device", "cuda requested, but no CUDA device is visible");
    TNL_ARG_CHECK(dev >= 0 && dev < n, "tnl::model::TransNormerCuda", "device", "expected 0..", n - 1, ", got ", dev);
    TNL_CUDA_CHECK(cudaSetDevice(dev));
    const char* prep = std::getenv("TNL_GEMV_PREP");
    prep_in_gemv = !(prep && prep[0] == '0');
    const char* split = std::getenv("TNL_ATTN_SPLIT");
    attn_split = !(split && split[0] == '0');
    const char* apdl = std::getenv("TNL_ATTN_PDL");
    attn_pdl = !(apdl && apdl[0] == '0');
    const char* vec = std::getenv("TNL_GEMV_VEC");
    gemv_vec = !(vec && vec[0] == '0');
    const char* prof = std::getenv("TNL_PROFILE");
    profiling = prof && prof[0] == '1';
    TNL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    TNL_CUBLAS_CHECK(cublasCreate(&blas));
    TNL_CUBLAS_CHECK(cublasSetStream(blas, stream));
    blas_ws.ensure(size_t(32) << 20);  // fixed cuBLAS workspace: no allocation under graph capture
    TNL_CUBLAS_CHECK(cublasSetWorkspace(blas, blas_ws.as<void>(), blas_ws.bytes()));
    const int64_t d = cfg.d_model, hid = cfg.hidden_dim, g = cfg.glu_dim, V = cfg.vocab_size;
    embed.ensure(2 * (size_t)(V * d));
    layers.resize(cfg.num_layers);
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      Layer& L = layers[l];
      L.qkvu.ensure(2 * (size_t)(4 * hid * d));
      L.out.ensure(2 * (size_t)(d * hid));
      L.l12.ensure(2 * (size_t)(2 * g * d));
      L.l3.ensure(2 * (size_t)(d * g));
      if (cfg.use_lrpe[l]) L.theta.ensure(4 * (size_t)hid);
      L.slopes = slopes_transnormer(cfg.num_heads, l, cfg.num_layers);
      L.slopes_dev.ensure(sizeof(float) * L.slopes.size());
      TNL_CUDA_CHECK(cudaMemcpy(L.slopes_dev.as<void>(), L.slopes.data(), sizeof(float) * L.slopes.size(),
                                cudaMemcpyHostToDevice));
    }
  }
  ~Impl() {
    if (profiling && prof_steps > 0) {
      double total = 0;
      for (const auto& e : prof_sum) total += e.second.first;
      std::fprintf(stderr, "TNL_PROFILE: decode without graphs, %lld steps, %.3f ms per step (events between launches)\n",
                   (long long)prof_steps, total / (double)prof_steps);
      for (const auto& e : prof_sum)
        std::fprintf(stderr, "  %-22s %8.2f us per step  %6.2f us per launch  %5.1f%%\n", e.first.c_str(),
                     1e3 * e.second.first / (double)prof_steps, 1e3 * e.second.first / (double)e.second.second,
                     100.0 * e.second.first / total);
    }
    for (cudaEvent_t e : prof_pool) cudaEventDestroy(e);
    if (blas) cublasDestroy(blas);
    if (stream) cudaStreamDestroy(stream);
  }

  int64_t qk_dim(int64_t l) const { return cfg.use_lrpe[l] ? 2 * cfg.head_dim() : cfg.head_dim(); }
  size_t layer_state_floats(int64_t l, int64_t B) const {
    return (size_t)(B * cfg.num_heads * qk_dim(l) * cfg.head_dim());
  }
  void note_memory() { peak = std::max(peak, in_use()); }
  size_t in_use() const {
    size_t free_b = 0, total = 0;
    TNL_CUDA_CHECK(cudaMemGetInfo(&free_b, &total));
    return total - free_b;
  }

  void check_ids(const int32_t* ids, int64_t n, const char* fn) const {
    for (int64_t r = 0; r < n; ++r)
      TNL_ARG_CHECK(ids[r] >= 0 && ids[r] < cfg.vocab_size, fn, "ids", "token ", ids[r], " at row ", r,
                    " is outside the vocabulary 0..", cfg.vocab_size - 1);
  }

  // y (M, N) fp32 (+)= x (M, K) bf16 · Wᵀ, W (N, K) bf16 row-major; fp32 accumulation.
  void gemm(const bf16* x, int64_t M, int64_t K, const bf16* W, int64_t N, float* y, bool accumulate) {
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    TNL_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, W,
                                  CUDA_R_16BF, (int)K, x, CUDA_R_16BF, (int)K, &beta, y, CUDA_R_32F,
                                  (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  // Lightning attention of layer l on q, k, v of s; `state` (S, H, D, E) or null.
  void attention(int64_t l, const Scratch& s, const Packing& pk, float* state, bool step) {
    const int64_t H = cfg.num_heads, dh = cfg.head_dim(), D = qk_dim(l), hid = cfg.hidden_dim;
    if (step) {
      AttnDecodeParams p;  // one token per sequence, in place on the state
      p.dtype = DType::bf16;
      p.device = Device::cuda;
      p.batch = pk.batch;
      p.heads = H;
      p.dim_qk = D;
      p.dim_v = dh;
      p.q = ConstSeqTensor(s.q, H * D, 0, D);
      p.k = ConstSeqTensor(s.k, H * D, 0, D);
      p.v = ConstSeqTensor(s.v, hid, 0, dh);
      p.o = SeqTensor(s.o, hid, 0, dh);
      p.state = state;
      p.slopes = layers[l].slopes.data();
      p.stream = stream;
      attention_decode(p);
      return;
    }
    AttnForwardParams p;
    p.dtype = DType::bf16;
    p.device = Device::cuda;
    p.shape = {pk.batch, pk.seqlen, H, D, dh};
    p.q = ConstSeqTensor(s.q, pk.seqlen * H * D, H * D, D);
    p.k = ConstSeqTensor(s.k, pk.seqlen * H * D, H * D, D);
    p.v = ConstSeqTensor(s.v, pk.seqlen * hid, hid, dh);
    p.o = SeqTensor(s.o, pk.seqlen * hid, hid, dh);
    p.slopes = layers[l].slopes.data();
    p.cu_seqlens = pk.cu_seqlens;
    p.num_seqs = pk.num_seqs;
    p.stream = stream;
    const int64_t S = pk.cu_seqlens ? pk.num_seqs : pk.batch;
    const size_t bytes = sizeof(float) * layer_state_floats(l, S);
    if (state) {
      next_state.ensure(bytes);
      p.initial_state = state;
      p.final_state = next_state.as<float>();
    }
    attention_forward(p);
    if (state) TNL_CUDA_CHECK(cudaMemcpyAsync(state, next_state.as<float>(), bytes, cudaMemcpyDeviceToDevice, stream));
  }

  // The layer stack on the T rows of s (ids and pos already on the device): h from the ids,
  // then every layer; `states` per layer or empty. `step`: one token per sequence (decode).
  // `seen`: a decode step's bitmap of seen tokens (layers_cuda.h), which the embedding marks.
  void run(const Scratch& s, int64_t T, const Packing& pk, std::vector<DevMem>* states, bool step,
           uint32_t* seen = nullptr) {
    const int64_t d = cfg.d_model, hid = cfg.hidden_dim, g = cfg.glu_dim, H = cfg.num_heads;
    const int64_t dh = cfg.head_dim();
    cuda::embed_rows(embed.as<bf16>(), s.ids, T, d, (float)cfg.embed_scale(), s.h, seen,
                     cuda::seen_words(cfg.vocab_size), stream);
    if (step) mark("upload + embed");
    const bool fused = step && T <= gemv_rows && cuda::gemv_supported(T, std::max(d, std::max(hid, g)));
    for (int64_t l = 0; l < cfg.num_layers; ++l) {
      const Layer& L = layers[l];
      float* state = states ? (*states)[l].as<float>() : nullptr;
      // Token mixer.
      const float* theta = cfg.use_lrpe[l] ? L.theta.as<float>() : nullptr;
      if (fused) {
        cuda::GemvArgs in;
        in.mode = cuda::GemvInput::rms;
        in.a = s.h;
        in.lda = d;
        if (prep_in_gemv) {
          in.q = s.q;
          in.k = s.k;
          in.v = s.v;
          in.theta = theta;
          in.pos = s.pos;
          in.heads = (int)H;
          in.dh = (int)dh;
        }
        in.vec_input = gemv_vec;
        cuda::gemv(in, T, d, L.qkvu.as<bf16>(), 4 * hid, s.qkvu, 4 * hid, false, stream);
        if (!prep_in_gemv) cuda::qkv_prep(s.qkvu, T, H, dh, theta, s.pos, s.q, s.k, s.v, stream);
        mark("qkvu gemv");
      } else {
        cuda::srms_to_bf16(s.h, d, nullptr, T, d, s.x, stream);
        gemm(s.x, T, d, L.qkvu.as<bf16>(), 4 * hid, s.qkvu, false);
        cuda::qkv_prep(s.qkvu, T, H, dh, theta, s.pos, s.q, s.k, s.v, stream);
      }
      const int64_t D = qk_dim(l);
      if (step && attn_split && cuda::attn_split_pays(pk.batch, H) && cuda::attn_split_supported(D, dh)) {
        cuda::attn_decode_split(s.q, s.k, s.v, L.slopes_dev.as<float>(), pk.batch, H, D, dh, state, s.o, attn_pdl,
                                stream);
      } else {
        attention(l, s, pk, state, step);
      }
      if (step) mark("attention");
      if (fused) {
        cuda::GemvArgs in;
        in.mode = cuda::GemvInput::rms_gate;
        in.o = s.o;
        in.u = s.qkvu + 3 * hid;
        in.ldu = 4 * hid;
        in.vec_input = gemv_vec;
        cuda::gemv(in, T, hid, L.out.as<bf16>(), d, s.h, d, true, stream);
        mark("out gemv");
      } else {
        cuda::norm_gate(s.o, s.qkvu + 3 * hid, 4 * hid, T, hid, s.x, stream);
        gemm(s.x, T, hid, L.out.as<bf16>(), d, s.h, true);
      }
      // Channel mixer (GLU).
      if (fused) {
        cuda::GemvArgs in;
        in.mode = cuda::GemvInput::rms;
        in.a = s.h;
        in.lda = d;
        in.vec_input = gemv_vec;
        cuda::gemv(in, T, d, L.l12.as<bf16>(), 2 * g, s.ab, 2 * g, false, stream);
        mark("l12 gemv");
        cuda::GemvArgs in3;
        in3.mode = cuda::GemvInput::glu;
        in3.a = s.ab;
        in3.lda = 2 * g;
        in3.vec_input = gemv_vec;
        cuda::gemv(in3, T, g, L.l3.as<bf16>(), d, s.h, d, true, stream);
        mark("l3 gemv");
      } else {
        cuda::srms_to_bf16(s.h, d, nullptr, T, d, s.x, stream);
        gemm(s.x, T, d, L.l12.as<bf16>(), 2 * g, s.ab, false);
        cuda::glu_product(s.ab, T, g, s.x, stream);
        gemm(s.x, T, g, L.l3.as<bf16>(), d, s.h, true);
      }
    }
  }

  // logits (R, V) fp32 device for rows `rows` (device, or null = the first R) of s.h.
  void head(const Scratch& s, const int32_t* rows, int64_t R, float* logits, bool step) {
    const int64_t d = cfg.d_model, V = cfg.vocab_size;
    if (step && !rows && R <= gemv_rows && cuda::gemv_supported(R, d)) {
      cuda::GemvArgs in;
      in.mode = cuda::GemvInput::rms;
      in.a = s.h;
      in.lda = d;
      in.vec_input = gemv_vec;
      cuda::gemv(in, R, d, embed.as<bf16>(), V, logits, V, false, stream);
      mark("head gemv");
      return;
    }
    cuda::srms_to_bf16(s.h, d, rows, R, d, s.x, stream);
    gemm(s.x, R, d, embed.as<bf16>(), V, logits, false);  // tied head
  }

  void upload(void* dst, const void* src, size_t bytes) {
    TNL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  }
  void sync() { TNL_CUDA_CHECK(cudaStreamSynchronize(stream)); }

  // TNL_PROFILE: an event after the launches of `label` (decode without a graph only).
  bool prof_on() const {
    if (!profiling) return false;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    TNL_CUDA_CHECK(cudaStreamIsCapturing(stream, &cs));
    return cs == cudaStreamCaptureStatusNone;
  }
  void mark(const char* label) {
    if (!prof_on()) return;
    if (prof_marks.size() >= prof_pool.size()) {
      cudaEvent_t e;
      TNL_CUDA_CHECK(cudaEventCreate(&e));
      prof_pool.push_back(e);
    }
    cudaEvent_t e = prof_pool[prof_marks.size()];
    TNL_CUDA_CHECK(cudaEventRecord(e, stream));
    prof_marks.push_back({label, e});
  }
  // After a synchronized step: time between consecutive marks, added up by label.
  void prof_collect() {
    if (prof_marks.size() < 2) {
      prof_marks.clear();
      return;
    }
    for (size_t i = 1; i < prof_marks.size(); ++i) {
      float ms = 0;
      TNL_CUDA_CHECK(cudaEventElapsedTime(&ms, prof_marks[i - 1].second, prof_marks[i].second));
      const std::string label = prof_marks[i].first;
      auto it = std::find_if(prof_sum.begin(), prof_sum.end(), [&](const auto& e) { return e.first == label; });
      if (it == prof_sum.end()) prof_sum.push_back({label, {ms, 1}});
      else it->second.first += ms, it->second.second += 1;
    }
    prof_marks.clear();
    ++prof_steps;
  }

  // Rows (B, n) continuing from `start` positions (or from 0), through `states` (or none);
  // logits of all rows to the host.
  void run_rows(const int32_t* ids, int64_t B, int64_t n, const std::vector<int64_t>* start,
                std::vector<DevMem>* states, float* logits_host) {
    const int64_t T = B * n, V = cfg.vocab_size;
    ws.ensure(cfg, T);
    std::vector<int64_t> pos(T);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < n; ++t) pos[b * n + t] = (start ? (*start)[b] : 0) + t;
    upload(ws.s.ids, ids, sizeof(int32_t) * T);
    upload(ws.s.pos, pos.data(), sizeof(int64_t) * T);
    run(ws.s, T, {B, n, nullptr, 0}, states, false);
    ws_logits.ensure(sizeof(float) * (size_t)(T * V));
    head(ws.s, nullptr, T, ws_logits.as<float>(), false);
    TNL_CUDA_CHECK(cudaMemcpyAsync(logits_host, ws_logits.as<float>(), sizeof(float) * T * V,
                                   cudaMemcpyDeviceToHost, stream));
    sync();
    note_memory();
  }

  // What a decode step ends with: the logits on the device (copied to the host by the caller),
  // the greedy tokens copied to the host, the greedy tokens kept on the device as the next
  // step's input (chained: no host transfer in the step; the tokens also go to st.hist), or
  // tokens sampled on the device (sample_rows, with st.host_sample's params) copied to the host.
  enum class StepOut { logits = 0, greedy = 1, chained = 2, sampled = 3 };

  // The decode step's launches on the state's scratch (captured in a graph, or run directly).
  void decode_body(CudaGenState::Impl& st, StepOut out) {
    const int64_t B = st.batch, V = cfg.vocab_size;
    const Scratch& s = st.scratch.s;
    mark("start");
    if (out != StepOut::chained) upload(s.ids, st.host_ids.as<int32_t>(), sizeof(int32_t) * B);
    if (out == StepOut::sampled)
      upload(st.sample_params.as<void>(), st.host_sample.as<float>(), sizeof(float) * (B + cuda::kSampleParams));
    run(s, B, {B, 1, nullptr, 0}, &st.layers, true, st.seen.as<uint32_t>());
    head(s, nullptr, B, st.logits.as<float>(), true);
    if (out == StepOut::sampled) {
      cuda::sample_rows(st.logits.as<float>(), B, V, st.seen.as<uint32_t>(), st.sample_params.as<float>(),
                        st.next.as<int32_t>(), s.pos, stream);
      TNL_CUDA_CHECK(cudaMemcpyAsync(st.host_next.as<int32_t>(), st.next.as<int32_t>(), sizeof(int32_t) * B,
                                     cudaMemcpyDeviceToHost, stream));
      mark("sample + advance + copy");
    } else if (out == StepOut::greedy) {
      cuda::argmax_rows(st.logits.as<float>(), B, V, st.next.as<int32_t>(), s.pos, nullptr, 0, stream);
      TNL_CUDA_CHECK(cudaMemcpyAsync(st.host_next.as<int32_t>(), st.next.as<int32_t>(), sizeof(int32_t) * B,
                                     cudaMemcpyDeviceToHost, stream));
      mark("argmax + advance + copy");
    } else if (out == StepOut::chained) {
      cuda::argmax_rows(st.logits.as<float>(), B, V, s.ids, s.pos, st.hist.as<int32_t>(), kChainSteps, stream);
      mark("argmax + advance");
    } else {
      cuda::advance_positions(s.pos, B, stream);
      mark("advance");
    }
  }

  void decode_step(const int32_t* ids, CudaGenState& state, bool greedy) {
    TNL_ARG_CHECK(state.impl_ && state.impl_->owner == this, "tnl::model::TransNormerCuda::decode", "state",
                  "expected the state of a prefill of this model");
    CudaGenState::Impl& st = *state.impl_;
    check_ids(ids, st.batch, "tnl::model::TransNormerCuda::decode");
    std::memcpy(st.host_ids.as<int32_t>(), ids, sizeof(int32_t) * st.batch);
    launch_step(st, greedy ? StepOut::greedy : StepOut::logits);
  }

  // One decode step's launches (a graph replay unless graphs are off); no synchronization.
  void launch_step(CudaGenState::Impl& st, StepOut out) {
    if (!graphs) {
      decode_body(st, out);
      if (profiling) {
        sync();
        prof_collect();
      }
    } else {
      const int64_t setting = 2 * gemv_rows + (attn_split ? 1 : 0);
      if (st.graph_setting != setting) st.drop_graphs();
      st.graph_setting = setting;
      cudaGraphExec_t& exec = st.graph[(int)out];
      if (!exec) {
        cudaGraph_t graph = nullptr;
        TNL_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed));
        try {
          decode_body(st, out);
        } catch (...) {
          cudaStreamEndCapture(stream, &graph);
          if (graph) cudaGraphDestroy(graph);
          throw;
        }
        TNL_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
        cudaGraphDestroy(graph);
        TNL_CUDA_CHECK(err);
      }
      TNL_CUDA_CHECK(cudaGraphLaunch(exec, stream));
    }
    for (int64_t& p : st.positions) ++p;
  }
};

// ---------------------------------------------------------------------------------------------
TransNormerCuda::TransNormerCuda(const Checkpoint& ck, int device)
    : impl_(std::make_unique<Impl>(ck.config(), device)) {
  Impl& m = *impl_;
  const Config& c = m.cfg;
  const int64_t g = c.glu_dim, d = c.d_model;
  DevMem staging;
  // One tensor: raw bytes to the device, then converted to bf16 at dst.
  auto load = [&](const std::string& name, bf16* dst) {
    const io::TensorEntry& t = ck.tensor(name);
    const int code = dtype_code(t, ck.file_of(name));
    staging.ensure((size_t)t.bytes);
    TNL_CUDA_CHECK(cudaMemcpyAsync(staging.as<void>(), t.data, (size_t)t.bytes, cudaMemcpyHostToDevice, m.stream));
    cuda::convert_to_bf16(staging.as<void>(), code, t.numel(), dst, m.stream);
    m.sync();  // staging is reused by the next tensor
  };
  load("model.embed_tokens.weight", m.embed.as<bf16>());
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Impl::Layer& L = m.layers[l];
    load(p + "token_mixer.qkvu_proj.weight", L.qkvu.as<bf16>());
    load(p + "token_mixer.out_proj.weight", L.out.as<bf16>());
    load(p + "channel_mixer.l1.weight", L.l12.as<bf16>());
    load(p + "channel_mixer.l2.weight", L.l12.as<bf16>() + g * d);
    load(p + "channel_mixer.l3.weight", L.l3.as<bf16>());
    if (c.use_lrpe[l]) {
      const std::vector<float> theta = host_f32(ck.tensor(p + "token_mixer.lrpe.theta"));  // [H, 1, dh]
      TNL_CUDA_CHECK(cudaMemcpy(L.theta.as<void>(), theta.data(), 4 * theta.size(), cudaMemcpyHostToDevice));
    }
  }
  m.note_memory();
}

TransNormerCuda::TransNormerCuda(const Config& cfg, uint64_t seed, int device)
    : impl_(std::make_unique<Impl>(cfg, device)) {
  Impl& m = *impl_;
  const Config& c = m.cfg;
  const int64_t d = c.d_model, hid = c.hidden_dim, g = c.glu_dim, H = c.num_heads, dh = c.head_dim();
  uint64_t stream_no = 0;  // the CPU model's order: embedding, then per layer qkvu, out, l1, l2, l3
  auto normal = [&](bf16* dst, int64_t n) {
    cuda::fill_normal_bf16(dst, n, seed * 0x9e3779b97f4a7c15ull + (++stream_no), c.init_std, m.stream);
  };
  normal(m.embed.as<bf16>(), c.vocab_size * d);
  if (c.pad_id >= 0 && c.pad_id < c.vocab_size)
    TNL_CUDA_CHECK(cudaMemsetAsync(m.embed.as<bf16>() + c.pad_id * d, 0, 2 * (size_t)d, m.stream));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Impl::Layer& L = m.layers[l];
    normal(L.qkvu.as<bf16>(), 4 * hid * d);
    normal(L.out.as<bf16>(), d * hid);
    normal(L.l12.as<bf16>(), g * d);
    normal(L.l12.as<bf16>() + g * d, g * d);
    normal(L.l3.as<bf16>(), d * g);
    if (c.use_lrpe[l]) {
      std::vector<float> theta(H * dh);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dh; ++j)
          theta[h * dh + j] = (float)std::pow(10000.0, -2.0 * (double)(h * dh + j) / (double)d);
      m.upload(L.theta.as<void>(), theta.data(), 4 * theta.size());
    }
  }
  m.sync();
  m.note_memory();
}

TransNormerCuda::~TransNormerCuda() = default;

const Config& TransNormerCuda::config() const { return impl_->cfg; }

size_t TransNormerCuda::weight_bytes() const {
  size_t n = impl_->embed.bytes();
  for (const Impl::Layer& L : impl_->layers) n += L.qkvu.bytes() + L.out.bytes() + L.l12.bytes() + L.l3.bytes();
  return n;
}

void TransNormerCuda::set_graphs(bool on) { impl_->graphs = on; }

void TransNormerCuda::set_attn_split(bool on) { impl_->attn_split = on; }

void TransNormerCuda::set_gemv_rows(int64_t rows) {
  TNL_ARG_CHECK(rows >= 0 && rows <= cuda::kGemvMaxRows, "tnl::model::TransNormerCuda::set_gemv_rows", "rows",
                "expected 0..", cuda::kGemvMaxRows, ", got ", rows);
  impl_->gemv_rows = rows;
}

size_t TransNormerCuda::device_bytes_in_use() const { return impl_->in_use(); }
size_t TransNormerCuda::peak_device_bytes() const { return std::max(impl_->peak, impl_->in_use()); }

void TransNormerCuda::forward(const int32_t* ids, int64_t batch, int64_t seqlen, float* logits) {
  TNL_ARG_CHECK(batch >= 1 && seqlen >= 1, "tnl::model::TransNormerCuda::forward", "ids",
                "expected batch >= 1 and seqlen >= 1, got ", batch, " x ", seqlen);
  impl_->check_ids(ids, batch * seqlen, "tnl::model::TransNormerCuda::forward");
  impl_->run_rows(ids, batch, seqlen, nullptr, nullptr, logits);
}

void TransNormerCuda::prefill(const std::vector<std::vector<int32_t>>& prompts, CudaGenState& state,
                              float* last_logits, int64_t chunk) {
  Impl& m = *impl_;
  const Config& c = m.cfg;
  const char* fn = "tnl::model::TransNormerCuda::prefill";
  const int64_t B = (int64_t)prompts.size(), V = c.vocab_size, d = c.d_model, hid = c.hidden_dim;
  const int64_t g = c.glu_dim;
  TNL_ARG_CHECK(B >= 1, fn, "prompts", "expected at least one prompt");
  TNL_ARG_CHECK(chunk >= 1, fn, "chunk", "expected >= 1, got ", chunk);
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    TNL_ARG_CHECK(!prompts[b].empty(), fn, "prompts", "prompt ", b, " is empty");
    m.check_ids(prompts[b].data(), (int64_t)prompts[b].size(), fn);
    longest = std::max<int64_t>(longest, (int64_t)prompts[b].size());
  }
  // A fresh state: zeroed fp32 states, decode scratch for B rows, pinned id buffers.
  auto st = std::make_unique<CudaGenState::Impl>();
  st->owner = &m;
  st->batch = B;
  st->layers.resize(c.num_layers);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const size_t bytes = sizeof(float) * m.layer_state_floats(l, B);
    st->layers[l].ensure(bytes);
    TNL_CUDA_CHECK(cudaMemsetAsync(st->layers[l].as<void>(), 0, bytes, m.stream));
    st->state_bytes += bytes;
  }
  st->scratch.ensure(c, B);
  st->logits.ensure(sizeof(float) * (size_t)(B * V));
  st->next.ensure(sizeof(int32_t) * (size_t)B);
  st->host_ids.alloc(sizeof(int32_t) * (size_t)B);
  st->host_next.alloc(sizeof(int32_t) * (size_t)B);
  st->sample_params.ensure(sizeof(float) * (size_t)(B + cuda::kSampleParams));
  st->host_sample.alloc(sizeof(float) * (size_t)(B + cuda::kSampleParams));
  {  // the prompts' tokens, for the repetition penalty of decode_sample
    const int64_t words = cuda::seen_words(V);
    std::vector<uint32_t> seen(B * words, 0);
    for (int64_t b = 0; b < B; ++b)
      for (int32_t t : prompts[b]) seen[b * words + (t >> 5)] |= 1u << (t & 31);
    st->seen.ensure(sizeof(uint32_t) * seen.size());
    TNL_CUDA_CHECK(cudaMemcpyAsync(st->seen.as<void>(), seen.data(), sizeof(uint32_t) * seen.size(),
                                   cudaMemcpyHostToDevice, m.stream));
    m.sync();  // `seen` is freed at the end of this block
  }
  (void)d, (void)hid, (void)g;

  m.ws_cu.ensure(sizeof(int32_t) * (size_t)(B + 1));
  m.ws_rows.ensure(sizeof(int32_t) * (size_t)B);
  m.ws_logits.ensure(sizeof(float) * (size_t)(B * V));
  std::vector<float> rows_logits;
  // Chunk c0 packs tokens [c0, c0 + chunk) of every prompt (empty for the short ones).
  for (int64_t c0 = 0; c0 < longest; c0 += chunk) {
    std::vector<int32_t> ids, cu{0}, last_rows, last_seq;
    std::vector<int64_t> pos;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t len = (int64_t)prompts[b].size(), end = std::min(len, c0 + chunk);
      for (int64_t t = c0; t < end; ++t) {
        ids.push_back(prompts[b][t]);
        pos.push_back(t);
      }
      if (c0 < len && end == len) {
        last_rows.push_back((int32_t)ids.size() - 1);
        last_seq.push_back((int32_t)b);
      }
      cu.push_back((int32_t)ids.size());
    }
    const int64_t T = (int64_t)ids.size(), R = (int64_t)last_rows.size();
    m.ws.ensure(c, T);
    m.upload(m.ws.s.ids, ids.data(), sizeof(int32_t) * T);
    m.upload(m.ws.s.pos, pos.data(), sizeof(int64_t) * T);
    m.upload(m.ws_cu.as<void>(), cu.data(), sizeof(int32_t) * cu.size());
    m.run(m.ws.s, T, {1, T, m.ws_cu.as<int32_t>(), B}, &st->layers, false);
    if (R > 0) {
      m.upload(m.ws_rows.as<void>(), last_rows.data(), sizeof(int32_t) * R);
      m.head(m.ws.s, m.ws_rows.as<int32_t>(), R, m.ws_logits.as<float>(), false);
      rows_logits.resize(R * V);
      TNL_CUDA_CHECK(cudaMemcpyAsync(rows_logits.data(), m.ws_logits.as<float>(), sizeof(float) * R * V,
                                     cudaMemcpyDeviceToHost, m.stream));
      m.sync();
      for (int64_t i = 0; i < R; ++i)
        std::memcpy(last_logits + last_seq[i] * V, rows_logits.data() + i * V, sizeof(float) * V);
    }
  }
  st->positions.resize(B);
  for (int64_t b = 0; b < B; ++b) st->positions[b] = (int64_t)prompts[b].size();
  m.upload(st->scratch.s.pos, st->positions.data(), sizeof(int64_t) * B);
  m.sync();
  m.note_memory();
  state.impl_ = std::move(st);
}

void TransNormerCuda::extend(const int32_t* ids, int64_t n, CudaGenState& state, float* logits) {
  Impl& m = *impl_;
  const char* fn = "tnl::model::TransNormerCuda::extend";
  TNL_ARG_CHECK(state.impl_ && state.impl_->owner == &m, fn, "state", "expected the state of a prefill of this model");
  TNL_ARG_CHECK(n >= 1, fn, "n", "expected >= 1, got ", n);
  if (n == 1) return decode(ids, logits, state);
  CudaGenState::Impl& st = *state.impl_;
  m.check_ids(ids, st.batch * n, fn);
  m.run_rows(ids, st.batch, n, &st.positions, &st.layers, logits);
  cuda::mark_seen(m.ws.s.ids, st.batch * n, n, st.seen.as<uint32_t>(), m.cfg.vocab_size, m.stream);
  for (int64_t& p : st.positions) p += n;
  m.upload(st.scratch.s.pos, st.positions.data(), sizeof(int64_t) * st.batch);
  m.sync();
}

void TransNormerCuda::decode(const int32_t* ids, float* logits, CudaGenState& state) {
  Impl& m = *impl_;
  m.decode_step(ids, state, false);
  const int64_t B = state.impl_->batch, V = m.cfg.vocab_size;
  TNL_CUDA_CHECK(cudaMemcpyAsync(logits, state.impl_->logits.as<float>(), sizeof(float) * B * V,
                                 cudaMemcpyDeviceToHost, m.stream));
  m.sync();
}

void TransNormerCuda::decode_greedy(const int32_t* ids, int32_t* next, CudaGenState& state) {
  Impl& m = *impl_;
  m.decode_step(ids, state, true);
  m.sync();
  std::memcpy(next, state.impl_->host_next.as<int32_t>(), sizeof(int32_t) * state.impl_->batch);
}

void TransNormerCuda::decode_sample(const int32_t* ids, const float* uniforms, const SamplingOptions& opt,
                                    int32_t* next, CudaGenState& state) {
  Impl& m = *impl_;
  const char* fn = "tnl::model::TransNormerCuda::decode_sample";
  TNL_ARG_CHECK(state.impl_ && state.impl_->owner == &m, fn, "state", "expected the state of a prefill of this model");
  check_sampling_options(opt, fn);
  CudaGenState::Impl& st = *state.impl_;
  const int64_t B = st.batch, V = m.cfg.vocab_size;
  m.check_ids(ids, B, fn);
  TNL_ARG_CHECK(next != nullptr, fn, "next", "expected a buffer of batch tokens, got null");
  TNL_ARG_CHECK(opt.greedy || uniforms != nullptr, fn, "uniforms", "expected batch numbers in [0, 1), got null");
  float* params = st.host_sample.as<float>();
  for (int64_t b = 0; b < B; ++b) {
    TNL_ARG_CHECK(opt.greedy || (uniforms[b] >= 0 && uniforms[b] < 1), fn, "uniforms",
                  "expected values in [0, 1), got ", uniforms[b], " for sequence ", b);
    params[b] = opt.greedy ? 0.f : uniforms[b];
  }
  TNL_ARG_CHECK(opt.top_k >= V || opt.top_k < (1 << 24), fn, "top_k",
                "expected below 2^24 (or at least the vocabulary: no cut), got ", opt.top_k);
  params[B] = 1.0f / opt.temperature;
  params[B + 1] = opt.repetition_penalty;
  params[B + 2] = opt.greedy ? 1.f : 0.f;
  params[B + 3] = opt.top_k < V ? (float)opt.top_k : 0.f;
  params[B + 4] = opt.top_p;
  std::memcpy(st.host_ids.as<int32_t>(), ids, sizeof(int32_t) * B);
  m.launch_step(st, Impl::StepOut::sampled);
  m.sync();
  std::memcpy(next, st.host_next.as<int32_t>(), sizeof(int32_t) * B);
}

void TransNormerCuda::decode_greedy_steps(const int32_t* ids, int64_t steps, int32_t* out, CudaGenState& state) {
  Impl& m = *impl_;
  const char* fn = "tnl::model::TransNormerCuda::decode_greedy_steps";
  TNL_ARG_CHECK(state.impl_ && state.impl_->owner == &m, fn, "state", "expected the state of a prefill of this model");
  TNL_ARG_CHECK(steps >= 1, fn, "steps", "expected >= 1, got ", steps);
  TNL_ARG_CHECK(out != nullptr, fn, "out", "expected a buffer of steps x batch tokens, got null");
  CudaGenState::Impl& st = *state.impl_;
  const int64_t B = st.batch;
  m.check_ids(ids, B, fn);
  // A fixed buffer (the chained graphs hold its address): allocated once per state.
  st.hist.ensure(sizeof(int32_t) * kChainSteps * B);
  std::memcpy(st.host_ids.as<int32_t>(), ids, sizeof(int32_t) * B);
  m.upload(st.scratch.s.ids, st.host_ids.as<int32_t>(), sizeof(int32_t) * B);
  std::vector<int32_t> ring(kChainSteps * B);  // (kChainSteps, B): row = position % kChainSteps
  for (int64_t done = 0; done < steps;) {
    const int64_t n = std::min<int64_t>(kChainSteps, steps - done);
    const std::vector<int64_t> first = st.positions;  // each sequence's position at this chunk's first step
    for (int64_t i = 0; i < n; ++i) m.launch_step(st, Impl::StepOut::chained);
    TNL_CUDA_CHECK(cudaMemcpyAsync(ring.data(), st.hist.as<int32_t>(), sizeof(int32_t) * kChainSteps * B,
                                   cudaMemcpyDeviceToHost, m.stream));
    m.sync();
    for (int64_t j = 0; j < n; ++j)
      for (int64_t b = 0; b < B; ++b) out[(done + j) * B + b] = ring[((first[b] + j) % kChainSteps) * B + b];
    done += n;
  }
}

}  // namespace tnl::model
