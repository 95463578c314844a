// The sampler's fast paths against plain reference implementations kept here: greedy
// (one max pass; logprobs by one log-sum-exp pass) against a double-precision
// log_softmax, and top-k / top-p (heap, threshold collection, selection) against a full
// sort of the vocabulary, token for token under the same seed.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/sampling/row_scan.h"
#include "engine/sampling/sampler.h"

namespace moe::engine {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> RandomLogits(int n, uint64_t seed, float scale) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// Reference greedy: first maximum, log_softmax in double.
struct RefGreedy {
  int32_t token;
  double logprob;
};
RefGreedy ReferenceGreedy(const std::vector<float>& x) {
  int32_t best = 0;
  for (size_t i = 1; i < x.size(); ++i) {
    if (x[i] > x[best]) best = static_cast<int32_t>(i);
  }
  double z = 0;
  for (float v : x) z += std::exp(static_cast<double>(v) - x[best]);
  return {best, static_cast<double>(x[best]) - x[best] - std::log(z)};
}

// Reference sampler (finite logits): weights as the sampler defines them, every token
// sorted most likely first (ties by lower id), top-k then top-p cut on the sorted list,
// then the kept tokens walked in id order against one uniform draw.
class ReferenceSampler {
 public:
  ReferenceSampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
  int32_t Sample(const std::vector<float>& x) {
    const int64_t n = static_cast<int64_t>(x.size());
    const float m = *std::max_element(x.begin(), x.end());
    std::vector<float> w(n);
    const double total = sampling::ExpWeights(x.data(), m, 1.f / p_.temperature, n, w.data());
    std::vector<std::pair<float, int32_t>> order;
    for (int64_t i = 0; i < n; ++i) {
      if (w[i] > 0.f) order.emplace_back(w[i], static_cast<int32_t>(i));
    }
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    const bool top_k_on = p_.top_k > 0 && p_.top_k < n;
    double mass = total;
    if (top_k_on) {
      if (static_cast<int64_t>(order.size()) > p_.top_k) order.resize(p_.top_k);
      mass = 0;
      for (const auto& c : order) mass += c.first;
    }
    double kept = mass;
    if (p_.top_p < 1.f) {
      const double target = static_cast<double>(p_.top_p) * mass;
      double acc = 0;
      size_t cut = order.size() - 1;
      for (size_t i = 0; i < order.size(); ++i) {
        acc += order[i].first;
        if (acc >= target) {
          cut = i;
          break;
        }
      }
      order.resize(cut + 1);
      kept = 0;
      for (const auto& c : order) kept += c.first;
    }
    std::sort(order.begin(), order.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    const double u = static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0) * kept;
    double cum = 0;
    int32_t chosen = -1;
    for (const auto& c : order) {
      cum += c.first;
      chosen = c.second;
      if (u < cum) break;
    }
    return chosen;
  }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
};

TEST_CASE("greedy fast path: the reference argmax and logprob, with ties and -inf") {
  for (int vocab : {7, 1000, 50304}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      std::vector<float> x = RandomLogits(vocab, seed, 3.f);
      // Ties at the maximum (the lowest id must win) and masked tokens.
      const float top = *std::max_element(x.begin(), x.end()) + 1.f;
      x[vocab / 2] = top;
      x[vocab - 1] = top;
      if (seed % 2 == 0) x[vocab / 3] = top;
      for (int i = 0; i < vocab; i += 5) {
        if (x[i] != top) x[i] = -kInf;
      }
      const RefGreedy ref = ReferenceGreedy(x);
      INFO("vocab " << vocab << " seed " << seed);

      SamplingParams plain;
      plain.temperature = 0.f;
      const SampledToken fast = Sampler(plain, 1).Sample(x);
      CHECK(fast.token == ref.token);
      CHECK(fast.top_logprobs.empty());

      SamplingParams with_lp = plain;
      with_lp.logprobs = 5;
      const SampledToken lp = Sampler(with_lp, 1).Sample(x);
      CHECK(lp.token == ref.token);
      CHECK(lp.logprob == Approx(ref.logprob).margin(1e-5));
      REQUIRE(lp.top_logprobs.size() == 5);
      CHECK(lp.top_logprobs[0].first == ref.token);
      CHECK(lp.top_logprobs[0].second == Approx(ref.logprob).margin(1e-5));

      // top_k = 1 at a temperature is greedy too, through the same path.
      SamplingParams k1 = with_lp;
      k1.temperature = 0.7f;
      k1.top_k = 1;
      CHECK(Sampler(k1, 1).Sample(x).token == ref.token);

      // The logprob of a sampled token at temperature 1 (the shared sum) agrees too.
      SamplingParams t1 = with_lp;
      t1.temperature = 1.f;
      const SampledToken s = Sampler(t1, 3).Sample(x);
      REQUIRE(x[s.token] > -kInf);
      double z = 0;
      for (float v : x) z += std::exp(static_cast<double>(v) - top);
      CHECK(s.logprob == Approx(x[s.token] - top - std::log(z)).margin(1e-5));
    }
  }
}

TEST_CASE("top-k / top-p fast paths pick the full-sort reference's token for every draw") {
  struct Case {
    float temperature;
    int top_k;
    float top_p;
  };
  const Case cases[] = {
      {1.f, 0, 0.9f},   {0.8f, 0, 0.9f},  {1.3f, 0, 0.5f},  {0.7f, 0, 0.99f},
      {1.f, 5, 1.f},    {0.8f, 50, 1.f},  {1.f, 2000, 1.f}, {0.8f, 50, 0.9f},
      {1.f, 2000, 0.8f}, {1.f, 6000, 0.95f},
  };
  // Peaked, spread-out and nearly flat rows: small nuclei, nuclei of thousands (the
  // selection and the in-place walk) and the fallback floor.
  for (float scale : {8.f, 3.f, 1.f, 0.05f}) {
    for (int vocab : {300, 50304}) {
      const std::vector<float> x = RandomLogits(vocab, 100 + vocab, scale);
      for (const Case& c : cases) {
        SamplingParams p;
        p.temperature = c.temperature;
        p.top_k = c.top_k;
        p.top_p = c.top_p;
        p.has_seed = true;
        p.seed = 4242;
        Sampler fast(p, 0);
        ReferenceSampler ref(p);
        int mismatches = 0;
        for (int i = 0; i < 60; ++i) mismatches += fast.Sample(x).token != ref.Sample(x) ? 1 : 0;
        INFO("scale " << scale << " vocab " << vocab << " T " << c.temperature << " top_k "
                      << c.top_k << " top_p " << c.top_p);
        CHECK(mismatches == 0);
      }
    }
  }
}

}  // namespace
}  // namespace moe::engine
