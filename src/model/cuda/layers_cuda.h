// layers_cuda.h: the small kernels of TransNormerLLM on the GPU (the GPU twins of layers_cpu.h),
// plus the weight conversions, the random init and a skinny GEMV for decode. Internal to
// src/model/cuda/. Row-major matrices, `rows` tokens by `cols` features; every launcher takes
// the stream and checks the launch. Activations that feed a GEMM are bf16 (rounded once, to
// nearest even); norms, SiLU, LRPE angles and accumulations are fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace tnl::model::cuda {

using bf16 = __nv_bfloat16;

// ---- weights ----
// dst (n) bf16 = src (n) of dtype 0 = f32, 1 = f16, 2 = bf16 (device memory both).
void convert_to_bf16(const void* src, int src_dtype, int64_t n, bf16* dst, cudaStream_t st);
// dst (n) = bf16(N(0, std²)) from the CPU model's counter-based generator (transnormer.cpp):
// element i of stream `key` (= seed·φ64 + stream number).
void fill_normal_bf16(bf16* dst, int64_t n, uint64_t key, double std, cudaStream_t st);

// ---- activations ----
// h (T, d) fp32 = scale · embed[ids] (embed (V, d) bf16); when seen is not null (decode: row r
// is sequence r), the ids' bits are set in seen (see seen_words), V = 32 · words at most.
void embed_rows(const bf16* embed, const int32_t* ids, int64_t T, int64_t d, float scale, float* h,
                uint32_t* seen, int64_t words, cudaStream_t st);
// y (R, cols) bf16 = SRMS(x[rows[i]]) over cols (x fp32, row stride ld_x; rows null = 0..R-1).
void srms_to_bf16(const float* x, int64_t ld_x, const int32_t* rows, int64_t R, int64_t cols,
                  bf16* y, cudaStream_t st);
// From qkvu (T, 4·hid) fp32 = [q | k | v | u]: q, k = SiLU, then LRPE when theta is not null
// (D = 2·dh, angle θ[h, c]·pos[r] in fp32) -> q, k (T, H, D) bf16; v -> (T, H, dh) bf16.
void qkv_prep(const float* qkvu, int64_t T, int64_t H, int64_t dh, const float* theta,
              const int64_t* pos, bf16* q, bf16* k, bf16* v, cudaStream_t st);
// g (T, hid) bf16 = SRMS(o) over all of hid (o (T, hid) bf16) ⊙ u (u fp32, row stride ld_u).
void norm_gate(const bf16* o, const float* u, int64_t ld_u, int64_t T, int64_t hid, bf16* g,
               cudaStream_t st);
// p (T, g) bf16 = a ⊙ b, with ab (T, 2g) fp32 = [a | b].
void glu_product(const float* ab, int64_t T, int64_t g, bf16* p, cudaStream_t st);
// ---- the next token on the GPU (sample_cuda.cu), launched with programmatic dependent launch
// after the kernel that writes the logits (B, V) fp32 ----
// next[b] = argmax logits[b, :] (first of equal maxima; NaN never wins). When pos (B) is not
// null, it also advances pos[b] by one and, when hist is not null, writes the token to hist
// (hist_rows, B) at row pos[b] % hist_rows (pos before the advance).
void argmax_rows(const float* logits, int64_t B, int64_t V, int32_t* next, int64_t* pos, int32_t* hist,
                 int64_t hist_rows, cudaStream_t st);
// Tokens seen by each sequence, for the repetition penalty: a bit per vocabulary entry,
// (B, seen_words(V)) uint32.
inline int64_t seen_words(int64_t V) { return (V + 31) / 32; }
// Sets the bits of ids (T), row r belonging to sequence r / rows_per_seq.
void mark_seen(const int32_t* ids, int64_t T, int64_t rows_per_seq, uint32_t* seen, int64_t V, cudaStream_t st);
// next[b] = a token of row b after the repetition penalty over the seen tokens (seen may be null):
// greedy, or drawn from the softmax at the temperature, cut to the top-k tokens and then to the
// top-p of their mass (ties at a cut all kept), with params[b] in [0, 1) as the draw's uniform
// number (the inverse of the distribution function, over the tokens in a fixed order).
// params (kSampleParams + B) on the device: u (B), 1 / temperature, penalty (>= 1), greedy (0 or
// 1), top-k (0: none; exact below 2^24), top-p (1: none). pos[b] advances by one.
constexpr int kSampleParams = 5;
void sample_rows(const float* logits, int64_t B, int64_t V, const uint32_t* seen, const float* params,
                 int32_t* next, int64_t* pos, cudaStream_t st);
