// test_sample_cuda.cpp: the GPU token choice of the decode step (src/model/cuda/sample_cuda.cu:
// sample_rows, argmax_rows, mark_seen) on its own, against the host's rule, on fresh random
// logits at the released vocabulary (64,000) and at one that is not a multiple of 32. No model:
// small enough for compute-sanitizer memcheck and racecheck (bench/generate_check.sh), where
// the model's decode_sample test is not.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/cuda/layers_cuda.h"
#include "model/sampler.h"
#include "model/sampling_rule.h"
#include "tnl/device.h"

namespace tnl::model {
namespace {

// Device memory of n elements of T, freed with the scope.
template <class T>
struct DevArray {
  T* ptr = nullptr;
  explicit DevArray(size_t n) { EXPECT_EQ(cudaMalloc(&ptr, n * sizeof(T)), cudaSuccess); }
  ~DevArray() { cudaFree(ptr); }
  void put(const std::vector<T>& v) { ASSERT_EQ(cudaMemcpy(ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess); }
  std::vector<T> get(size_t n) const {
    std::vector<T> v(n);
    EXPECT_EQ(cudaMemcpy(v.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
};

class SampleRowsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    if (stream_) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;  // the launchers' stream (programmatic dependent launch)
};

TEST_F(SampleRowsCuda, TokensFollowTheHostRule) {
  // B = 3 rows of logits N(0, 3²) (the top tokens carry real mass, the tail too), each with its
  // own history of 40 tokens (bits set by mark_seen) under the repetition penalty; greedy must
  // be the host's argmax after the penalty, a draw one of the host rule's candidates owning its
  // uniform's point of the distribution function (sampling_rule.h). Four fresh draws per mode.
  std::vector<sampling_check::SamplingMode> modes = sampling_check::sampling_modes();
  modes.push_back({"top-k 1", false, 1, 1.f});  // a draw that must be the argmax
  const int64_t B = 3, H = 40;
  const float temperature = 0.7f, penalty = 1.3f;
  std::mt19937_64 rng(0x5a3b1e);
  for (const int64_t V : {64000, 1003}) {
    DevArray<float> logits_d(B * V), params_d(B + cuda::kSampleParams);
    DevArray<uint32_t> seen_d(B * cuda::seen_words(V));
    DevArray<int32_t> ids_d(B * H), next_d(B);
    DevArray<int64_t> pos_d(B);
    for (const sampling_check::SamplingMode& mode : modes) {
      for (int trial = 0; trial < 4; ++trial) {
        SCOPED_TRACE("V " + std::to_string(V) + ", " + mode.name + ", trial " + std::to_string(trial));
        std::normal_distribution<float> normal(0.f, 3.f);
        std::vector<float> logits(B * V);
        for (float& x : logits) x = normal(rng);
        std::vector<int32_t> ids(B * H);
        for (int32_t& t : ids) t = (int32_t)(rng() % (uint64_t)V);
        std::vector<float> params(B + cuda::kSampleParams);
        for (int64_t b = 0; b < B; ++b) params[b] = mode.greedy ? 0.f : std::uniform_real_distribution<float>(0.f, 0.999f)(rng);
        params[B] = 1.f / temperature;
        params[B + 1] = penalty;
        params[B + 2] = mode.greedy ? 1.f : 0.f;
        params[B + 3] = (float)mode.top_k;
        params[B + 4] = mode.top_p;
        logits_d.put(logits);
        ids_d.put(ids);
        params_d.put(params);
        pos_d.put(std::vector<int64_t>{7, 0, 100});
        ASSERT_EQ(cudaMemset(seen_d.ptr, 0, B * cuda::seen_words(V) * sizeof(uint32_t)), cudaSuccess);
        cuda::mark_seen(ids_d.ptr, B * H, H, seen_d.ptr, V, stream_);
        cuda::sample_rows(logits_d.ptr, B, V, seen_d.ptr, params_d.ptr, next_d.ptr, pos_d.ptr, stream_);
        ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
        const std::vector<int32_t> next = next_d.get(B);
        EXPECT_EQ(pos_d.get(B), (std::vector<int64_t>{8, 1, 101}));
        for (int64_t b = 0; b < B; ++b) {
          SCOPED_TRACE("row " + std::to_string(b));
          float* l = logits.data() + b * V;
          apply_repetition_penalty(l, V, std::vector<int32_t>(ids.begin() + b * H, ids.begin() + (b + 1) * H), penalty);
          if (mode.greedy || mode.top_k == 1) {
            ASSERT_EQ(next[b], (int32_t)(std::max_element(l, l + V) - l));
          } else {
            sampling_check::expect_draw_follows_rule(l, V, next[b], params[b], temperature, mode.top_k, mode.top_p);
            if (HasFatalFailure()) return;
          }
        }
      }
    }
  }
}

TEST_F(SampleRowsCuda, ArgmaxAdvancesPositionsAndWritesTheHistoryRing) {
  // argmax_rows: the first of equal maxima (a tie planted at two columns), NaN never wins; with
  // pos and a history ring of 4 rows, the token lands at row pos % 4 and pos advances.
  const int64_t B = 2, V = 64000, rows = 4;
  std::mt19937_64 rng(77);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> logits(B * V);
  for (float& x : logits) x = normal(rng);
  logits[0 * V + 31000] = logits[0 * V + 40000] = 50.f;          // tie: the first column wins
  logits[1 * V + 5] = std::numeric_limits<float>::quiet_NaN();  // NaN never wins
  logits[1 * V + 63999] = 40.f;
  DevArray<float> logits_d(B * V);
  DevArray<int32_t> next_d(B), hist_d(rows * B);
  DevArray<int64_t> pos_d(B);
  logits_d.put(logits);
  pos_d.put(std::vector<int64_t>{6, 9});
  hist_d.put(std::vector<int32_t>(rows * B, -1));
  cuda::argmax_rows(logits_d.ptr, B, V, next_d.ptr, pos_d.ptr, hist_d.ptr, rows, stream_);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_EQ(next_d.get(B), (std::vector<int32_t>{31000, 63999}));
  EXPECT_EQ(pos_d.get(B), (std::vector<int64_t>{7, 10}));
  const std::vector<int32_t> hist = hist_d.get(rows * B);
  EXPECT_EQ(hist[(6 % rows) * B + 0], 31000);
  EXPECT_EQ(hist[(9 % rows) * B + 1], 63999);
  EXPECT_EQ(std::count(hist.begin(), hist.end(), -1), (long)(rows * B - 2));
}

}  // namespace
}  // namespace tnl::model
