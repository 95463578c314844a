#include "kernels/cpu/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

TEST_CASE("Router picks the k largest softmax probabilities", "[router]") {
  ThreadPool pool(2);
  for (int E : {1, 4, 8, 60, 64}) {
    for (int k : {1, 2, 4, 8}) {
      if (k > E) continue;
      for (bool renorm : {false, true}) {
        const int64_t T = 37;
        auto logits = testing::RandomVector(T * E, E * 100 + k, 2.f);
        std::vector<int32_t> idx(T * k);
        std::vector<float> w(T * k);
        RouterSoftmaxTopK(logits.data(), T, E, k, renorm, idx.data(), w.data(), &pool);
        for (int64_t t = 0; t < T; ++t) {
          std::vector<double> p(E);
          double mx = *std::max_element(&logits[t * E], &logits[t * E] + E), s = 0;
          for (int e = 0; e < E; ++e) s += p[e] = std::exp(logits[t * E + e] - mx);
          for (auto& v : p) v /= s;
          std::vector<int> order(E);
          std::iota(order.begin(), order.end(), 0);
          std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
          double ksum = 0;
          for (int i = 0; i < k; ++i) ksum += p[order[i]];
          for (int i = 0; i < k; ++i) {
            REQUIRE(idx[t * k + i] == order[i]);
            double ref = renorm ? p[order[i]] / ksum : p[order[i]];
            REQUIRE(w[t * k + i] == Approx(ref).epsilon(1e-5));
          }
        }
      }
    }
  }
}

TEST_CASE("Router ties go to the lower expert index", "[router]") {
  std::vector<float> logits = {1.f, 3.f, 3.f, 0.f, 3.f};
  std::vector<int32_t> idx(3);
  std::vector<float> w(3);
  RouterSoftmaxTopK(logits.data(), 1, 5, 3, true, idx.data(), w.data(), nullptr);
  REQUIRE(idx == std::vector<int32_t>{1, 2, 4});
  for (float v : w) REQUIRE(v == Approx(1.0 / 3));
}

}  // namespace
}  // namespace moe::kernels::cpu
