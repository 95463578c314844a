#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

namespace moe::engine {
namespace {

std::vector<float> RandomLogits(int n, uint64_t seed, float scale = 3.f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

int Argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

SamplingParams Params(float t, int top_k = 0, float top_p = 1.f) {
  SamplingParams p;
  p.temperature = t;
  p.top_k = top_k;
  p.top_p = top_p;
  return p;
}

TEST_CASE("greedy picks the argmax, ties go to the lowest id") {
  auto logits = RandomLogits(1000, 1);
  Sampler s(Params(0.f), 42);
  CHECK(s.Sample(logits).token == Argmax(logits));

  std::vector<float> tied = {0.f, 5.f, 1.f, 5.f};
  CHECK(Sampler(Params(0.f), 1).Sample(tied).token == 1);
}

TEST_CASE("same seed gives the same tokens, different seeds differ") {
  auto logits = RandomLogits(5000, 2, 1.f);  // flat enough that sampling varies
  auto run = [&](uint64_t seed, bool has_seed, uint64_t fallback) {
    SamplingParams p = Params(1.f);
    p.has_seed = has_seed;
    p.seed = seed;
    Sampler s(p, fallback);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.Sample(logits).token);
    return out;
  };
  auto a = run(7, true, 100);
  auto b = run(7, true, 999);  // fallback ignored when a seed is given
  auto c = run(8, true, 100);
  CHECK(a == b);
  CHECK(a != c);
  // Without a seed, the fallback seed decides.
  CHECK(run(0, false, 5) == run(0, false, 5));
  CHECK(run(0, false, 5) != run(0, false, 6));
  // The sequence actually varies from call to call.
  CHECK(std::set<int32_t>(a.begin(), a.end()).size() > 50);
}

TEST_CASE("top_k = 1 is greedy at any temperature") {
  auto logits = RandomLogits(3000, 3);
  for (float t : {0.5f, 1.f, 5.f, 100.f}) {
    Sampler s(Params(t, 1), 11);
    for (int i = 0; i < 20; ++i) CHECK(s.Sample(logits).token == Argmax(logits));
  }
}

TEST_CASE("a tiny top_p is greedy") {
  auto logits = RandomLogits(150000, 4);
  Sampler s(Params(2.f, 0, 1e-6f), 12);
  for (int i = 0; i < 20; ++i) CHECK(s.Sample(logits).token == Argmax(logits));
}

TEST_CASE("temperature 1 sampling follows the softmax distribution") {
  const std::vector<double> probs = {0.5, 0.25, 0.15, 0.10};
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)) + 3.f);  // shift-invariant
  Sampler s(Params(1.f), 2024);
  const int n = 20000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < n; ++i) counts.at(s.Sample(logits).token)++;
  for (int k = 0; k < 4; ++k) {
    const double sigma = std::sqrt(n * probs[k] * (1 - probs[k]));
    INFO("token " << k << " count " << counts[k] << " expected " << n * probs[k]);
    CHECK(std::abs(counts[k] - n * probs[k]) < 4.5 * sigma);
  }
}

TEST_CASE("temperature reshapes the distribution as p^(1/T)") {
  const std::vector<double> probs = {0.5, 0.25, 0.15, 0.10};
  std::vector<float> logits;
  for (double p : probs) logits.push_back(static_cast<float>(std::log(p)));
  std::vector<double> expect;
  double z = 0;
  for (double p : probs) z += std::sqrt(p);
  for (double p : probs) expect.push_back(std::sqrt(p) / z);  // T = 2
  Sampler s(Params(2.f), 77);
  const int n = 20000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < n; ++i) counts.at(s.Sample(logits).token)++;
  for (int k = 0; k < 4; ++k) {
    const double sigma = std::sqrt(n * expect[k] * (1 - expect[k]));
    INFO("token " << k << " count " << counts[k] << " expected " << n * expect[k]);
    CHECK(std::abs(counts[k] - n * expect[k]) < 4.5 * sigma);
  }
}

