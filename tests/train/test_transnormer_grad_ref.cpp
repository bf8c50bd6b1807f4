// test_transnormer_grad_ref.cpp: the training gradient (fp32, fast attention) against PyTorch
// autograd through the float64 reference model written from the spec (tests/ref/transnormer_ref.py,
// run by tests/ref/make_grad_fixture.py): LRPE in one layer / every layer / none, H = 2, 3, 4, 5
// (not powers of two too), hidden_dim ≠ d_model, scaled and unscaled embedding, ignored targets,
// sequences that cross attention blocks. Fresh random weights and tokens every run.
//
// The reference runs on the same fp32 weights in float64. Bounds: see each check below.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/io/safetensors.h"
#include "testing/reference_files.h"
#include "train/params.h"
#include "train/transnormer_grad.h"

namespace tnl::train {
namespace {

std::string g_fixtures;

class GradRef : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_fixtures = testing::run_reference_script(TNL_TEST_PYTHON,
                                               TNL_SOURCE_DIR "/tests/ref/make_grad_fixture.py", "tnl_grad_fixtures_");
    ASSERT_FALSE(g_fixtures.empty());
  }
};

using testing::read_raw;

// Per tensor: max|g − g_ref| / max|g_ref| and ‖g − g_ref‖ / ‖g_ref‖, the worst of each printed.
struct Worst {
  double max_rel = 0, norm_rel = 0;
  std::string max_name;
};

// How much larger than the fp64 instantiation's worst error on the same draw (the same code in
// float64: a measure of how well conditioned the draw is) an fp32 error may be: 8 eps32 / eps64
// = 8 · 2^29. Measured over 1,000 model draws (250 runs of this test): fp32 / fp64 worst-error
// ratios 4e7..3.4e9.
constexpr double kFp32OverFp64 = 8.0 * 536870912.0;

template <class T>
Worst compare(const ParamSet& p, const T* g, const std::string& ref_path, double max_bound, double norm_bound,
              const char* what) {
  const io::SafetensorsFile ref(ref_path);
  EXPECT_EQ(ref.tensors().size(), p.infos().size());
  Worst w;
  for (const ParamInfo& i : p.infos()) {
    const io::TensorEntry& t = ref.at(i.name);
    EXPECT_EQ(t.dtype, "F64");
    EXPECT_EQ(t.numel(), i.numel) << i.name;
    double max_diff = 0, max_ref = 0, ss_diff = 0, ss_ref = 0;
    for (int64_t k = 0; k < i.numel; ++k) {
      double r;
      std::memcpy(&r, t.data + 8 * k, 8);
      const double got = (double)g[i.offset + k];
      max_diff = std::max(max_diff, std::isfinite(got) ? std::fabs(got - r) : INFINITY);
      max_ref = std::max(max_ref, std::fabs(r));
      ss_diff += (got - r) * (got - r);
      ss_ref += r * r;
    }
    EXPECT_GT(max_ref, 0.0) << what << " " << i.name << ": zero reference gradient, nothing checked";
    const double norm_rel = std::sqrt(ss_diff / ss_ref);
    EXPECT_LE(max_diff, max_bound * max_ref) << what << " " << i.name << " (max |g_ref| " << max_ref << ")";
    EXPECT_LE(norm_rel, norm_bound) << what << " " << i.name;
    w.norm_rel = std::max(w.norm_rel, norm_rel);
    if (max_diff / max_ref > w.max_rel) {
      w.max_rel = max_diff / max_ref;
      w.max_name = i.name;
    }
  }
  return w;
}

TEST_F(GradRef, LossAndEveryGradientMatchPyTorchAutograd) {
  for (const char* name : {"lrpe_h3", "nolrpe_h4_noscale", "lrpe_all_h2", "lrpe_h5_hidden_ne_d"}) {
    SCOPED_TRACE(name);
    const std::string dir = g_fixtures + "/" + name;
    int64_t B = 0, N = 0, V = 0;
    std::ifstream(dir + "/shape.txt") >> B >> N >> V;
    ASSERT_GT(B * N, 0);
    const std::vector<int32_t> ids = read_raw<int32_t>(dir + "/ids.i32", B * N);
    const std::vector<int32_t> targets = read_raw<int32_t>(dir + "/targets.i32", B * N);
    const ParamSet p = ParamSet::from_checkpoint(model::Checkpoint(dir));
    ASSERT_EQ(p.config().vocab_size, V);
    // 1. The fp64 instantiation of the training code (the one checked by finite differences,
    //    LRPE angle in fp64) against autograd of the same float64 function: agreement to
    //    float64 rounding (~5e-15 typical, 2.6e-13 in the worst draw met); bound 1e-12.
    Worst fp64;  // how well conditioned this draw is
    {
      const double want = read_raw<double>(dir + "/loss_f64angle.f64", 1)[0];
      const std::vector<double> w(p.data(), p.data() + p.size());
      std::vector<double> g(p.size(), 0.0);
      const double loss = loss_and_grad_f64(p, w.data(), ids.data(), targets.data(), B, N, g.data());
      EXPECT_NEAR(loss, want, 1e-12 * want) << "fp64";
      fp64 = compare(p, g.data(), dir + "/grads_f64angle.safetensors", 1e-12, 1e-12, "fp64");
      std::printf("%s fp64: loss %.12f (ref %.12f), worst max|Δ|/max|g_ref| %.1e in %s, "
                  "worst ‖Δ‖/‖g_ref‖ %.1e (bounds 1e-12)\n",
                  name, loss, want, fp64.max_rel, fp64.max_name.c_str(), fp64.norm_rel);
    }
    // 2. Training (fp32, fast attention, fp32 LRPE angle as released) against the released model in
    //    float64. Bounds per tensor: ‖Δ‖/‖g_ref‖ ≤ 5e-5 and max|Δ| ≤ 1e-4·max|g_ref|. The gap is
    //    fp32 rounding (6e-8) amplified by the model (random weights 10× the init, products in the
    //    gate and the GLU, SRMS dividing small rows by their RMS, sums over tokens and the vocab):
    //    typically 1e-6..5e-6; the worst seen over 48 random model draws was 1.0e-5 (norm) and
    //    1.9e-5 (max), in the embedding of the unscaled case. A rare draw is ill-conditioned
    //    (under one in a thousand; seen once in CI: the fp64 error 2.6e-13, 50x its usual, and
    //    fp32's 6.2e-5): the bounds are at least kFp32OverFp64 times the fp64 run's worst errors,
    //    which leaves them as they are on a usual draw (fp64 5e-15..1e-14: 2e-5..4e-5).
    const double want = read_raw<double>(dir + "/loss.f64", 1)[0];
    for (bool recompute : {false, true}) {
      GradOptions opt;
      opt.recompute = recompute;
      std::vector<float> g(p.size(), 0.0f);
      const double loss = loss_and_grad(p, ids.data(), targets.data(), B, N, g.data(), opt);
      EXPECT_NEAR(loss, want, 1e-5 * want) << "recompute " << recompute;
      const Worst r = compare(p, g.data(), dir + "/grads.safetensors", std::max(1e-4, kFp32OverFp64 * fp64.max_rel),
                              std::max(5e-5, kFp32OverFp64 * fp64.norm_rel), "fp32");
      std::printf("%s fp32 recompute %d: loss %.6f (ref %.6f), worst max|Δ|/max|g_ref| %.1e in %s, "
                  "worst ‖Δ‖/‖g_ref‖ %.1e\n", name, (int)recompute, loss, want, r.max_rel, r.max_name.c_str(),
                  r.norm_rel);
    }
  }
}

}  // namespace
}  // namespace tnl::train
