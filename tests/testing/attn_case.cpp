// attn_case.cpp: see attn_case.h.
#include "testing/attn_case.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

namespace tnl::testing {
namespace {

constexpr int64_t kGuard = 8;  // sentinel elements after every buffer

// The sentinel as the buffer's dtype stores it.
double sentinel_in(DType dt) {
  HostTensor one(dt, 1);
  one.set(0, kGapSentinel);
  return one.get(0);
}

// ‖out − ref‖ / max(‖ref‖, floor_rms·sqrt(n)) over n elements; +inf when out has a NaN or Inf.
double block_error(const double* out, const double* ref, size_t n, double floor_rms) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) return std::numeric_limits<double>::infinity();
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  den = std::max(den, floor_rms * floor_rms * (double)n);
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace

const char* layout_name(CaseLayout layout) {
  switch (layout) {
    case CaseLayout::bnhd: return "bnhd";
    case CaseLayout::bhnd: return "bhnd";
    case CaseLayout::padded: return "padded";
    case CaseLayout::permuted: return "permuted";
  }
  return "?";
}

StridedTensor::StridedTensor(DType dtype, CaseLayout layout, int64_t b, int64_t n, int64_t h,
                             int64_t d)
    : batch(b), seqlen(n), heads(h), dim(d) {
  switch (layout) {
    case CaseLayout::bnhd:
      stride_head = d, stride_seq = h * d, stride_batch = n * h * d;
      break;
    case CaseLayout::bhnd:
      stride_seq = d, stride_head = n * d, stride_batch = h * n * d;
      break;
    case CaseLayout::padded:  // rows never start at a multiple of the SIMD width
      lead = 3, stride_head = d + 3, stride_seq = h * stride_head + 5;
      stride_batch = n * stride_seq + 7;
      break;
    case CaseLayout::permuted:  // (H, N, B, dim) storage order
      lead = 1, stride_batch = d + 2, stride_seq = b * stride_batch + 1;
      stride_head = n * stride_seq + 3;
      break;
  }
  const int64_t last = offset(b - 1, n - 1, h - 1, d - 1);
  buf = HostTensor(dtype, last + 1 + kGuard);
}

SeqTensor StridedTensor::view() {
  return SeqTensor(static_cast<unsigned char*>(buf.data()) + lead * dtype_size(buf.dtype),
                   stride_batch, stride_seq, stride_head);
}

ConstSeqTensor StridedTensor::view() const {
  return ConstSeqTensor(
      static_cast<const unsigned char*>(buf.data()) + lead * dtype_size(buf.dtype), stride_batch,
      stride_seq, stride_head);
}

std::vector<bool> StridedTensor::covered() const {
  std::vector<bool> cov(buf.numel, false);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t n = 0; n < seqlen; ++n)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < dim; ++d) cov[offset(b, n, h, d)] = true;
  return cov;
}

void StridedTensor::fill_normal(std::mt19937_64& rng, double stddev) {
  std::normal_distribution<double> dist(0.0, stddev);
  const std::vector<bool> cov = covered();
  for (int64_t i = 0; i < buf.numel; ++i) buf.set(i, cov[i] ? dist(rng) : kGapSentinel);
}

void StridedTensor::poison() {
  const std::vector<bool> cov = covered();
  for (int64_t i = 0; i < buf.numel; ++i)
    buf.set(i, cov[i] ? std::numeric_limits<double>::quiet_NaN() : kGapSentinel);
}

StridedTensor StridedTensor::converted(DType to) const {
  StridedTensor out;
  out.batch = batch, out.seqlen = seqlen, out.heads = heads, out.dim = dim;
  out.stride_batch = stride_batch, out.stride_seq = stride_seq, out.stride_head = stride_head;
  out.lead = lead;
  out.buf = buf.converted(to);
  return out;
}

StateBuffer::StateBuffer(DType dtype, int64_t n) : numel(n), buf(dtype, n + kGuard) {}

void StateBuffer::fill_normal(std::mt19937_64& rng, double stddev) {
  std::normal_distribution<double> dist(0.0, stddev);
  for (int64_t i = 0; i < buf.numel; ++i) buf.set(i, i < numel ? dist(rng) : kGapSentinel);
}

void StateBuffer::poison() {
  for (int64_t i = 0; i < buf.numel; ++i)
    buf.set(i, i < numel ? std::numeric_limits<double>::quiet_NaN() : kGapSentinel);
}

StateBuffer StateBuffer::converted(DType to) const {
  StateBuffer out;
  out.numel = numel;
  out.buf = buf.converted(to);
  return out;
}

std::vector<double> StateBuffer::values() const {
  std::vector<double> out(numel);
  for (int64_t i = 0; i < numel; ++i) out[i] = buf.get(i);
  return out;
}