TEST_CASE("top_p applies to the top-k-filtered, renormalised distribution") {
  // p = 0.4, 0.3, 0.2, 0.1. Alone, top_p 0.75 keeps {0, 1, 2} (0.4 + 0.3 < 0.75).
  // After top_k 3 the renormalised masses are 0.444, 0.333, 0.222: {0, 1} reach 0.75.
  std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)};
  std::set<int> alone, with_k;
  Sampler a(Params(1.f, 0, 0.75f), 5), b(Params(1.f, 3, 0.75f), 5);
  for (int i = 0; i < 3000; ++i) {
    alone.insert(a.Sample(logits).token);
    with_k.insert(b.Sample(logits).token);
  }
  CHECK(alone == std::set<int>{0, 1, 2});
  CHECK(with_k == std::set<int>{0, 1});
}

TEST_CASE("a large top_k keeps exactly the k most likely") {
  auto logits = RandomLogits(6000, 8, 0.05f);  // nearly flat: every candidate gets drawn
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::set<int> top(order.begin(), order.begin() + 2000);
  Sampler s(Params(1.f, 2000), 9);
  std::set<int> seen;
  for (int i = 0; i < 20000; ++i) {
    const int t = s.Sample(logits).token;
    REQUIRE(top.count(t) == 1);
    seen.insert(t);
  }
  CHECK(seen.size() > 1900);
}

TEST_CASE("top_p keeps the smallest prefix reaching the mass") {
  // p = 0.5, 0.25, 0.15, 0.10: top_p 0.7 keeps {0, 1} (0.75 >= 0.7), renormalised 2:1.
  std::vector<float> logits = {std::log(0.5f), std::log(0.25f), std::log(0.15f), std::log(0.10f)};
  Sampler s(Params(1.f, 0, 0.7f), 3);
  int c0 = 0, c1 = 0;
  for (int i = 0; i < 6000; ++i) {
    int t = s.Sample(logits).token;
    REQUIRE((t == 0 || t == 1));
    (t == 0 ? c0 : c1)++;
  }
  CHECK(std::abs(c0 / 6000.0 - 2.0 / 3.0) < 0.03);
  // top_p exactly at a cumulative boundary keeps that token (>=, not >).
  Sampler s2(Params(1.f, 0, 0.5f), 4);
  for (int i = 0; i < 200; ++i) CHECK(s2.Sample(logits).token == 0);
}

TEST_CASE("top_p over a large vocabulary samples only from the nucleus") {
  auto logits = RandomLogits(150000, 5, 4.f);
  // The nucleus computed directly, by a full sort.
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  double z = 0;
  float m = logits[order[0]];
  for (float v : logits) z += std::exp(double(v - m));
  std::set<int> nucleus;
  double cum = 0;
  for (int id : order) {
    nucleus.insert(id);
    cum += std::exp(double(logits[id] - m)) / z;
    if (cum >= 0.9) break;
  }
  REQUIRE(nucleus.size() > 64);  // exercises the growing prefix
  Sampler s(Params(1.f, 0, 0.9f), 6);
  for (int i = 0; i < 300; ++i) CHECK(nucleus.count(s.Sample(logits).token) == 1);
}

TEST_CASE("top_k restricts the support to the k most likely") {
  auto logits = RandomLogits(2000, 7, 0.5f);
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  std::set<int> top5(order.begin(), order.begin() + 5);
  Sampler s(Params(10.f, 5), 8);  // high temperature: near uniform over the five
  std::set<int> seen;
  for (int i = 0; i < 500; ++i) {
    int t = s.Sample(logits).token;
    CHECK(top5.count(t) == 1);
    seen.insert(t);
  }
  CHECK(seen == top5);
}

TEST_CASE("logprobs match a direct log_softmax and sum to one") {
  auto logits = RandomLogits(300, 9);
  SamplingParams p = Params(1.f);
  p.logprobs = 20;
  Sampler s(p, 10);
  SampledToken t = s.Sample(logits);

  double m = *std::max_element(logits.begin(), logits.end());
  double z = 0;
  for (float v : logits) z += std::exp(v - m);
  auto direct = [&](int id) { return logits[id] - m - std::log(z); };
  CHECK(t.logprob == Approx(direct(t.token)).margin(1e-4));

  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) total += std::exp(direct(i));
  CHECK(total == Approx(1.0).epsilon(1e-6));

  REQUIRE(t.top_logprobs.size() == 20);
  std::vector<int> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  for (int i = 0; i < 20; ++i) {
    CHECK(t.top_logprobs[i].first == order[i]);
    CHECK(t.top_logprobs[i].second == Approx(direct(order[i])).margin(1e-4));
  }
  // logprobs are of the raw distribution: the same under a different temperature.
  p.temperature = 0.3f;
  SampledToken t2 = Sampler(p, 10).Sample(logits);
  CHECK(t2.top_logprobs[0].second == Approx(t.top_logprobs[0].second));
}

