// transnormer.cpp: see transnormer.h.
#include "model/transnormer.h"

#include <cstring>

#include "model/layers_cpu.h"
#include "tnl/attention.h"
#include "tnl/dtype.h"
#include "tnl/error.h"

namespace tnl::model {
namespace {

std::vector<float> to_f32(const io::TensorEntry& t) {
  std::vector<float> out(t.numel());
  if (t.dtype == "F32") {
    std::memcpy(out.data(), t.data, out.size() * 4);
    return out;
  }
  const bool bf16 = t.dtype == "BF16";
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < (int64_t)out.size(); ++i) {
    uint16_t b;
    std::memcpy(&b, t.data + 2 * i, 2);
    out[i] = bf16 ? bf16_bits_to_f32(b) : f16_bits_to_f32(b);
  }
  return out;
}

}  // namespace

TransNormer::TransNormer(const Checkpoint& ck) : cfg_(ck.config()) {
  embed_ = to_f32(ck.tensor("model.embed_tokens.weight"));
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L;
    L.qkvu = to_f32(ck.tensor(p + "token_mixer.qkvu_proj.weight"));
    L.out = to_f32(ck.tensor(p + "token_mixer.out_proj.weight"));
    L.l1 = to_f32(ck.tensor(p + "channel_mixer.l1.weight"));
    L.l2 = to_f32(ck.tensor(p + "channel_mixer.l2.weight"));
    L.l3 = to_f32(ck.tensor(p + "channel_mixer.l3.weight"));
    if (cfg_.use_lrpe[l]) L.theta = to_f32(ck.tensor(p + "token_mixer.lrpe.theta"));
    L.slopes = slopes_transnormer(cfg_.num_heads, l, cfg_.num_layers);
    layers_.push_back(std::move(L));
  }
}

void TransNormer::embed(const int32_t* ids, int64_t rows, float* h) const {
  const int64_t d = cfg_.d_model;
  const float e = (float)cfg_.embed_scale();
  for (int64_t r = 0; r < rows; ++r) {
    if (ids[r] < 0 || ids[r] >= cfg_.vocab_size)
      throw ArgumentError(detail::cat("tnl::model: argument 'ids': token ", ids[r], " at position ", r,
                                      " is outside the vocabulary 0..", cfg_.vocab_size - 1));
    const float* row = embed_.data() + (int64_t)ids[r] * d;
    for (int64_t c = 0; c < d; ++c) h[r * d + c] = e * row[c];
  }
}

void TransNormer::token_mixer(const Layer& L, int64_t layer, float* h, int64_t batch, int64_t seqlen,
                              const int64_t* positions, float* state_in, float* state_out) const {
  const int64_t T = batch * seqlen, d = cfg_.d_model, hid = cfg_.hidden_dim, H = cfg_.num_heads;
  const int64_t dh = cfg_.head_dim();
  const bool use_lrpe = cfg_.use_lrpe[layer] != 0;
  std::vector<float> x(T * d), qkvu(T * 4 * hid), o(T * hid);
  cpu::srms_norm(h, T, d, d, x.data(), d);
  cpu::linear(x.data(), T, d, L.qkvu.data(), 4 * hid, qkvu.data());  // (T, [q | k | v | u])
  cpu::silu_inplace(qkvu.data(), T, 2 * hid, 4 * hid);               // q and k
  // q, k, v: (B, N, H, ·) views into qkvu, or LRPE-expanded copies of q and k.
  const int64_t D = use_lrpe ? 2 * dh : dh;
  std::vector<float> qe, ke;
  const float* qp = qkvu.data();
  const float* kp = qkvu.data() + hid;
  int64_t qk_row = 4 * hid;
  if (use_lrpe) {
    qe.resize(T * H * D);
    ke.resize(T * H * D);
    cpu::lrpe(qkvu.data(), T, H, dh, 4 * hid, L.theta.data(), positions, qe.data());
    cpu::lrpe(qkvu.data() + hid, T, H, dh, 4 * hid, L.theta.data(), positions, ke.data());
    qp = qe.data();
    kp = ke.data();
    qk_row = H * D;
  }
  if (seqlen == 1 && state_in != nullptr && state_in == state_out) {
    AttnDecodeParams p;  // one token per sequence, in place on the state
    p.batch = batch;
    p.heads = H;
    p.dim_qk = D;
    p.dim_v = dh;
    p.q = ConstSeqTensor(qp, qk_row, 0, D);
    p.k = ConstSeqTensor(kp, qk_row, 0, D);
    p.v = ConstSeqTensor(qkvu.data() + 2 * hid, 4 * hid, 0, dh);
    p.o = SeqTensor(o.data(), hid, 0, dh);
    p.state = state_in;
    p.slopes = L.slopes.data();
    attention_decode(p);
  } else {
    AttnForwardParams p;
    p.shape = {batch, seqlen, H, D, dh};
    p.q = ConstSeqTensor(qp, seqlen * qk_row, qk_row, D);
    p.k = ConstSeqTensor(kp, seqlen * qk_row, qk_row, D);
    p.v = ConstSeqTensor(qkvu.data() + 2 * hid, seqlen * 4 * hid, 4 * hid, dh);
    p.o = SeqTensor(o.data(), seqlen * hid, hid, dh);
    p.slopes = L.slopes.data();
    p.initial_state = state_in;
    p.final_state = state_out;
    attention_forward(p);
  }
  cpu::srms_norm(o.data(), T, hid, hid, o.data(), hid);          // over all heads jointly
  cpu::mul_inplace(o.data(), hid, qkvu.data() + 3 * hid, 4 * hid, T, hid);  // gate: u ⊙ o
  cpu::linear(o.data(), T, hid, L.out.data(), d, h, 1.0f);       // h += o W_outᵀ
}

