// test_optimizer.cpp: AdamW against PyTorch's torch.optim.AdamW (run through TNL_TEST_PYTHON) over
// several steps with a weight-decay mask and a varying learning rate; bit-identical resume from a
// saved state; the state file's checks; range validation; global norm and clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "testing/testing.h"
#include "tnl/error.h"
#include "train/optimizer.h"

namespace tnl::train {
namespace {

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "tnl_opt_" + std::to_string(std::random_device{}()) + "_" + name;
}

void write_floats(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * 4));
  ASSERT_TRUE(f.good()) << path;
}

std::vector<float> read_floats(const std::string& path, size_t n) {
  std::vector<float> v(n);
  std::ifstream f(path, std::ios::binary);
  f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)(n * 4));
  EXPECT_TRUE(f.good()) << path;
  return v;
}

// Three tensors: decayed, not decayed (like LRPE θ), decayed.
const std::vector<ParamRange> kRanges = {{0, 100, true}, {100, 30, false}, {130, 170, true}};
constexpr int64_t kN = 300, kSteps = 6;
const double kLr[kSteps] = {0.01, 0.03, 0.05, 0.04, 0.02, 0.01};

struct Problem {
  std::vector<float> p0, grads;  // (kN), (kSteps, kN)
};

Problem make_problem(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n01(0.f, 1.f);
  Problem pr;
  pr.p0.resize(kN);
  pr.grads.resize(kSteps * kN);
  for (float& x : pr.p0) x = n01(rng);
  for (int64_t i = 0; i < kSteps * kN; ++i) {
    const int64_t j = i % kN;
    // gradient scales from 1e-9 (eps matters) to 10
    const float scale = j % 7 == 0 ? 1e-9f : (j % 5 == 0 ? 10.f : 0.1f);
    pr.grads[i] = scale * n01(rng);
  }
  return pr;
}

std::vector<float> run_cpp(const Problem& pr, const AdamWConfig& cfg, const std::vector<ParamRange>& ranges) {
  AdamW opt(kN, cfg);
  std::vector<float> p = pr.p0;
  for (int64_t s = 0; s < kSteps; ++s) opt.step(p.data(), pr.grads.data() + s * kN, kLr[s], ranges);
  EXPECT_EQ(opt.steps(), kSteps);
  return p;
}

TEST(AdamW, MatchesTorchWithWeightDecayMask) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const Problem pr = make_problem(seed);
  AdamWConfig cfg;
  cfg.beta1 = 0.9, cfg.beta2 = 0.95, cfg.eps = 1e-8, cfg.weight_decay = 0.1;

  const std::string p0_path = temp_path("p0.bin"), g_path = temp_path("g.bin"), out_path = temp_path("out.bin"),
                    py_path = temp_path("adamw.py");
  write_floats(p0_path, pr.p0);
  write_floats(g_path, pr.grads);
  {
    std::ofstream py(py_path);
    py << "import sys, numpy as np, torch\n"
          "p0 = np.fromfile(sys.argv[1], dtype=np.float32)\n"
          "g = np.fromfile(sys.argv[2], dtype=np.float32).reshape(" << kSteps << ", " << kN << ")\n"
          "cuts = [(0, 100, 0.1), (100, 130, 0.0), (130, 300, 0.1)]\n"
          "ps = [torch.nn.Parameter(torch.from_numpy(p0[a:b].copy())) for a, b, _ in cuts]\n"
          "opt = torch.optim.AdamW([{'params': [p], 'weight_decay': wd} for p, (_, _, wd) in zip(ps, cuts)],\n"
          "                        lr=1.0, betas=(0.9, 0.95), eps=1e-8)\n"
          "lrs = [" << kLr[0] << ", " << kLr[1] << ", " << kLr[2] << ", " << kLr[3] << ", " << kLr[4] << ", "
       << kLr[5] << "]\n"
          "for s, lr in enumerate(lrs):\n"
          "    for grp in opt.param_groups: grp['lr'] = lr\n"
          "    for p, (a, b, _) in zip(ps, cuts): p.grad = torch.from_numpy(g[s, a:b].copy())\n"
          "    opt.step()\n"
          "np.concatenate([p.detach().numpy() for p in ps]).astype(np.float32).tofile(sys.argv[3])\n";
  }
  const std::string cmd = std::string(TNL_TEST_PYTHON) + " " + py_path + " " + p0_path + " " + g_path + " " + out_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "running torch.optim.AdamW failed (needs python3-torch): " << cmd;
  const std::vector<float> ref = read_floats(out_path, kN);
  const std::vector<float> got = run_cpp(pr, cfg, kRanges);

  // Bound: fp32 rounding differs only in the order of a few operations per step: a few ulps of
  // |p| (~1) per step, so 2e-6 over six steps. The mask must matter far more than that.
  double max_diff = 0;
  for (int64_t i = 0; i < kN; ++i) max_diff = std::max(max_diff, (double)std::fabs(got[i] - ref[i]));
  std::printf("AdamW vs torch.optim.AdamW after %lld steps: max |diff| %.3g (bound 2e-6)\n", (long long)kSteps,
              max_diff);
  EXPECT_LE(max_diff, 2e-6);
  const std::vector<float> all_decay = run_cpp(pr, cfg, {{0, kN, true}});
  double mask_effect = 0;
  for (int64_t i = 100; i < 130; ++i) mask_effect = std::max(mask_effect, (double)std::fabs(all_decay[i] - ref[i]));
  EXPECT_GT(mask_effect, 100 * 2e-6) << "the weight-decay mask has no visible effect: the test is vacuous";
  for (const std::string& p : {p0_path, g_path, out_path, py_path}) std::remove(p.c_str());
}