TEST_CASE("top logprobs break ties by lower id") {
  std::vector<float> logits = {1.f, 2.f, 2.f, 0.f, 2.f};
  SamplingParams p = Params(0.f);
  p.logprobs = 3;
  auto t = Sampler(p, 1).Sample(logits);
  REQUIRE(t.top_logprobs.size() == 3);
  CHECK(t.top_logprobs[0].first == 1);
  CHECK(t.top_logprobs[1].first == 2);
  CHECK(t.top_logprobs[2].first == 4);
}

TEST_CASE("validation errors name the field") {
  auto msg = [](SamplingParams p) {
    return std::string(ValidateSamplingParams(p, 100).message());
  };
  CHECK(ValidateSamplingParams(Params(0.7f, 50, 0.9f), 100).ok());
  CHECK(ValidateSamplingParams(Params(0.f, -1, 1.f), 100).ok());
  CHECK(msg(Params(-0.1f)).find("temperature") != std::string::npos);
  CHECK(msg(Params(std::numeric_limits<float>::infinity())).find("temperature") !=
        std::string::npos);
  CHECK(msg(Params(std::nanf(""))).find("temperature") != std::string::npos);
  CHECK(msg(Params(1.f, 0, 0.f)).find("top_p") != std::string::npos);
  CHECK(msg(Params(1.f, 0, 1.5f)).find("top_p") != std::string::npos);
  CHECK(msg(Params(1.f, 0, std::nanf(""))).find("top_p") != std::string::npos);
  CHECK(msg(Params(1.f, -2)).find("top_k") != std::string::npos);
  SamplingParams lp = Params(1.f);
  lp.logprobs = 21;
  CHECK(msg(lp).find("logprobs") != std::string::npos);
  lp.logprobs = -1;
  CHECK(msg(lp).find("logprobs") != std::string::npos);
  CHECK(ValidateSamplingParams(Params(1.f), 0).message().find("vocab_size") !=
        std::string::npos);
}

TEST_CASE("non-finite logits do not crash and follow the documented rules") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::nanf("");
  SamplingParams p = Params(1.f);
  p.logprobs = 2;
  // NaN is never sampled.
  std::vector<float> with_nan = {nan, 0.f, nan, 0.f};
  Sampler s(p, 1);
  for (int i = 0; i < 100; ++i) {
    auto t = s.Sample(with_nan);
    CHECK((t.token == 1 || t.token == 3));
    CHECK(t.logprob == Approx(std::log(0.5)));
  }
  // +inf takes all the mass.
  std::vector<float> with_inf = {1.f, inf, 3.f, -inf};
  for (int i = 0; i < 50; ++i) CHECK(s.Sample(with_inf).token == 1);
  CHECK(Sampler(Params(0.f), 1).Sample(with_inf).token == 1);
  // Nothing usable: uniform, still a valid id, finite logprob.
  std::vector<float> hopeless = {nan, -inf, nan};
  for (int i = 0; i < 50; ++i) {
    auto t = s.Sample(hopeless);
    CHECK((t.token >= 0 && t.token < 3));
    CHECK(std::isfinite(t.logprob));
  }
  // -inf logits are never sampled, even with a huge temperature.
  std::vector<float> masked = {-inf, 0.f, -inf};
  Sampler hot(Params(1000.f), 2);
  for (int i = 0; i < 50; ++i) CHECK(hot.Sample(masked).token == 1);
  // A denormal temperature behaves as greedy rather than producing NaN.
  auto logits = RandomLogits(100, 3);
  CHECK(Sampler(Params(1e-45f), 3).Sample(logits).token == Argmax(logits));
}

// Rows of several kinds for the device-hook tests: random, peaked, flat (all tied), a
// few values repeated (many exact ties), with -inf, NaN and +inf entries.
std::vector<std::vector<float>> HookRows() {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> rows;
  for (int n : {1, 2, 7, 300, 5000, 50304}) {
    rows.push_back(RandomLogits(n, 500 + n, 1.f));
    rows.push_back(RandomLogits(n, 600 + n, 8.f));
    rows.push_back(std::vector<float>(n, 0.25f));
    std::vector<float> ties(n);
    for (int i = 0; i < n; ++i) ties[i] = static_cast<float>((i * 7919) % 5) * 0.5f;
    rows.push_back(ties);
  }
  std::vector<float> masked = RandomLogits(1000, 9);
  for (int i = 0; i < 1000; i += 3) masked[i] = -inf;
  rows.push_back(masked);
  rows.push_back({std::nanf(""), 1.f, 2.f, std::nanf("")});
  rows.push_back({1.f, inf, 3.f, inf});
  rows.push_back({-inf, -inf, -inf});
  return rows;
}

