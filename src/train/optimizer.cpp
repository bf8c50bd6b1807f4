// optimizer.cpp: see optimizer.h.
#include "train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "model/io/safetensors.h"
#include "tnl/error.h"

namespace tnl::train {
namespace {

constexpr const char* kFormat = "tnl-adamw-1";
constexpr int64_t kNormBlock = 1 << 14;  // floats per partial sum of the norm

std::string real_text(double x) {
  char s[40];
  std::snprintf(s, sizeof s, "%.17g", x);
  return s;
}

const std::string& meta(const io::SafetensorsFile& f, const std::string& key) {
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end())
    throw Error(detail::cat(f.path(), ": not an AdamW state (no '", key, "' in the metadata)"));
  return it->second;
}

double meta_real(const io::SafetensorsFile& f, const std::string& key) {
  const std::string& s = meta(f, key);
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0')
    throw Error(detail::cat(f.path(), ": metadata '", key, "' is not a number: '", s, "'"));
  return x;
}

}  // namespace

void validate(const AdamWConfig& c) {
  const char* fn = "tnl::train::AdamW";
  TNL_ARG_CHECK(c.beta1 >= 0 && c.beta1 < 1, fn, "beta1", "expected a value in [0, 1), got ", c.beta1);
  TNL_ARG_CHECK(c.beta2 >= 0 && c.beta2 < 1, fn, "beta2", "expected a value in [0, 1), got ", c.beta2);
  TNL_ARG_CHECK(c.eps > 0 && std::isfinite(c.eps), fn, "eps", "expected > 0, got ", c.eps);
  TNL_ARG_CHECK(c.weight_decay >= 0 && std::isfinite(c.weight_decay), fn, "weight_decay",
                "expected >= 0, got ", c.weight_decay);
}

AdamW::AdamW(int64_t num_params, AdamWConfig cfg) : cfg_(cfg) {
  TNL_ARG_CHECK(num_params >= 0, "tnl::train::AdamW", "num_params", "expected >= 0, got ", num_params);
  validate(cfg_);
  m_.assign(num_params, 0.0f);
  v_.assign(num_params, 0.0f);
}

void AdamW::step(float* params, const float* grads, double lr, const std::vector<ParamRange>& ranges) {
  const char* fn = "tnl::train::AdamW::step";
  const int64_t n = num_params();
  TNL_ARG_CHECK(std::isfinite(lr) && lr >= 0, fn, "lr", "expected a finite value >= 0, got ", lr);
  TNL_ARG_CHECK(n == 0 || (params && grads), fn, "params", "null pointer");
  int64_t expect = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    TNL_ARG_CHECK(ranges[i].offset == expect && ranges[i].numel >= 0, fn, "ranges",
                  "expected ranges tiling [0, ", n, ") in order; range ", i, " is [", ranges[i].offset,
                  ", +", ranges[i].numel, ") where offset ", expect, " was expected");
    expect += ranges[i].numel;
  }
  TNL_ARG_CHECK(expect == n, fn, "ranges", "expected ranges covering ", n, " parameters, they cover ", expect);

  ++step_;
  const float one_minus_b1 = (float)(1.0 - cfg_.beta1), b2 = (float)cfg_.beta2;
  const float one_minus_b2 = (float)(1.0 - cfg_.beta2);
  const double bc1 = 1.0 - std::pow(cfg_.beta1, (double)step_);
  const double bc2 = 1.0 - std::pow(cfg_.beta2, (double)step_);
  const float step_size = (float)(lr / bc1);
  const float bc2_sqrt = (float)std::sqrt(bc2);
  const float eps = (float)cfg_.eps;
  float* m = m_.data();
  float* v = v_.data();
  for (const ParamRange& r : ranges) {
    const float decay = r.weight_decay ? (float)(1.0 - lr * cfg_.weight_decay) : 1.0f;
    const int64_t end = r.offset + r.numel;
#pragma omp parallel for schedule(static)
    for (int64_t i = r.offset; i < end; ++i) {
      const float g = grads[i];
      const float p = params[i] * decay;
      m[i] = m[i] + one_minus_b1 * (g - m[i]);  // lerp, as torch's exp_avg.lerp_(grad, 1 - beta1)
      v[i] = v[i] * b2 + one_minus_b2 * g * g;
      const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      params[i] = p - step_size * (m[i] / denom);
    }
  }
}

