#include "kernels/cpu/rms_norm.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

std::vector<double> NaiveRmsNorm(const std::vector<float>& x, int64_t rows, int64_t n,
                                 const std::vector<float>& w, double eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    double inv = 1.0 / std::sqrt(ss / n + eps);
    for (int64_t i = 0; i < n; ++i) out[r * n + i] = x[r * n + i] * inv * w[i];
  }
  return out;
}

TEST_CASE("RmsNorm matches the formula for several row lengths", "[rms_norm]") {
  ThreadPool pool(3);
  for (int64_t n : {1, 7, 64, 257, 2048}) {
    for (int64_t rows : {1, 5, 33}) {
      for (DType dt : testing::kWeightTypes) {
        auto x = testing::RandomVector(rows * n, 7, 3.f);
        auto w = testing::MakeWeights(testing::RandomVector(n, 8), dt);
        std::vector<float> out(rows * n);
        RmsNorm(x.data(), rows, n, w.data(), dt, 1e-6f, out.data(), &pool);
        auto ref = NaiveRmsNorm(x, rows, n, w.rounded, 1e-6);
        for (size_t i = 0; i < out.size(); ++i) {
          REQUIRE(std::fabs(out[i] - ref[i]) <= 1e-6 * std::fabs(ref[i]) + 1e-7);
        }
        // In place gives the same.
        std::vector<float> inplace = x;
        RmsNorm(inplace.data(), rows, n, w.data(), dt, 1e-6f, inplace.data(), &pool);
        REQUIRE(inplace == out);
      }
    }
  }
}

TEST_CASE("AddRmsNorm adds the delta into the residual, then normalises", "[rms_norm]") {
  ThreadPool pool(2);
  const int64_t rows = 9, n = 100;
  auto x = testing::RandomVector(rows * n, 1);
  auto d = testing::RandomVector(rows * n, 2);
  auto w = testing::MakeWeights(testing::RandomVector(n, 3), DType::kBF16);
  std::vector<float> residual = x, out(rows * n);
  AddRmsNorm(residual.data(), d.data(), rows, n, w.data(), DType::kBF16, 1e-5f, out.data(), &pool);
  std::vector<float> sum(rows * n);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = x[i] + d[i];
  REQUIRE(residual == sum);
  std::vector<float> ref(rows * n);
  RmsNorm(sum.data(), rows, n, w.data(), DType::kBF16, 1e-5f, ref.data(), nullptr);
  REQUIRE(out == ref);
  // A null delta only normalises.
  std::vector<float> r2 = x;
  AddRmsNorm(r2.data(), nullptr, rows, n, w.data(), DType::kBF16, 1e-5f, out.data(), &pool);
  REQUIRE(r2 == x);
}

}  // namespace
}  // namespace moe::kernels::cpu
