// bench_attn.cpp: `tnl bench attn`. Validates the fast path against the fp64 reference on a small
// case, measures the machine's floor, then times forward, forward+backward and the decode step
// over a range of sequence lengths and prints one markdown table row per configuration.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "args.h"
#include "backends/cpu/tensor_access.h"
#include "buffer.h"
#include "floor.h"
#include "tnl/attention.h"
#include "tnl/device.h"

namespace tnl::cli {
namespace {

constexpr int64_t kBlock = 64;  // C in the FLOP count of spec §5

struct Config {
  Device device = Device::cpu;
  DType dtype = DType::f32;
  Layout layout = Layout::bnhd;
  int64_t batch = 1, heads = 8, dim_qk = 64, dim_v = 64;
  std::vector<int64_t> seqlens;
  bool fwd = true, fwdbwd = true, decode = true, validate = true;
  bool varlen = false;  // the batch packed as one varlen batch (cu_seqlens)
  bool skew = false;    // varlen: the first sequence half of the tokens, the others sharing the rest
  int reps = 5;
  int threads = 0;
  int64_t decode_batch = 8192;
  Intermediates intermediates = Intermediates::compensated;  // CUDA, fp16/bf16
};

// Bytes and FLOPs per token and head, spec §5.
double fwd_flops(const Config& c) {
  return 2.0 * kBlock * c.dim_qk + 2.0 * kBlock * c.dim_v + 4.0 * c.dim_qk * c.dim_v;
}
double fwd_bytes(const Config& c) {
  return (2.0 * c.dim_qk + 2.0 * c.dim_v) * (double)dtype_size(c.dtype);
}
double bwd_bytes(const Config& c) {
  return (4.0 * c.dim_qk + 3.0 * c.dim_v) * (double)dtype_size(c.dtype);
}

std::string human_bytes(double b) {
  char s[32];
  if (b >= 1 << 30) std::snprintf(s, sizeof s, "%.1f GiB", b / (1 << 30));
  else std::snprintf(s, sizeof s, "%.1f MiB", b / (1 << 20));
  return s;
}

std::string human_count(double n) {
  char s[32];
  if (n >= 1e9) std::snprintf(s, sizeof s, "%.2fG", n / 1e9);
  else if (n >= 1e6) std::snprintf(s, sizeof s, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(s, sizeof s, "%.1fK", n / 1e3);
  else std::snprintf(s, sizeof s, "%.0f", n);
  return s;
}

// A row's mode: `base`, with " varlen" or " varlen-skew" for packed batches.
std::string mode_label(const Config& c, const std::string& base) {
  return base + (c.skew ? " varlen-skew" : c.varlen ? " varlen" : "");
}

std::string seqlen_label(int64_t n) {
  char s[32];
  if (n % (1 << 20) == 0) std::snprintf(s, sizeof s, "%lldM", (long long)(n >> 20));
  else if (n % 1024 == 0) std::snprintf(s, sizeof s, "%lldK", (long long)(n >> 10));
  else std::snprintf(s, sizeof s, "%lld", (long long)n);
  return s;
}

// How the op sees a batch of B sequences of N tokens: (B, N) tensors, or with --varlen one packed
// batch (1, T = B·N) with cu_seqlens on the device (and on the host for the reference); with
// --varlen-skew the same T tokens, the first sequence ⌈T/2⌉ of them and the other B - 1 the rest
// in equal parts (the last one the remainder).
struct Packing {
  int64_t batch, seqlen, num_seqs;
  int64_t max_seqlen = 0;  // the longest sequence (the hint a varlen caller passes)
  std::vector<int32_t> cu;  // host offsets, varlen only
  Buffer cu_dev;
  Packing(const Config& c, int64_t B, int64_t N)
      : batch(c.varlen ? 1 : B), seqlen(c.varlen ? B * N : N), num_seqs(c.varlen ? B : 0) {
    if (!c.varlen) return;
    const int64_t T = B * N;
    if (c.skew && B > 1) {
      const int64_t first = (T + 1) / 2, each = (T - first) / (B - 1);
      cu.push_back(0);
      for (int64_t s = 1; s < B; ++s) cu.push_back((int32_t)(first + (s - 1) * each));
      cu.push_back((int32_t)T);
    } else {
      for (int64_t s = 0; s <= B; ++s) cu.push_back((int32_t)(s * N));
    }
    for (size_t s = 0; s + 1 < cu.size(); ++s) max_seqlen = std::max<int64_t>(max_seqlen, cu[s + 1] - cu[s]);
    cu_dev = Buffer(c.device, cu.size() * sizeof(int32_t));
    cu_dev.upload(cu.data(), cu.size() * sizeof(int32_t));
  }
  const int32_t* offsets(bool host) const {
    if (cu.empty()) return nullptr;
    return host ? cu.data() : static_cast<const int32_t*>(cu_dev.data());
  }
};

// ---- validation: fast path vs fp64 reference on one small case, forward, backward, decode ----

std::vector<double> download_f64(const Buffer& b, DType dt, int64_t n) {
  std::vector<unsigned char> host(n * dtype_size(dt));
  b.download(host.data(), host.size());
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = cpu::load_as_double(host.data(), dt, i);
  return out;
}

double rel_err(const std::vector<double>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

// A tensor both on the benchmark device (in cfg.dtype or fp32 for states) and as fp64 on the host.
struct Twin {
  DType dt;
  int64_t n;
  Buffer dev;
  std::vector<double> f64;
  Twin(Device d, DType t, int64_t count, double stddev, uint64_t seed)
      : dt(t), n(count), dev(d, count * dtype_size(t)) {
    if (stddev > 0) {
      dev.fill_normal(t, n, stddev, seed);
      f64 = download_f64(dev, t, n);  // exactly the rounded values the fast path sees
    } else {
      dev.fill_nan(t, n);
      f64.assign(n, 0.0);
    }
  }
};

bool validate(const Config& c) {
  const int64_t B = 2, N = 3 * kBlock + 7, H = std::min<int64_t>(c.heads, 3);
  const int64_t D = c.dim_qk, E = c.dim_v, S = B * H * D * E;
  const Device dev = c.device;
  const DType dt = c.dtype;
  Twin q(dev, dt, B * N * H * D, 1 / std::sqrt((double)D), 11);
  Twin k(dev, dt, B * N * H * D, 1 / std::sqrt((double)D), 12);
  Twin v(dev, dt, B * N * H * E, 1.0, 13), d_o(dev, dt, B * N * H * E, 1.0, 14);
  Twin s0(dev, DType::f32, S, 1.0, 15), dsf(dev, DType::f32, S, 1.0, 16);
  Twin o(dev, dt, B * N * H * E, 0, 0), sf(dev, DType::f32, S, 0, 0);
  Twin dq(dev, dt, B * N * H * D, 0, 0), dk(dev, dt, B * N * H * D, 0, 0);
  Twin dv(dev, dt, B * N * H * E, 0, 0), ds0(dev, DType::f32, S, 0, 0);
  std::vector<float> slopes = slopes_transnormer(H, 0, 2);
  slopes[0] = 0.0f;  // also plain causal linear attention
  const Packing pk(c, B, N);

  auto view = [&](Twin& t, int64_t dim, bool as_f64, std::vector<double>& store) {
    return seq_tensor(as_f64 ? (void*)store.data() : t.dev.data(), c.layout, pk.batch, pk.seqlen, H, dim);
  };
  // Run once on the device in dt, once on the host in f64 (outputs into *_ref vectors).
  std::vector<double> o_ref(o.n), sf_ref(S), dq_ref(dq.n), dk_ref(dk.n), dv_ref(dv.n), ds0_ref(S);
  for (int pass = 0; pass < 2; ++pass) {
    const bool ref = pass == 1;
    AttnForwardParams f;
    f.dtype = ref ? DType::f64 : dt;
    f.device = ref ? Device::cpu : dev;
    f.shape = {pk.batch, pk.seqlen, H, D, E};
    f.cu_seqlens = pk.offsets(ref);
    f.num_seqs = pk.num_seqs;
    f.max_seqlen = pk.max_seqlen;
    f.q = view(q, D, ref, q.f64);
    f.k = view(k, D, ref, k.f64);
    f.v = view(v, E, ref, v.f64);
    f.o = view(o, E, ref, o_ref);
    f.slopes = slopes.data();
    f.scale = 0.75f;
    f.initial_state = ref ? (const void*)s0.f64.data() : s0.dev.data();
    f.final_state = ref ? (void*)sf_ref.data() : sf.dev.data();
    f.num_threads = c.threads;
    if (!ref) f.intermediates = c.intermediates;
    AttnBackwardParams b = attention_backward_params(f);
    b.d_o = view(d_o, E, ref, d_o.f64);
    b.dq = view(dq, D, ref, dq_ref);
    b.dk = view(dk, D, ref, dk_ref);
    b.dv = view(dv, E, ref, dv_ref);
    b.d_final_state = ref ? (const void*)dsf.f64.data() : dsf.dev.data();
    b.d_initial_state = ref ? (void*)ds0_ref.data() : ds0.dev.data();
    if (ref) {
      reference::attention_forward(f);
      reference::attention_backward(b);
    } else {
      attention_forward(f);
      attention_backward(b);
    }
  }
  synchronize(dev);
  const double bar = dt == DType::f32 ? (dev == Device::cpu ? 1e-5 : 1e-4) : 1e-2;
  struct Row { const char* name; double err; };
  const Row rows[] = {
      {"o", rel_err(download_f64(o.dev, dt, o.n), o_ref)},
      {"final_state", rel_err(download_f64(sf.dev, DType::f32, S), sf_ref)},
      {"dq", rel_err(download_f64(dq.dev, dt, dq.n), dq_ref)},
      {"dk", rel_err(download_f64(dk.dev, dt, dk.n), dk_ref)},
      {"dv", rel_err(download_f64(dv.dev, dt, dv.n), dv_ref)},
      {"d_initial_state", rel_err(download_f64(ds0.dev, DType::f32, S), ds0_ref)},
  };
  bool ok = true;
  std::printf("validation vs fp64 reference (B=%lld N=%lld H=%lld D=%lld E=%lld%s, bar %.0e):",
              (long long)B, (long long)N, (long long)H, (long long)D, (long long)E,
              c.varlen ? ", varlen" : "", bar);
  for (const Row& r : rows) {
    std::printf(" %s %.1e", r.name, r.err);
    ok = ok && r.err <= bar;
  }
  std::printf(" -> %s\n", ok ? "ok" : "FAILED");
  return ok;
}

// ---- timing ----

struct Timing {
  double median_ms;
  int reps;
};

template <class F>
Timing time_median(Device dev, int max_reps, F&& run) {
  Timer t(dev);
  t.start();
  run();  // warm-up (also tells how long one run takes)
  const double first = t.stop_ms();
  // Keep each configuration under ~20 s, with at least 3 timed runs.
  const int reps = std::max(3, std::min(max_reps, (int)(20000.0 / std::max(first, 1e-3))));
  std::vector<double> ms, host_ms;  // the events' time, and the host's time inside run()
  for (int r = 0; r < reps; ++r) {
    t.start();
    const auto h0 = std::chrono::steady_clock::now();
    run();
    host_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - h0).count());
    ms.push_back(t.stop_ms());
  }
  const char* verbose = std::getenv("TNL_BENCH_VERBOSE");
  if (verbose && verbose[0] == '1') {  // every run, to judge the spread and the host's share
    std::fprintf(stderr, "    runs, ms:");
    for (double x : ms) std::fprintf(stderr, " %.3f", x);
    std::fprintf(stderr, "; host ms a call:");
    for (double x : host_ms) std::fprintf(stderr, " %.3f", x);
    // The same calls queued back to back between two events (the GPU ahead of the host, as in
    // a training loop): the time a call then, the host's preparation hidden behind the GPU's work.
    t.start();
    for (int r = 0; r < reps; ++r) run();
    std::fprintf(stderr, "; queued, ms a call: %.3f\n", t.stop_ms() / reps);
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], reps};
}

struct Row {
  std::string mode, n_label;
  double ms, tokens, bytes, flops;
  int reps;
};

void print_header(const Config& c) {
  const bool gpu = c.device == Device::cuda;
  std::printf("\n| mode | B | H | N | D | E | dtype | ms | tokens/s | GB/s | %s | %% of floor | bound | runs |\n",
              gpu ? "TFLOP/s" : "GFLOP/s");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

void print_row(const Config& c, const Floor& fl, const Row& r, int64_t batch) {
  bool mem_bound = false;
  const double floor_ms = fl.floor_ms(r.bytes, r.flops, &mem_bound);
  const bool gpu = c.device == Device::cuda;
  const double flop_rate = r.flops / (r.ms * 1e-3) / (gpu ? 1e12 : 1e9);
  std::printf("| %s | %lld | %lld | %s | %lld | %lld | %s | %.3f | %s | %.1f | %.1f | %.0f%% | %s | %d |\n",
              r.mode.c_str(), (long long)batch, (long long)c.heads, r.n_label.c_str(),
              (long long)c.dim_qk, (long long)c.dim_v, dtype_name(c.dtype), r.ms,
              human_count(r.tokens / (r.ms * 1e-3)).c_str(), r.bytes / (r.ms * 1e-3) / 1e9,
              flop_rate, 100.0 * floor_ms / r.ms, mem_bound ? "memory" : "compute", r.reps);
  std::fflush(stdout);
}

void bench_seqlen(const Config& c, const Floor& fl, int64_t N) {
  const Device dev = c.device;
  const int64_t B = c.batch, H = c.heads, D = c.dim_qk, E = c.dim_v;
  const int64_t nqk = B * N * H * D, nv = B * N * H * E;
  const int64_t es = dtype_size(c.dtype);
  const double need = (double)(c.fwdbwd ? 4 * nqk + 4 * nv : 2 * nqk + 2 * nv) * es;
  if (need * 1.05 > (double)free_memory(dev)) {
    std::printf("| skipped N=%s: needs %s, %s free |\n", seqlen_label(N).c_str(),
                human_bytes(need).c_str(), human_bytes((double)free_memory(dev)).c_str());
    return;
  }
  std::fprintf(stderr, "  timing N=%s (%s of tensors)...\n", seqlen_label(N).c_str(),
               human_bytes(need).c_str());
  const uint64_t seed = (uint64_t)N * 7919 + 17;  // fresh values per size
  Buffer q(dev, nqk * es), k(dev, nqk * es), v(dev, nv * es), o(dev, nv * es);
  q.fill_normal(c.dtype, nqk, 1 / std::sqrt((double)D), seed);
  k.fill_normal(c.dtype, nqk, 1 / std::sqrt((double)D), seed + 1);
  v.fill_normal(c.dtype, nv, 1.0, seed + 2);
  const std::vector<float> slopes = slopes_transnormer(H, 0, 24);
  const Packing pk(c, B, N);
  const int64_t vb = pk.batch, vn = pk.seqlen;  // the views' batch and sequence sizes
  AttnForwardParams f;
  f.dtype = c.dtype;
  f.device = dev;
  f.shape = {vb, vn, H, D, E};
  f.cu_seqlens = pk.offsets(false);
  f.num_seqs = pk.num_seqs;
  f.max_seqlen = pk.max_seqlen;
  f.q = seq_tensor(q.data(), c.layout, vb, vn, H, D);
  f.k = seq_tensor(k.data(), c.layout, vb, vn, H, D);
  f.v = seq_tensor(v.data(), c.layout, vb, vn, H, E);
  f.o = seq_tensor(o.data(), c.layout, vb, vn, H, E);
  f.slopes = slopes.data();
  f.num_threads = c.threads;
  f.intermediates = c.intermediates;
  const double tokens = (double)B * N;
  const double fl_fwd = fwd_flops(c) * tokens * H, by_fwd = fwd_bytes(c) * tokens * H;
  if (c.fwd) {
    const Timing t = time_median(dev, c.reps, [&] { attention_forward(f); });
    print_row(c, fl, {mode_label(c, "fwd"), seqlen_label(N), t.median_ms, tokens, by_fwd, fl_fwd, t.reps}, B);
  }
  if (c.fwdbwd) {
    Buffer d_o(dev, nv * es), dq(dev, nqk * es), dk(dev, nqk * es), dv(dev, nv * es);
    d_o.fill_normal(c.dtype, nv, 1.0, seed + 3);
    // As training does: the forward keeps its segment starts for the backward.
    AttnForwardParams ft = f;
    const size_t starts_bytes = attention_segment_starts_bytes(f);
    Buffer starts(dev, std::max<size_t>(starts_bytes, 16));
    if (starts_bytes > 0) {
      ft.segment_starts = starts.data();
      ft.segment_starts_bytes = starts_bytes;
    }
    AttnBackwardParams b = attention_backward_params(ft);
    b.d_o = seq_tensor(d_o.data(), c.layout, vb, vn, H, E);
    b.dq = seq_tensor(dq.data(), c.layout, vb, vn, H, D);
    b.dk = seq_tensor(dk.data(), c.layout, vb, vn, H, D);
    b.dv = seq_tensor(dv.data(), c.layout, vb, vn, H, E);
    const Timing t = time_median(dev, c.reps, [&] {
      attention_forward(ft);
      attention_backward(b);
    });
    const double bytes = by_fwd + bwd_bytes(c) * tokens * H;
    print_row(c, fl, {mode_label(c, "fwd+bwd"), seqlen_label(N), t.median_ms, tokens, bytes,
                      3.5 * fl_fwd, t.reps}, B);
  }
}

void bench_decode(const Config& c, const Floor& fl) {
  const Device dev = c.device;
  const int64_t B = c.decode_batch, H = c.heads, D = c.dim_qk, E = c.dim_v;
  const int64_t es = dtype_size(c.dtype);
  Buffer q(dev, B * H * D * es), k(dev, B * H * D * es), v(dev, B * H * E * es),
      o(dev, B * H * E * es), state(dev, B * H * D * E * 4);
  q.fill_normal(c.dtype, B * H * D, 1 / std::sqrt((double)D), 21);
  k.fill_normal(c.dtype, B * H * D, 1 / std::sqrt((double)D), 22);
  v.fill_normal(c.dtype, B * H * E, 1.0, 23);
  state.fill_normal(DType::f32, B * H * D * E, 1.0, 24);
  const std::vector<float> slopes = slopes_transnormer(H, 0, 24);
  AttnDecodeParams p;
  p.dtype = c.dtype;
  p.device = dev;
  p.batch = B;
  p.heads = H;
  p.dim_qk = D;
  p.dim_v = E;
  p.q = seq_tensor(q.data(), Layout::bnhd, B, 1, H, D);
  p.k = seq_tensor(k.data(), Layout::bnhd, B, 1, H, D);
  p.v = seq_tensor(v.data(), Layout::bnhd, B, 1, H, E);
  p.o = seq_tensor(o.data(), Layout::bnhd, B, 1, H, E);
  p.state = state.data();
  p.slopes = slopes.data();
  p.num_threads = c.threads;
  const int steps = 10;
  const Timing t = time_median(dev, c.reps, [&] {
    for (int s = 0; s < steps; ++s) attention_decode(p);
  });
  const double per_step = t.median_ms / steps;
  const double bytes = (double)B * H * (2.0 * D * E * 4 + (2.0 * D + 2.0 * E) * es);
  const double flops = (double)B * H * 4.0 * D * E;
  print_row(c, fl, {"decode", "1 step", per_step, (double)B, bytes, flops, t.reps}, B);
}

}  // namespace

int bench_attn(int argc, char** argv) {
  const Args a(argc, argv,
               {"device", "dtype", "batch", "heads", "dim", "dim-v", "seqlens", "layout", "mode",
                "reps", "threads", "decode-batch", "intermediates"},
               {"no-decode", "no-validate", "hugepages", "varlen", "varlen-skew"});
  Config c;
  const std::string device = a.str("device", "cpu");
  if (device == "cuda") c.device = Device::cuda;
  else if (device != "cpu")
    throw ArgumentError("flag '--device': expected cpu or cuda, got '" + device + "'");
  if (c.device == Device::cuda && cuda_device_count() == 0)
    throw ArgumentError(cuda_built() ? "flag '--device': cuda requested, but no CUDA device is visible"
                                     : "flag '--device': cuda requested, but this build has no CUDA backend");
  const bool gpu = c.device == Device::cuda;
  const std::string dtype = a.str("dtype", gpu ? "bf16" : "f32");
  if (!parse_dtype(dtype, &c.dtype) || c.dtype == DType::f64)
    throw ArgumentError("flag '--dtype': expected f32, f16 or bf16, got '" + dtype + "'");
  c.batch = a.integer("batch", gpu ? 4 : 1);
  c.heads = a.integer("heads", gpu ? 32 : 8);
  c.dim_qk = a.integer("dim", gpu ? 128 : 64);
  c.dim_v = a.integer("dim-v", c.dim_qk);
  c.seqlens = a.int_list("seqlens", gpu ? std::vector<int64_t>{1024, 4096, 32768}
                                        : std::vector<int64_t>{1024, 4096, 16384, 65536});
  const std::string layout = a.str("layout", "bnhd");
  if (layout == "bhnd") c.layout = Layout::bhnd;
  else if (layout != "bnhd")
    throw ArgumentError("flag '--layout': expected bnhd or bhnd, got '" + layout + "'");
  const std::string mode = a.str("mode", "both");
  if (mode != "fwd" && mode != "fwdbwd" && mode != "both")
    throw ArgumentError("flag '--mode': expected fwd, fwdbwd or both, got '" + mode + "'");
  c.fwd = mode != "fwdbwd";
  c.fwdbwd = mode != "fwd";
  c.reps = (int)a.integer("reps", 7);
  c.threads = (int)a.integer("threads", 0);
  // CPU: 8192 sequences of H=8, D=E=64 make a 1 GiB state, which streams from DRAM like the
  // 1 GiB copy that sets the floor (a smaller one would sit in this CPU's large L3).
  c.decode_batch = a.integer("decode-batch", gpu ? 64 : 8192);
  c.decode = !a.flag("no-decode");
  c.validate = !a.flag("no-validate");
  const std::string inter = a.str("intermediates", "compensated");
  if (inter == "rounded") c.intermediates = Intermediates::rounded;
  else if (inter != "compensated")
    throw ArgumentError("flag '--intermediates': expected compensated or rounded, got '" + inter + "'");
  set_cpu_hugepages(a.flag("hugepages"));
  c.skew = a.flag("varlen-skew");
  c.varlen = a.flag("varlen") || c.skew;
  for (int64_t n : c.seqlens) {
    if (n < 1) throw ArgumentError("flag '--seqlens': expected lengths >= 1");
    if (c.varlen && c.batch * n >= (int64_t{1} << 31))
      throw ArgumentError("flag '--varlen': expected batch x seqlen < 2^31 (int32 cu_seqlens), got " +
                          std::to_string(c.batch) + " x " + std::to_string(n));
  }
  if (c.reps < 1) throw ArgumentError("flag '--reps': expected >= 1");

  std::printf("tnl bench attn: device %s", device_name(c.device));
  if (gpu) {
    const CudaDeviceInfo info = cuda_device_info(0);
    std::printf(" (%s, %d SMs)", info.name.c_str(), info.multiprocessors);
  } else {
    std::printf(" (%d threads)", c.threads > 0 ? c.threads : cpu_thread_count());
  }
  std::printf(", layout %s", layout.c_str());
  if (c.varlen) std::printf(", varlen (the batch packed, cu_seqlens%s)", c.skew ? "; the first sequence half the tokens" : "");
  if (gpu && c.dtype != DType::f32) std::printf(", %s intermediates", inter.c_str());
  std::printf("\n");
  if (c.validate && !validate(c)) {
    std::fprintf(stderr, "tnl bench attn: validation failed; not timing a wrong kernel\n");
    return 1;
  }
  std::fprintf(stderr, "measuring the floor...\n");
  const Floor fl = gpu ? measure_cuda_floor() : measure_cpu_floor(c.threads);
  std::printf("floor: copy %.1f GB/s (%s); GEMM %.1f %s (%s)\n", fl.bandwidth_gbs,
              fl.bandwidth_how.c_str(), gpu ? fl.gemm_gflops / 1e3 : fl.gemm_gflops,
              gpu ? "TFLOP/s" : "GFLOP/s", fl.gemm_how.c_str());
  std::printf("FLOPs per token and head (C=%lld): fwd %.0f, fwd+bwd %.0f; bytes fwd %.0f, bwd %.0f\n",
              (long long)kBlock, fwd_flops(c), 3.5 * fwd_flops(c), fwd_bytes(c), bwd_bytes(c));
  print_header(c);
  for (int64_t n : c.seqlens) bench_seqlen(c, fl, n);
  if (c.decode) bench_decode(c, fl);
  return 0;
}

}  // namespace tnl::cli
