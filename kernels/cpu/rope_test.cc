#include "kernels/cpu/rope.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

TEST_CASE("RopeInvFreq follows 1/theta^(2i/d), divided by the linear factor", "[rope]") {
  auto inv = RopeInvFreq(8, 10000.0);
  REQUIRE(inv.size() == 4);
  for (int i = 0; i < 4; ++i) {
    REQUIRE(inv[i] == Approx(1.0 / std::pow(10000.0, 2.0 * i / 8)).epsilon(1e-6));
  }
  auto scaled = RopeInvFreq(8, 10000.0, 4.0);
  for (int i = 0; i < 4; ++i) REQUIRE(scaled[i] == Approx(inv[i] / 4).epsilon(1e-6));
}

TEST_CASE("ApplyRope rotates each head's halves; the pass-through part is untouched",
          "[rope]") {
  ThreadPool pool(2);
  struct Case {
    int heads, head_dim, rotary_dim;
    int64_t stride_extra;
  };
  for (Case c : {Case{1, 2, 2, 0}, Case{3, 8, 8, 0}, Case{2, 16, 8, 5}, Case{4, 64, 32, 0}}) {
    const int64_t T = 6;
    const int64_t stride = c.heads * c.head_dim + c.stride_extra;
    auto x = testing::RandomVector(T * stride, 3);
    std::vector<int32_t> pos = {0, 1, 5, 17, 100, 4095};
    auto inv = RopeInvFreq(c.rotary_dim, 500000.0);
    std::vector<float> y = x;
    ApplyRope(y.data(), T, stride, c.heads, c.head_dim, c.rotary_dim, pos.data(), inv.data(), &pool);
    const int half = c.rotary_dim / 2;
    for (int64_t t = 0; t < T; ++t) {
      for (int h = 0; h < c.heads; ++h) {
        const int64_t base = t * stride + h * c.head_dim;
        for (int i = 0; i < half; ++i) {
          double a = double(float(pos[t]) * inv[i]);
          double x1 = x[base + i], x2 = x[base + i + half];
          REQUIRE(y[base + i] == Approx(x1 * std::cos(a) - x2 * std::sin(a)).margin(1e-5));
          REQUIRE(y[base + i + half] == Approx(x2 * std::cos(a) + x1 * std::sin(a)).margin(1e-5));
        }
        for (int i = c.rotary_dim; i < c.head_dim; ++i) REQUIRE(y[base + i] == x[base + i]);
      }
      for (int64_t i = c.heads * c.head_dim; i < stride; ++i) REQUIRE(y[t * stride + i] == x[t * stride + i]);
    }
  }
}

TEST_CASE("Position 0 leaves vectors unchanged", "[rope]") {
  auto x = testing::RandomVector(16, 1);
  auto y = x;
  int32_t pos = 0;
  auto inv = RopeInvFreq(16, 10000.0);
  ApplyRope(y.data(), 1, 16, 1, 16, 16, &pos, inv.data(), nullptr);
  REQUIRE(x == y);
}

}  // namespace
}  // namespace moe::kernels::cpu
