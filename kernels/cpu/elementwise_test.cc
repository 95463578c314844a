#include "kernels/cpu/elementwise.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

TEST_CASE("Clamp limits to [-c, c]", "[elementwise]") {
  auto x = testing::RandomVector(1001, 1, 5.f);
  auto y = x;
  ThreadPool pool(2);
  Clamp(y.data(), y.size(), 2.5f, &pool);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == std::min(std::max(x[i], -2.5f), 2.5f));
}

TEST_CASE("SiluMul computes silu(gate) * up", "[elementwise]") {
  auto g = testing::RandomVector(333, 1, 4.f);
  auto u = testing::RandomVector(333, 2);
  std::vector<float> out(333);
  SiluMul(g.data(), u.data(), g.size(), out.data(), nullptr);
  for (size_t i = 0; i < g.size(); ++i) {
    double ref = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
    REQUIRE(out[i] == Approx(ref).epsilon(1e-5).margin(1e-7));
  }
  // In place on gate.
  SiluMul(g.data(), u.data(), g.size(), g.data(), nullptr);
  REQUIRE(g == out);
}

TEST_CASE("SigmoidGatedAdd scales each row by sigmoid of its gate", "[elementwise]") {
  const int64_t rows = 5, n = 19;
  auto out = testing::RandomVector(rows * n, 1);
  auto base = out;
  auto shared = testing::RandomVector(rows * n, 2);
  auto gate = testing::RandomVector(rows, 3, 3.f);
  ThreadPool pool(2);
  SigmoidGatedAdd(out.data(), gate.data(), shared.data(), rows, n, &pool);
  for (int64_t r = 0; r < rows; ++r) {
    double s = 1.0 / (1.0 + std::exp(-double(gate[r])));
    for (int64_t i = 0; i < n; ++i) {
      REQUIRE(out[r * n + i] == Approx(base[r * n + i] + s * shared[r * n + i]).margin(1e-6));
    }
  }
}

}  // namespace
}  // namespace moe::kernels::cpu