TEST(AdamW, SaveLoadResumesBitIdentically) {
  const Problem pr = make_problem(testing::test_seed());
  AdamWConfig cfg;
  cfg.beta2 = 0.99, cfg.weight_decay = 0.05;
  const std::vector<float> straight = run_cpp(pr, cfg, kRanges);

  const std::string path = temp_path("state.safetensors");
  std::vector<float> p = pr.p0;
  {
    AdamW first(kN, cfg);
    for (int64_t s = 0; s < 3; ++s) first.step(p.data(), pr.grads.data() + s * kN, kLr[s], kRanges);
    first.save(path);
  }
  AdamW second(kN, AdamWConfig{});  // a different config: load() restores the saved one
  second.load(path);
  EXPECT_EQ(second.steps(), 3);
  EXPECT_EQ(second.config().beta2, 0.99);
  EXPECT_EQ(second.config().weight_decay, 0.05);
  for (int64_t s = 3; s < kSteps; ++s) second.step(p.data(), pr.grads.data() + s * kN, kLr[s], kRanges);
  EXPECT_EQ(std::memcmp(p.data(), straight.data(), kN * 4), 0) << "resumed run differs from the uninterrupted one";

  AdamW wrong_size(kN + 1, cfg);
  try {
    wrong_size.load(path);
    FAIL() << "loading a state of another size must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("301"), std::string::npos) << e.what();
  }
  // A truncated file names the file.
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), (std::streamsize)(bytes.size() - 100));
  }
  try {
    second.load(path);
    FAIL() << "loading a truncated state must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_EQ(second.steps(), kSteps) << "a failed load must leave the state as it was";
  std::remove(path.c_str());
}

TEST(AdamW, RangesMustTileTheBuffer) {
  AdamW opt(10, AdamWConfig{});
  std::vector<float> p(10, 1.f), g(10, 1.f);
  for (const std::vector<ParamRange>& bad :
       {std::vector<ParamRange>{{0, 5, true}}, std::vector<ParamRange>{{0, 5, true}, {6, 4, true}},
        std::vector<ParamRange>{{0, 6, true}, {5, 5, true}}, std::vector<ParamRange>{{0, 10, true}, {10, 1, true}}}) {
    try {
      opt.step(p.data(), g.data(), 1e-3, bad);
      FAIL() << "bad ranges accepted";
    } catch (const ArgumentError& e) {
      EXPECT_NE(std::string(e.what()).find("ranges"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(opt.steps(), 0);
  EXPECT_THROW(AdamW(10, AdamWConfig{1.0, 0.95, 1e-8, 0.1}), ArgumentError);  // beta1 = 1
  EXPECT_THROW(AdamW(10, AdamWConfig{0.9, 0.95, 0.0, 0.1}), ArgumentError);   // eps = 0
}

TEST(GradNorm, MatchesLongDoubleAndIsThreadCountInvariant) {
  std::mt19937_64 rng(testing::test_seed());
  std::normal_distribution<float> n01(0.f, 1.f);
  const int64_t n = 1000003;  // not a multiple of the block size
  std::vector<float> g(n);
  long double ref = 0;
  for (float& x : g) {
    x = n01(rng) * 1e-3f;
    ref += (long double)x * x;
  }
  const double norm = global_grad_norm(g.data(), n);
  EXPECT_NEAR(norm, (double)std::sqrt(ref), 1e-12 * norm);
#ifdef _OPENMP
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = global_grad_norm(g.data(), n);
  omp_set_num_threads(3);
  const double three = global_grad_norm(g.data(), n);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(&one, &three, sizeof one), 0);
  EXPECT_EQ(std::memcmp(&one, &norm, sizeof one), 0);
#endif
  EXPECT_EQ(global_grad_norm(g.data(), 0), 0.0);
}

TEST(GradNorm, ClipScalesToMaxNormOnlyWhenAbove) {
  std::vector<float> g = {3.f, 4.f, 0.f, -12.f};  // norm 13
  const std::vector<float> orig = g;
  EXPECT_DOUBLE_EQ(clip_grad_norm(g.data(), 4, 20.0), 13.0);
  EXPECT_EQ(g, orig) << "below max_norm nothing changes";
  EXPECT_DOUBLE_EQ(clip_grad_norm(g.data(), 4, 1.0), 13.0);
  EXPECT_NEAR(global_grad_norm(g.data(), 4), 1.0, 1e-6);
  EXPECT_NEAR(g[1] / g[0], 4.0 / 3.0, 1e-6) << "direction kept";
  std::vector<float> bad = {1.f, NAN};
  EXPECT_TRUE(std::isnan(clip_grad_norm(bad.data(), 2, 1.0)));
  EXPECT_EQ(bad[0], 1.f) << "a non-finite norm leaves the gradient alone";
  EXPECT_THROW(clip_grad_norm(g.data(), 4, 0.0), ArgumentError);
}

}  // namespace
}  // namespace tnl::train