std::string AttnCaseConfig::describe() const {
  std::ostringstream os;
  int64_t total = seqlen;
  if (!varlen.empty()) total = std::accumulate(varlen.begin(), varlen.end(), (int64_t)0);
  os << "B=" << batch << " N=" << total << " H=" << heads << " D=" << dim_qk << " E=" << dim_v
     << " dtype=" << dtype_name(dtype) << " layout=" << layout_name(layout);
  if (!varlen.empty()) {
    os << " varlen=[";
    for (size_t i = 0; i < varlen.size(); ++i) os << (i ? "," : "") << varlen[i];
    os << "]";
  }
  os << " slopes=[";
  const std::vector<float> s = slopes.empty() ? slope_mix(heads) : slopes;
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "] scale=" << scale << " S0=" << initial_state << " dSf=" << d_final_state
     << " Sf=" << final_state << " dS0=" << d_initial_state << " threads=" << num_threads;
  return os.str();
}

std::vector<float> slope_mix(int64_t heads) {
  const float pattern[] = {0.0f, 1e-4f, 1.0f, 0.0625f, 0.5f, 0.01f, 0.25f, 2e-3f};
  std::vector<float> out(heads);
  for (int64_t h = 0; h < heads; ++h) out[h] = pattern[h % 8];
  return out;
}

AttnCase::AttnCase(const AttnCaseConfig& cfg, uint64_t seed) : cfg_(cfg), seed_(seed) {
  if (!cfg_.varlen.empty()) {
    cfg_.batch = 1;
    int64_t total = 0;
    cu_seqlens_.push_back(0);
    for (int64_t len : cfg_.varlen) {
      seq_begin_.push_back(total);
      seq_len_.push_back(len);
      total += len;
      cu_seqlens_.push_back((int32_t)total);
    }
    cfg_.seqlen = total;
  } else {
    seq_len_.assign(cfg_.batch, cfg_.seqlen);
    seq_begin_.assign(cfg_.batch, 0);
  }
  slopes_ = cfg_.slopes.empty() ? slope_mix(cfg_.heads) : cfg_.slopes;

  const int64_t B = cfg_.batch, N = cfg_.seqlen, H = cfg_.heads, D = cfg_.dim_qk, E = cfg_.dim_v;
  const DType dt = cfg_.dtype;
  std::mt19937_64 rng(seed);
  q = StridedTensor(dt, cfg_.layout, B, N, H, D);
  k = StridedTensor(dt, cfg_.layout, B, N, H, D);
  v = StridedTensor(dt, cfg_.layout, B, N, H, E);
  q.fill_normal(rng, 1.0 / std::sqrt((double)D));
  k.fill_normal(rng, 1.0 / std::sqrt((double)D));
  v.fill_normal(rng, 1.0);
  if (cfg_.backward) {
    d_o = StridedTensor(dt, cfg_.layout, B, N, H, E);
    d_o.fill_normal(rng, 1.0);
  }
  const DType st = dt == DType::f64 ? DType::f64 : DType::f32;
  if (cfg_.initial_state) {
    initial_state = StateBuffer(st, state_numel());
    initial_state.fill_normal(rng, 1.0);
    initial_state64 = initial_state.converted(DType::f64);
  }
  if (cfg_.d_final_state) {
    d_final_state = StateBuffer(st, state_numel());
    d_final_state.fill_normal(rng, 1.0);
    d_final_state64 = d_final_state.converted(DType::f64);
  }
  q64 = q.converted(DType::f64);
  k64 = k.converted(DType::f64);
  v64 = v.converted(DType::f64);
  o = StridedTensor(dt, cfg_.layout, B, N, H, E);
  final_state = StateBuffer(st, state_numel());
  o64 = o.converted(DType::f64);
  final_state64 = final_state.converted(DType::f64);
  if (cfg_.backward) {
    d_o64 = d_o.converted(DType::f64);
    dq = StridedTensor(dt, cfg_.layout, B, N, H, D);
    dk = StridedTensor(dt, cfg_.layout, B, N, H, D);
    dv = StridedTensor(dt, cfg_.layout, B, N, H, E);
    d_initial_state = StateBuffer(st, state_numel());
    dq64 = dq.converted(DType::f64);
    dk64 = dk.converted(DType::f64);
    dv64 = dv.converted(DType::f64);
    d_initial_state64 = d_initial_state.converted(DType::f64);
  }
  poison_fast_outputs();
}

AttnShape AttnCase::shape() const {
  return {cfg_.batch, cfg_.seqlen, cfg_.heads, cfg_.dim_qk, cfg_.dim_v};
}

