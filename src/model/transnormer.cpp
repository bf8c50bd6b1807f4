// transnormer.cpp: see transnormer.h.
#include "model/transnormer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/init.h"
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

size_t GenState::bytes() const {
  size_t n = 0;
  for (const auto& l : layers) n += l.size() * sizeof(float);
  return n;
}

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

TransNormer::TransNormer(const Config& cfg,
                         const std::function<const float*(const std::string& name)>& weight)
    : cfg_(cfg) {
  auto copy = [&](const std::string& name, int64_t n) {
    const float* w = weight(name);
    TNL_ARG_CHECK(w != nullptr, "tnl::model::TransNormer", "weight", "no data for tensor '", name, "'");
    return std::vector<float>(w, w + n);
  };
  const int64_t d = cfg_.d_model, hid = cfg_.hidden_dim, g = cfg_.glu_dim;
  embed_ = copy("model.embed_tokens.weight", cfg_.vocab_size * d);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L;
    L.qkvu = copy(p + "token_mixer.qkvu_proj.weight", 4 * hid * d);
    L.out = copy(p + "token_mixer.out_proj.weight", d * hid);
    L.l1 = copy(p + "channel_mixer.l1.weight", g * d);
    L.l2 = copy(p + "channel_mixer.l2.weight", g * d);
    L.l3 = copy(p + "channel_mixer.l3.weight", d * g);
    if (cfg_.use_lrpe[l]) L.theta = copy(p + "token_mixer.lrpe.theta", hid);
    L.slopes = slopes_transnormer(cfg_.num_heads, l, cfg_.num_layers);
    layers_.push_back(std::move(L));
  }
}

TransNormer::TransNormer(const Config& cfg, uint64_t seed) : cfg_(cfg) {
  uint64_t stream = 0;
  auto normal = [&](int64_t n) {  // N(0, init_std²), one stream per tensor (init.h)
    std::vector<float> w(n);
    fill_normal(w.data(), n, seed, ++stream, cfg_.init_std);
    return w;
  };
  const int64_t d = cfg_.d_model, hid = cfg_.hidden_dim, g = cfg_.glu_dim, H = cfg_.num_heads;
  const int64_t dh = cfg_.head_dim();
  embed_ = normal(cfg_.vocab_size * d);
  if (cfg_.pad_id >= 0 && cfg_.pad_id < cfg_.vocab_size)
    std::fill(embed_.begin() + cfg_.pad_id * d, embed_.begin() + (cfg_.pad_id + 1) * d, 0.0f);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    Layer L;
    L.qkvu = normal(4 * hid * d);
    L.out = normal(d * hid);
    L.l1 = normal(g * d);
    L.l2 = normal(g * d);
    L.l3 = normal(d * g);
    if (cfg_.use_lrpe[l]) {
      L.theta.resize(H * dh);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < dh; ++c)
          L.theta[h * dh + c] = (float)std::pow(10000.0, -2.0 * (double)(h * dh + c) / (double)d);
    }
    L.slopes = slopes_transnormer(H, l, cfg_.num_layers);
    layers_.push_back(std::move(L));
  }
}

void TransNormer::token_mixer(const Layer& L, int64_t layer, float* h, const Packing& pk,
                              const int64_t* positions, std::vector<float>* state) const {
  const int64_t T = pk.batch * pk.seqlen, d = cfg_.d_model, hid = cfg_.hidden_dim;
  const int64_t H = cfg_.num_heads, dh = cfg_.head_dim();
  const bool use_lrpe = cfg_.use_lrpe[layer] != 0;
  std::vector<float> x(T * d), qkvu(T * 4 * hid), o(T * hid);
  cpu::srms_norm(h, T, d, d, x.data(), d);
  cpu::linear(x.data(), T, d, L.qkvu.data(), 4 * hid, qkvu.data());  // (T, [q | k | v | u])
  cpu::silu_inplace(qkvu.data(), T, 2 * hid, 4 * hid);               // q and k
  // q, k, v as (B, N, H, ·) views into qkvu, or LRPE-expanded copies of q and k (D = 2·dh).
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
  const float* vp = qkvu.data() + 2 * hid;
  if (state && pk.seqlen == 1 && !pk.cu_seqlens) {
    AttnDecodeParams p;  // one token per sequence, in place on the state
    p.batch = pk.batch;
    p.heads = H;
    p.dim_qk = D;
    p.dim_v = dh;
    p.q = ConstSeqTensor(qp, qk_row, 0, D);
    p.k = ConstSeqTensor(kp, qk_row, 0, D);
    p.v = ConstSeqTensor(vp, 4 * hid, 0, dh);
    p.o = SeqTensor(o.data(), hid, 0, dh);
    p.state = state->data();
    p.slopes = L.slopes.data();
    attention_decode(p);
  } else {
    AttnForwardParams p;
    p.shape = {pk.batch, pk.seqlen, H, D, dh};
    p.q = ConstSeqTensor(qp, pk.seqlen * qk_row, qk_row, D);
    p.k = ConstSeqTensor(kp, pk.seqlen * qk_row, qk_row, D);
    p.v = ConstSeqTensor(vp, pk.seqlen * 4 * hid, 4 * hid, dh);
    p.o = SeqTensor(o.data(), pk.seqlen * hid, hid, dh);
    p.slopes = L.slopes.data();
    p.cu_seqlens = pk.cu_seqlens;
    p.num_seqs = pk.num_seqs;
    std::vector<float> next;
    if (state) {
      next.resize(state->size());
      p.initial_state = state->data();
      p.final_state = next.data();
    }
    attention_forward(p);
    if (state) state->swap(next);
  }
  cpu::srms_norm(o.data(), T, hid, hid, o.data(), hid);                     // all heads jointly
  cpu::mul_inplace(o.data(), hid, qkvu.data() + 3 * hid, 4 * hid, T, hid);  // gate: u ⊙ o
  cpu::linear(o.data(), T, hid, L.out.data(), d, h, 1.0f);                  // h += o W_outᵀ
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

void TransNormer::run(const int32_t* ids, const Packing& pk, const int64_t* positions,
                      GenState* state, std::vector<float>& h) const {
  const int64_t T = pk.batch * pk.seqlen, d = cfg_.d_model;
  h.assign(T * d, 0.0f);
  const float e = (float)cfg_.embed_scale();
  for (int64_t r = 0; r < T; ++r) {
    TNL_ARG_CHECK(ids[r] >= 0 && ids[r] < cfg_.vocab_size, "tnl::model", "ids", "token ", ids[r],
                  " at row ", r, " is outside the vocabulary 0..", cfg_.vocab_size - 1);
    const float* row = embed_.data() + (int64_t)ids[r] * d;
    for (int64_t c = 0; c < d; ++c) h[r * d + c] = e * row[c];
  }
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    token_mixer(layers_[l], l, h.data(), pk, positions, state ? &state->layers[l] : nullptr);
    channel_mixer(layers_[l], h.data(), T);
  }
}