void TransNormer::channel_mixer(const Layer& L, float* h, int64_t rows) const {
  const int64_t d = cfg_.d_model, g = cfg_.glu_dim;
  std::vector<float> x(rows * d), a(rows * g), b(rows * g);
  cpu::srms_norm(h, rows, d, d, x.data(), d);
  cpu::linear(x.data(), rows, d, L.l1.data(), g, a.data());
  cpu::linear(x.data(), rows, d, L.l2.data(), g, b.data());
  cpu::mul_inplace(a.data(), g, b.data(), g, rows, g);
  cpu::linear(a.data(), rows, g, L.l3.data(), d, h, 1.0f);  // h += (W1x ⊙ W2x) W3ᵀ
}

void TransNormer::head(const float* h, int64_t rows, float* logits) const {
  const int64_t d = cfg_.d_model;
  std::vector<float> x(rows * d);
  cpu::srms_norm(h, rows, d, d, x.data(), d);
  cpu::linear(x.data(), rows, d, embed_.data(), cfg_.vocab_size, logits);  // tied head
}

void TransNormer::forward(const int32_t* ids, int64_t batch, int64_t seqlen, float* logits,
                          GenState* state) const {
  TNL_ARG_CHECK(batch >= 1 && seqlen >= 1, "tnl::model::forward", "ids",
                "expected batch >= 1 and seqlen >= 1, got ", batch, " x ", seqlen);
  const int64_t T = batch * seqlen, H = cfg_.num_heads, dh = cfg_.head_dim();
  std::vector<float> h(T * cfg_.d_model);
  embed(ids, T, h.data());
  std::vector<int64_t> positions(T);
  for (int64_t r = 0; r < T; ++r) positions[r] = r % seqlen;
  if (state) {
    state->batch = batch;
    state->position = seqlen;
    state->layers.assign(cfg_.num_layers, {});
  }
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    float* s_out = nullptr;
    if (state) {
      const int64_t D = cfg_.use_lrpe[l] ? 2 * dh : dh;
      state->layers[l].assign(batch * H * D * dh, 0.0f);
      s_out = state->layers[l].data();
    }
    token_mixer(layers_[l], l, h.data(), batch, seqlen, positions.data(), nullptr, s_out);
    channel_mixer(layers_[l], h.data(), T);
  }
  head(h.data(), T, logits);
}

void TransNormer::decode(const int32_t* ids, float* logits, GenState& state) const {
  TNL_ARG_CHECK((int64_t)state.layers.size() == cfg_.num_layers, "tnl::model::decode", "state",
                "expected the state of a prefill of this model");
  const int64_t B = state.batch;
  std::vector<float> h(B * cfg_.d_model);
  embed(ids, B, h.data());
  const std::vector<int64_t> positions(B, state.position);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    float* s = state.layers[l].data();
    token_mixer(layers_[l], l, h.data(), B, 1, positions.data(), s, s);
    channel_mixer(layers_[l], h.data(), B);
  }
  head(h.data(), B, logits);
  ++state.position;
}

}  // namespace tnl::model