void AdamW::set_state(int64_t steps, std::vector<float> m, std::vector<float> v) {
  const char* fn = "tnl::train::AdamW::set_state";
  TNL_ARG_CHECK(steps >= 0, fn, "steps", "expected >= 0, got ", steps);
  TNL_ARG_CHECK((int64_t)m.size() == num_params() && (int64_t)v.size() == num_params(), fn, "m",
                "expected ", num_params(), " values in m and v, got ", m.size(), " and ", v.size());
  step_ = steps;
  m_.swap(m);
  v_.swap(v);
}

void AdamW::save(const std::string& path) const {
  const int64_t n = num_params();
  std::vector<io::TensorToWrite> t(2);
  t[0] = {"exp_avg", "F32", {n}, m_.data(), n * 4};
  t[1] = {"exp_avg_sq", "F32", {n}, v_.data(), n * 4};
  const std::map<std::string, std::string> md = {
      {"format", kFormat},
      {"step", std::to_string(step_)},
      {"num_params", std::to_string(n)},
      {"beta1", real_text(cfg_.beta1)},
      {"beta2", real_text(cfg_.beta2)},
      {"eps", real_text(cfg_.eps)},
      {"weight_decay", real_text(cfg_.weight_decay)}};
  io::write_safetensors(path, t, md);
}

void AdamW::load(const std::string& path) {
  const io::SafetensorsFile f(path);
  if (meta(f, "format") != kFormat)
    throw Error(detail::cat(path, ": not an AdamW state (format '", meta(f, "format"), "', expected '", kFormat, "')"));
  const int64_t n = num_params();
  const double stored_n = meta_real(f, "num_params");
  if (stored_n != (double)n)
    throw Error(detail::cat(path, ": AdamW state for ", (int64_t)stored_n, " parameters, this model has ", n));
  const io::TensorEntry& em = f.at("exp_avg");
  const io::TensorEntry& ev = f.at("exp_avg_sq");
  for (const io::TensorEntry* e : {&em, &ev})
    if (e->dtype != "F32" || e->numel() != n)
      throw Error(detail::cat(path, ": tensor '", e->name, "' is ", e->dtype, " with ", e->numel(),
                              " values, expected F32 with ", n));
  AdamWConfig c;
  c.beta1 = meta_real(f, "beta1");
  c.beta2 = meta_real(f, "beta2");
  c.eps = meta_real(f, "eps");
  c.weight_decay = meta_real(f, "weight_decay");
  validate(c);
  const double step = meta_real(f, "step");
  if (!(step >= 0) || step != std::floor(step)) throw Error(detail::cat(path, ": bad step count ", step));
  std::vector<float> m(n), v(n);
  if (n > 0) {
    std::memcpy(m.data(), em.data, n * 4);
    std::memcpy(v.data(), ev.data, n * 4);
  }
  cfg_ = c;
  step_ = (int64_t)step;
  m_.swap(m);
  v_.swap(v);
}

double global_grad_norm(const float* g, int64_t n) {
  TNL_ARG_CHECK(n >= 0 && (n == 0 || g), "tnl::train::global_grad_norm", "g", "expected ", n, " floats");
  const int64_t blocks = (n + kNormBlock - 1) / kNormBlock;
  std::vector<double> partial(blocks, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * kNormBlock, hi = std::min(n, lo + kNormBlock);
    double s = 0;
    for (int64_t i = lo; i < hi; ++i) s += (double)g[i] * (double)g[i];
    partial[b] = s;
  }
  double total = 0;
  for (double s : partial) total += s;  // in block order: the same bits whatever the threads
  return std::sqrt(total);
}

double clip_grad_norm(float* g, int64_t n, double max_norm) {
  TNL_ARG_CHECK(max_norm > 0, "tnl::train::clip_grad_norm", "max_norm", "expected > 0, got ", max_norm);
  const double norm = global_grad_norm(g, n);
  if (!std::isfinite(norm)) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float c = (float)coef;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) g[i] *= c;
  }
  return norm;
}

}  // namespace tnl::train