TEST_CASE("Sample equals SampleWithUniform(NextUniform()) on a twin sampler") {
  struct Case {
    float temperature;
    int top_k;
    float top_p;
  };
  const Case cases[] = {
      {0.f, 0, 1.f},    {1.f, 1, 1.f},     {1e-45f, 0, 1.f},  {1.f, 0, 1.f},
      {0.3f, 0, 1.f},   {1.7f, 0, 0.95f},  {1.f, 0, 0.5f},    {1.f, 0, 0.01f},
      {1.f, 2, 1.f},    {0.7f, 50, 0.9f},  {1.f, 2000, 1.f},  {1.f, 2000, 0.8f},
      {1.3f, 6000, 0.95f}, {1.f, 49999, 0.99f}, {1.f, 60000, 0.5f},
  };
  const auto rows = HookRows();
  int draws = 0;
  for (const Case& c : cases) {
    for (uint64_t seed : {1u, 77u, 123456789u}) {
      SamplingParams p = Params(c.temperature, c.top_k, c.top_p);
      p.has_seed = true;
      p.seed = seed;
      Sampler one(p, 0), twin(p, 0);
      CHECK(one.DeviceEligible());
      for (int rep = 0; rep < 3; ++rep) {
        for (size_t r = 0; r < rows.size(); ++r) {
          const std::optional<double> u = twin.NextUniform();
          CHECK(u.has_value() == !twin.Greedy());
          if (u) {
            ++draws;
            CHECK(*u >= 0.0);
            CHECK(*u < 1.0);
          }
          const int32_t a = one.Sample(rows[r]).token;
          const int32_t b = twin.SampleWithUniform(rows[r], u).token;
          INFO("T " << c.temperature << " top_k " << c.top_k << " top_p " << c.top_p
                    << " seed " << seed << " row " << r << " size " << rows[r].size());
          REQUIRE(a == b);
          CHECK((a >= 0 && a < static_cast<int32_t>(rows[r].size())));
        }
      }
      // Both generators are still in step: the next draws agree.
      CHECK(one.NextUniform() == twin.NextUniform());
    }
  }
  CHECK(draws > 1000);
}

TEST_CASE("NextUniform draws nothing for greedy requests; SampleWithUniform never draws") {
  SamplingParams g = Params(0.f);
  Sampler greedy(g, 5);
  CHECK_FALSE(greedy.NextUniform().has_value());
  CHECK_FALSE(Sampler(Params(2.f, 1), 5).NextUniform().has_value());

  const auto logits = RandomLogits(4000, 21, 0.5f);
  Sampler a(Params(1.f), 9), b(Params(1.f), 9);
  const std::optional<double> u = a.NextUniform();
  REQUIRE(u.has_value());
  const int32_t first = a.SampleWithUniform(logits, u).token;
  for (int i = 0; i < 5; ++i) CHECK(a.SampleWithUniform(logits, u).token == first);
  CHECK(b.Sample(logits).token == first);
  CHECK(a.NextUniform() == b.NextUniform());
  // The draw decides the token: u near 0 takes the first kept token, u near 1 the last.
  std::vector<float> three = {0.f, 0.f, 0.f};
  CHECK(a.SampleWithUniform(three, 0.0).token == 0);
  CHECK(a.SampleWithUniform(three, 0.999).token == 2);
  // An empty row draws nothing and gives no token.
  Sampler c(Params(1.f), 9), d(Params(1.f), 9);
  CHECK(c.Sample({}).token == -1);
  CHECK(c.NextUniform() == d.NextUniform());
}

TEST_CASE("requests wanting logprobs are not device eligible") {
  SamplingParams p = Params(1.f);
  p.logprobs = 3;
  CHECK_FALSE(Sampler(p, 1).DeviceEligible());
  CHECK(Sampler(Params(1.f), 1).DeviceEligible());
}

}  // namespace
}  // namespace moe::engine