// pos[b] += 1, b < B.
void advance_positions(int64_t* pos, int64_t B, cudaStream_t st);

// ---- skinny GEMV for decode: y (M, N) (+)= in (M, K) · Wᵀ, W (N, K) bf16, M <= kGemvMaxRows ----
// (gemv_cuda.cu)
// The input row is formed in the kernel (and rounded to bf16, as the GEMM path does), from:
enum class GemvInput : int {
  rms = 0,       // SRMS(a) over K; a fp32 (M, K), row stride lda
  rms_gate = 1,  // SRMS(o) over K ⊙ u; o bf16 (M, K) contiguous, u fp32 row stride ldu
  glu = 2,       // a[:, :K] ⊙ a[:, K:2K]; a fp32 (M, 2K), row stride lda
};
struct GemvArgs {
  GemvInput mode = GemvInput::rms;
  const float* a = nullptr;
  int64_t lda = 0;
  const bf16* o = nullptr;
  const float* u = nullptr;
  int64_t ldu = 0;
  // Optional epilogue of the token mixer's input projection (N = 4·hid, y = qkvu): what
  // qkv_prep does, on each output as it is computed: q, k -> SiLU (-> LRPE when theta) -> bf16
  // (M, H, D); v -> bf16 (M, H, dh); only u is written to y. Off when q is null.
  bf16* q = nullptr;
  bf16* k = nullptr;
  bf16* v = nullptr;
  const float* theta = nullptr;  // [H, dh] or null
  const int64_t* pos = nullptr;  // (M)
  int heads = 0, dh = 0;
  // Form the input with 16-byte loads, all of a pass issued together (more registers), instead
  // of one feature per load.
  bool vec_input = false;
};
constexpr int kGemvMaxRows = 4;
// True when the GEMV handles this shape (M <= kGemvMaxRows, K % 8 == 0, the input fits in
// shared memory). With vec_input: lda, ldu multiples of 4 and a, u 16-byte aligned, o 8.
bool gemv_supported(int64_t M, int64_t K);
void gemv(const GemvArgs& in, int64_t M, int64_t K, const bf16* W, int64_t N, float* y,
          int64_t ldy, bool accumulate, cudaStream_t st);

// ---- decode attention split over blocks (batch-1 decode has only H heads for 132 SMs) ----
// The same function as attention_decode (scale 1) on the model's layout: per (b, h),
// S ← λ_h S + kᵀv (λ_h = exp(−slope_h)), o = q S, with S (B, H, D, E) fp32 in place,
// q, k (B, H, D), v (B, H, E), o (B, H, E) bf16 contiguous, slopes (H) fp32 on the device.
// Each head's E columns are split over blocks of 4·cv columns (cv = attn_split_groups), all D
// rows each, so that every output has one block (no atomics; deterministic). `pdl`: launched
// with programmatic dependent launch on sm_90 (the state's loads go out before the previous
// kernel finishes; valid when no kernel of the same step wrote this state).
bool attn_split_supported(int64_t D, int64_t E);  // E % 4 == 0, D, E <= 256
// Whether the split kernel pays at this B·H: where the attention API's decode (a block per
// sequence and head) leaves SMs idle, B·H < 2 · SMs (at B·H = 1024 the split cost 4%).
bool attn_split_pays(int64_t B, int64_t H);
int attn_split_groups(int64_t B, int64_t H, int64_t D, int64_t E);
void attn_decode_split(const bf16* q, const bf16* k, const bf16* v, const float* slopes, int64_t B,
                       int64_t H, int64_t D, int64_t E, float* state, bf16* o, bool pdl, cudaStream_t st);

}  // namespace tnl::model::cuda