void TransNormer::forward(const int32_t* ids, int64_t batch, int64_t seqlen, float* logits) const {
  TNL_ARG_CHECK(batch >= 1 && seqlen >= 1, "tnl::model::forward", "ids",
                "expected batch >= 1 and seqlen >= 1, got ", batch, " x ", seqlen);
  std::vector<int64_t> positions(batch * seqlen);
  for (int64_t r = 0; r < batch * seqlen; ++r) positions[r] = r % seqlen;
  std::vector<float> h;
  run(ids, {batch, seqlen, nullptr, 0}, positions.data(), nullptr, h);
  head(h.data(), batch * seqlen, logits);
}

void TransNormer::prefill(const std::vector<std::vector<int32_t>>& prompts, GenState& st,
                          float* last_logits, int64_t chunk) const {
  const int64_t B = (int64_t)prompts.size(), H = cfg_.num_heads, dh = cfg_.head_dim();
  TNL_ARG_CHECK(B >= 1, "tnl::model::prefill", "prompts", "expected at least one prompt");
  TNL_ARG_CHECK(chunk >= 1, "tnl::model::prefill", "chunk", "expected >= 1, got ", chunk);
  int64_t longest = 0;
  for (int64_t b = 0; b < B; ++b) {
    TNL_ARG_CHECK(!prompts[b].empty(), "tnl::model::prefill", "prompts", "prompt ", b, " is empty");
    longest = std::max<int64_t>(longest, (int64_t)prompts[b].size());
  }
  st.batch = B;
  st.positions.assign(B, 0);
  st.layers.assign(cfg_.num_layers, {});
  for (int64_t l = 0; l < cfg_.num_layers; ++l)
    st.layers[l].assign(B * H * (cfg_.use_lrpe[l] ? 2 * dh : dh) * dh, 0.0f);
  // Chunk c packs tokens [c·chunk, (c+1)·chunk) of every prompt (empty for the short ones).
  for (int64_t c0 = 0; c0 < longest; c0 += chunk) {
    std::vector<int32_t> ids, cu{0};
    std::vector<int64_t> pos;
    std::vector<std::pair<int64_t, int64_t>> last_rows;  // (sequence, row) ending in this chunk
    for (int64_t b = 0; b < B; ++b) {
      const int64_t len = (int64_t)prompts[b].size();
      const int64_t end = std::min(len, c0 + chunk);
      for (int64_t t = c0; t < end; ++t) {
        ids.push_back(prompts[b][t]);
        pos.push_back(t);
      }
      if (c0 < len && end == len) last_rows.emplace_back(b, (int64_t)ids.size() - 1);
      cu.push_back((int32_t)ids.size());
    }
    std::vector<float> h;
    run(ids.data(), {1, (int64_t)ids.size(), cu.data(), B}, pos.data(), &st, h);
    for (const auto& [b, row] : last_rows)
      head(h.data() + row * cfg_.d_model, 1, last_logits + b * cfg_.vocab_size);
  }
  for (int64_t b = 0; b < B; ++b) st.positions[b] = (int64_t)prompts[b].size();
}

void TransNormer::extend(const int32_t* ids, int64_t n, GenState& st, float* logits) const {
  TNL_ARG_CHECK((int64_t)st.layers.size() == cfg_.num_layers && st.batch >= 1, "tnl::model::extend",
                "state", "expected the state of a prefill of this model");
  TNL_ARG_CHECK(n >= 1, "tnl::model::extend", "n", "expected >= 1, got ", n);
  const int64_t B = st.batch;
  std::vector<int64_t> pos(B * n);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < n; ++t) pos[b * n + t] = st.positions[b] + t;
  std::vector<float> h;
  run(ids, {B, n, nullptr, 0}, pos.data(), &st, h);
  head(h.data(), B * n, logits);
  for (int64_t& p : st.positions) p += n;
}

}  // namespace tnl::model