AttnForwardParams AttnCase::forward_params() {
  AttnForwardParams p;
  p.dtype = cfg_.dtype;
  p.shape = shape();
  p.q = q.view(), p.k = k.view(), p.v = v.view(), p.o = o.view();
  p.slopes = slopes_.data();
  p.scale = cfg_.scale;
  if (!cu_seqlens_.empty()) p.cu_seqlens = cu_seqlens_.data(), p.num_seqs = num_seqs(), p.max_seqlen = max_seq_len();
  p.initial_state = cfg_.initial_state ? initial_state.data() : nullptr;
  p.final_state = cfg_.final_state ? final_state.data() : nullptr;
  p.num_threads = cfg_.num_threads;
  return p;
}

AttnBackwardParams AttnCase::backward_params() {
  AttnBackwardParams p = attention_backward_params(forward_params());
  p.d_o = d_o.view();
  p.dq = dq.view(), p.dk = dk.view(), p.dv = dv.view();
  p.d_final_state = cfg_.d_final_state ? d_final_state.data() : nullptr;
  p.d_initial_state = cfg_.d_initial_state ? d_initial_state.data() : nullptr;
  return p;
}

AttnForwardParams AttnCase::reference_forward_params() {
  AttnForwardParams p = forward_params();
  p.dtype = DType::f64;
  p.q = q64.view(), p.k = k64.view(), p.v = v64.view(), p.o = o64.view();
  p.initial_state = cfg_.initial_state ? initial_state64.data() : nullptr;
  p.final_state = cfg_.final_state ? final_state64.data() : nullptr;
  return p;
}

AttnBackwardParams AttnCase::reference_backward_params() {
  AttnBackwardParams p = backward_params();
  p.dtype = DType::f64;
  p.q = q64.view(), p.k = k64.view(), p.v = v64.view(), p.d_o = d_o64.view();
  p.dq = dq64.view(), p.dk = dk64.view(), p.dv = dv64.view();
  p.initial_state = cfg_.initial_state ? initial_state64.data() : nullptr;
  p.d_final_state = cfg_.d_final_state ? d_final_state64.data() : nullptr;
  p.d_initial_state = cfg_.d_initial_state ? d_initial_state64.data() : nullptr;
  return p;
}

AttnDecodeParams AttnCase::decode_params(int64_t t, void* state) {
  AttnDecodeParams p;
  p.dtype = cfg_.dtype;
  p.batch = cfg_.batch, p.heads = cfg_.heads, p.dim_qk = cfg_.dim_qk, p.dim_v = cfg_.dim_v;
  const int64_t es = dtype_size(cfg_.dtype);
  auto row = [&](StridedTensor& x) {
    return SeqTensor(static_cast<unsigned char*>(x.buf.data()) + x.offset(0, t, 0, 0) * es,
                     x.stride_batch, 0, x.stride_head);
  };
  p.q = row(q), p.k = row(k), p.v = row(v), p.o = row(o);
  p.state = state;
  p.slopes = slopes_.data();
  p.scale = cfg_.scale;
  p.num_threads = cfg_.num_threads;
  return p;
}

void AttnCase::poison_fast_outputs() {
  o.poison(), dq.poison(), dk.poison(), dv.poison();
  final_state.poison(), d_initial_state.poison();
}

void AttnCase::run_forward() {
  poison_fast_outputs();
  attention_forward(forward_params());
}

void AttnCase::run_backward() {
  poison_fast_outputs();
  attention_backward(backward_params());
}

void AttnCase::run_reference_forward() {
  o64.poison(), final_state64.poison();
  reference::attention_forward(reference_forward_params());
}

void AttnCase::run_reference_forward_recurrent() {
  o64.poison(), final_state64.poison();
  reference::attention_forward_recurrent(reference_forward_params());
}

void AttnCase::run_reference_backward() {
  dq64.poison(), dk64.poison(), dv64.poison(), d_initial_state64.poison();
  reference::attention_backward(reference_backward_params());
}

std::vector<double> AttnCase::head_rows(const StridedTensor& t, int64_t s, int64_t h) const {
  const int64_t len = seq_len_[s];
  std::vector<double> out(len * t.dim);
  for (int64_t i = 0; i < len; ++i)
    for (int64_t d = 0; d < t.dim; ++d)
      out[i * t.dim + d] = t.buf.get(t.offset(seq_batch(s), seq_begin_[s] + i, h, d));
  return out;
}

std::vector<double> AttnCase::state_block(const StateBuffer& st, int64_t s, int64_t h) const {
  const int64_t de = cfg_.dim_qk * cfg_.dim_v;
  std::vector<double> out(de);
  for (int64_t i = 0; i < de; ++i) out[i] = st.buf.get((s * cfg_.heads + h) * de + i);
  return out;
}

