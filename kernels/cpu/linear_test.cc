#include "kernels/cpu/linear.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

using testing::MakeWeights;
using testing::RandomVector;

TEST_CASE("Linear matches a naive double-precision matmul", "[linear]") {
  ThreadPool pool(3);
  struct Shape {
    int64_t M, K, N;
  };
  for (Shape s : {Shape{1, 1, 1}, Shape{1, 17, 5}, Shape{3, 64, 33}, Shape{7, 129, 70},
                  Shape{16, 256, 8}, Shape{2, 1000, 3}}) {
    for (DType dt : testing::kWeightTypes) {
      for (bool with_bias : {false, true}) {
        auto x = RandomVector(s.M * s.K, 1);
        auto w = MakeWeights(RandomVector(s.N * s.K, 2, 0.1f), dt);
        auto b = MakeWeights(RandomVector(s.N, 3), dt);
        std::vector<float> y(s.M * s.N, -1.f);
        Linear(x.data(), s.M, s.K, w.data(), dt, s.N, with_bias ? b.data() : nullptr, dt,
               y.data(), &pool);
        for (int64_t m = 0; m < s.M; ++m) {
          for (int64_t n = 0; n < s.N; ++n) {
            double ref = with_bias ? b.rounded[n] : 0.0;
            double mag = std::fabs(ref);
            for (int64_t k = 0; k < s.K; ++k) {
              ref += static_cast<double>(x[m * s.K + k]) * w.rounded[n * s.K + k];
              mag += std::fabs(static_cast<double>(x[m * s.K + k]) * w.rounded[n * s.K + k]);
            }
            INFO("M=" << s.M << " K=" << s.K << " N=" << s.N << " dtype=" << DTypeName(dt));
            REQUIRE(std::fabs(y[m * s.N + n] - ref) <= 1e-6 * mag + 1e-7);
          }
        }
      }
    }
  }
}

TEST_CASE("Linear gives the same result serially and in parallel", "[linear]") {
  ThreadPool pool(4);
  auto x = RandomVector(5 * 300, 4);
  auto w = MakeWeights(RandomVector(77 * 300, 5), DType::kBF16);
  std::vector<float> a(5 * 77), b(5 * 77);
  Linear(x.data(), 5, 300, w.data(), DType::kBF16, 77, nullptr, DType::kF32, a.data(), nullptr);
  Linear(x.data(), 5, 300, w.data(), DType::kBF16, 77, nullptr, DType::kF32, b.data(), &pool);
  REQUIRE(a == b);
}

TEST_CASE("ConvertToF32 reads each dtype exactly", "[linear]") {
  auto v = RandomVector(37, 6);
  for (DType dt : testing::kWeightTypes) {
    auto w = MakeWeights(v, dt);
    std::vector<float> out(v.size());
    ConvertToF32(w.data(), dt, v.size(), out.data());
    REQUIRE(out == w.rounded);
  }
}

}  // namespace
}  // namespace moe::kernels::cpu