std::vector<double> AttnCase::canonical(const StridedTensor& t) const {
  const int64_t tokens = std::accumulate(seq_len_.begin(), seq_len_.end(), (int64_t)0);
  std::vector<double> out((size_t)(tokens * cfg_.heads * t.dim));
  size_t at = 0;
  for (int64_t s = 0; s < num_seqs(); ++s)
    for (int64_t h = 0; h < cfg_.heads; ++h)
      for (int64_t i = 0; i < seq_len_[s]; ++i)
        for (int64_t d = 0; d < t.dim; ++d)
          out[at++] = t.buf.get(t.offset(seq_batch(s), seq_begin_[s] + i, h, d));
  return out;
}

Outputs AttnCase::fast_forward_outputs() const {
  Outputs out{{"o", canonical(o)}};
  if (cfg_.final_state) out["final_state"] = final_state.values();
  return out;
}

Outputs AttnCase::fast_backward_outputs() const {
  Outputs out{{"dq", canonical(dq)}, {"dk", canonical(dk)}, {"dv", canonical(dv)}};
  if (cfg_.d_initial_state) out["d_initial_state"] = d_initial_state.values();
  return out;
}

Outputs AttnCase::reference_forward_outputs() const {
  Outputs out{{"o", canonical(o64)}};
  if (cfg_.final_state) out["final_state"] = final_state64.values();
  return out;
}

Outputs AttnCase::reference_backward_outputs() const {
  Outputs out{{"dq", canonical(dq64)}, {"dk", canonical(dk64)}, {"dv", canonical(dv64)}};
  if (cfg_.d_initial_state) out["d_initial_state"] = d_initial_state64.values();
  return out;
}

int64_t AttnCase::block_size(const std::string& output, int64_t s) const {
  if (output == "o" || output == "dv") return seq_len_[s] * cfg_.dim_v;
  if (output == "dq" || output == "dk") return seq_len_[s] * cfg_.dim_qk;
  return cfg_.dim_qk * cfg_.dim_v;  // states
}

std::vector<Measured> AttnCase::compare(const Outputs& out, const Outputs& ref) const {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<Measured> result;
  for (const auto& [name, values] : out) {
    Measured m{name, inf, inf};
    const auto it = ref.find(name);
    if (it != ref.end() && it->second.size() == values.size()) {
      const std::vector<double>& r = it->second;
      m.rel = rel_error(values, r);
      m.worst_block = 0;
      // A block's floor: a tenth of its share of the tensor's norm, ‖ref‖·sqrt(n/size)/10.
      double ref_sq = 0;
      for (double x : r) ref_sq += x * x;
      const double share = r.empty() ? 0 : std::sqrt(ref_sq / (double)r.size()) / 10;
      size_t at = 0;
      for (int64_t s = 0; s < num_seqs() && at <= values.size(); ++s)
        for (int64_t h = 0; h < cfg_.heads; ++h) {
          const size_t n = (size_t)block_size(name, s);
          if (n == 0 || at + n > values.size()) {
            at += n;
            continue;
          }
          m.worst_block = std::max(m.worst_block, block_error(&values[at], &r[at], n, share));
          at += n;
        }
      if (at != values.size()) m.worst_block = inf;
    }
    result.push_back(m);
  }
  return result;
}

std::string AttnCase::check_gaps() const {
  auto check_tensor = [](const StridedTensor& t, const char* name) -> std::string {
    const std::vector<bool> cov = t.covered();
    const double sentinel = sentinel_in(t.dtype());
    for (int64_t i = 0; i < t.buf.numel; ++i)
      if (!cov[i] && !(t.buf.get(i) == sentinel))
        return detail::cat(name, ": gap element ", i, " of ", t.buf.numel, " was overwritten (",
                           t.buf.get(i), ")");
    return "";
  };
  auto check_state = [](const StateBuffer& st, const char* name) -> std::string {
    const double sentinel = sentinel_in(st.buf.dtype);
    for (int64_t i = st.numel; i < st.buf.numel; ++i)
      if (!(st.buf.get(i) == sentinel))
        return detail::cat(name, ": guard element ", i - st.numel, " after the ", st.numel,
                           " state elements was overwritten (", st.buf.get(i), ")");
    return "";
  };
  for (const std::string& msg :
       {check_tensor(o, "o"), check_tensor(dq, "dq"), check_tensor(dk, "dk"),
        check_tensor(dv, "dv"), check_state(final_state, "final_state"),
        check_state(d_initial_state, "d_initial_state")})
    if (!msg.empty()) return msg;
  return "";
}

}  // namespace tnl::testing
