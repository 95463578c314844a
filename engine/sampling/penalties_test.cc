// logit_bias, repetition / frequency / presence penalties and min_p in the Sampler, on
// hand-built rows whose expected tokens follow from the formulas (vLLM's semantics).
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/sampling/sampler.h"

namespace moe::engine {
namespace {

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.f;
  return p;
}

std::vector<int32_t> Run(Sampler& s, const std::vector<float>& logits, int steps) {
  std::vector<int32_t> out;
  for (int i = 0; i < steps; ++i) out.push_back(s.Sample(logits).token);
  return out;
}

// log_softmax in double, for checking that logprobs stay those of the raw row.
std::vector<double> LogSoftmax(const std::vector<float>& x) {
  const double m = *std::max_element(x.begin(), x.end());
  double z = 0;
  for (float v : x) z += std::exp(v - m);
  std::vector<double> out;
  for (float v : x) out.push_back(v - m - std::log(z));
  return out;
}

TEST_CASE("logit_bias +100 forces a token, -100 bans one; the caller's row is untouched") {
  const std::vector<float> logits = {3.f, 1.f, 0.5f, -2.f, 2.9f};
  const std::vector<float> copy = logits;
  SamplingParams p = Greedy();
  p.logit_bias = {{3, 100.f}};
  Sampler forced(p, 1);
  CHECK(Run(forced, logits, 5) == std::vector<int32_t>(5, 3));
  CHECK(logits == copy);

  // At temperature 1 a +100 bias leaves the other tokens e^-95 of the mass: never drawn.
  p.temperature = 1.f;
  Sampler hot(p, 2);
  CHECK(Run(hot, logits, 200) == std::vector<int32_t>(200, 3));

  SamplingParams ban = Greedy();
  ban.logit_bias = {{0, -100.f}};
  Sampler banned(ban, 3);
  CHECK(banned.Sample(logits).token == 4);  // the runner-up
  // Small biases add to the logit: 1 + 2.5 = 3.5 beats 3.
  SamplingParams nudge = Greedy();
  nudge.logit_bias = {{1, 2.5f}};
  CHECK(Sampler(nudge, 4).Sample(logits).token == 1);
  nudge.logit_bias = {{1, 1.5f}};  // 2.5 < 3
  CHECK(Sampler(nudge, 4).Sample(logits).token == 0);
}

TEST_CASE("logprobs stay those of the raw logits") {
  const std::vector<float> logits = {3.f, 1.f, 0.5f, -2.f, 2.9f};
  const std::vector<double> raw = LogSoftmax(logits);
  SamplingParams p = Greedy();
  p.logprobs = 3;
  p.logit_bias = {{3, 100.f}};
  p.frequency_penalty = 1.5f;
  Sampler s(p, 1);
  for (int step = 0; step < 3; ++step) {
    const SampledToken t = s.Sample(logits);
    REQUIRE(t.token == 3);
    CHECK(t.logprob == Approx(raw[3]).margin(1e-5));
    REQUIRE(t.top_logprobs.size() == 3);
    // Top alternatives by raw probability: 0, 4, 1.
    CHECK(t.top_logprobs[0].first == 0);
    CHECK(t.top_logprobs[1].first == 4);
    CHECK(t.top_logprobs[2].first == 1);
    CHECK(t.top_logprobs[0].second == Approx(raw[0]).margin(1e-5));
  }
}

TEST_CASE("presence_penalty subtracts p once per token already generated") {
  // 2.0 vs 1.5: after token 0 is generated, 2.0 - 0.6 = 1.4 < 1.5 so token 1 wins; after
  // both appear, 1.4 vs 0.9: token 0 again, and presence does not grow with the count.
  const std::vector<float> logits = {2.f, 1.5f, 0.f};
  SamplingParams p = Greedy();
  p.presence_penalty = 0.6f;
  Sampler s(p, 1);
  CHECK(Run(s, logits, 5) == std::vector<int32_t>{0, 1, 0, 0, 0});
  // 2.0 - 0.4 = 1.6 > 1.5: never switches.
  p.presence_penalty = 0.4f;
  Sampler weak(p, 1);
  CHECK(Run(weak, logits, 5) == std::vector<int32_t>(5, 0));
  // A negative penalty rewards repeats.
  p.presence_penalty = -2.f;
  Sampler neg(p, 1);
  CHECK(Run(neg, {1.5f, 2.f}, 4) == std::vector<int32_t>(4, 1));
}

TEST_CASE("frequency_penalty subtracts f times the count, accumulating across calls") {
  const std::vector<float> logits = {2.f, 1.5f, 0.f};
  SamplingParams p = Greedy();
  p.frequency_penalty = 0.3f;
  Sampler s(p, 1);
  // Expected by the formula: argmax of x[t] - 0.3 * count(t), counts updated per step.
  std::vector<int> counts(3, 0);
  std::vector<int32_t> expect;
  for (int step = 0; step < 12; ++step) {
    int best = 0;
    double best_v = -1e30;
    for (int t = 0; t < 3; ++t) {
      const double v = logits[t] - 0.3 * counts[t];
      if (v > best_v + 1e-6) best_v = v, best = t;
    }
    expect.push_back(best);
    ++counts[best];
  }
  // 2.0, 1.7 win; then 1.4 < 1.5 → 1; 1.4 > 1.2 → 0; 1.1 < 1.2 → 1 ...
  REQUIRE(std::vector<int32_t>(expect.begin(), expect.begin() + 5) ==
          std::vector<int32_t>{0, 0, 1, 0, 1});
  CHECK(Run(s, logits, 12) == expect);

  // SampleWithUniform (the host fallback of device rows) records its tokens too.
  Sampler h(p, 1);
  std::vector<int32_t> got;
  for (int step = 0; step < 12; ++step) {
    got.push_back(h.SampleWithUniform(logits, h.NextUniform()).token);
  }
  CHECK(got == expect);
}

TEST_CASE("repetition_penalty divides positive and multiplies negative logits of seen tokens") {
  SamplingParams p = Greedy();
  p.repetition_penalty = 1.25f;
  // Prompt token 0: 2.0 / 1.25 = 1.6 < 1.8.
  Sampler with_prompt(p, 1);
  with_prompt.SetPromptTokens(std::vector<int32_t>{0, 0, 2});
  CHECK(with_prompt.Sample({2.f, 1.8f, -1.f}).token == 1);
  // Without the prompt nothing is seen yet.
  Sampler no_prompt(p, 1);
  CHECK(no_prompt.Sample({2.f, 1.8f, -1.f}).token == 0);
  // Negative logits are multiplied: -1.0 * 1.25 = -1.25 < -1.1.
  Sampler neg(p, 1);
  neg.SetPromptTokens(std::vector<int32_t>{0});
  CHECK(neg.Sample({-1.f, -1.1f}).token == 1);
  // Output tokens count too: after 0 is generated, 2.0 / 1.25 = 1.6 < 1.8; once both
  // are seen, 1.6 > 1.8 / 1.25 = 1.44 (each is penalised once, whatever its count).
  Sampler out(p, 1);
  CHECK(Run(out, {2.f, 1.8f}, 4) == std::vector<int32_t>{0, 1, 0, 0});
  // A token in both prompt and output is penalised once: 2.0 / 1.25 = 1.6 > 1.55 stays
  // the argmax (twice would be 1.28).
  Sampler once(p, 1);
  once.SetPromptTokens(std::vector<int32_t>{0});
  CHECK(Run(once, {2.f, 1.55f}, 4) == std::vector<int32_t>(4, 0));
}

TEST_CASE("prompt tokens count for repetition_penalty only") {
  // With frequency / presence penalties, a prompt token is not penalised.
  SamplingParams p = Greedy();
  p.frequency_penalty = 2.f;
  p.presence_penalty = 2.f;
  Sampler s(p, 1);
  s.SetPromptTokens(std::vector<int32_t>{0, 0, 0});
  const std::vector<float> logits = {2.f, 1.5f, 0.f};
  CHECK(s.Sample(logits).token == 0);
  CHECK(s.Sample(logits).token == 1);  // now 0 is in the output: 2 - 2 - 2 = -2
}

TEST_CASE("penalised sampling draws like Sample and is seeded") {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = 0.05f * static_cast<float>(i % 7);
  SamplingParams p;
  p.temperature = 1.f;
  p.frequency_penalty = 1.f;
  p.presence_penalty = 0.5f;
  p.repetition_penalty = 1.3f;
  p.has_seed = true;
  p.seed = 99;
  Sampler a(p, 0), b(p, 0);
  a.SetPromptTokens(std::vector<int32_t>{1, 2, 3});
  b.SetPromptTokens(std::vector<int32_t>{1, 2, 3});
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 40; ++i) {
    ta.push_back(a.Sample(logits).token);
    tb.push_back(b.SampleWithUniform(logits, b.NextUniform()).token);
  }
  CHECK(ta == tb);
  // Strong penalties on a flat row spread the tokens out: 40 draws, mostly distinct.
  CHECK(std::set<int32_t>(ta.begin(), ta.end()).size() >= 30);
}

TEST_CASE("min_p keeps tokens at least min_p times as likely as the top one") {
  // p = 0.5, 0.3, 0.15, 0.05; min_p 0.4 → threshold 0.2: keeps {0, 1}, mass 0.8.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  SamplingParams p;
  p.temperature = 1.f;
  p.min_p = 0.4f;
  Sampler s(p, 1);
  SamplingParams plain = p;
  plain.min_p = 0.f;
  Sampler base(plain, 1);
  // Draw 0.99: over the kept mass 0.792 lands in token 1 (0.5 < 0.792 < 0.8); without
  // min_p, 0.99 of the whole mass lands in token 3.
  CHECK(s.SampleWithUniform(logits, 0.99).token == 1);
  CHECK(base.SampleWithUniform(logits, 0.99).token == 3);
  // Draw 0.6: 0.48 < 0.5 → token 0; without min_p 0.6 → token 1.
  CHECK(s.SampleWithUniform(logits, 0.6).token == 0);
  CHECK(base.SampleWithUniform(logits, 0.6).token == 1);
  std::set<int32_t> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(s.Sample(logits).token);
  CHECK(seen == std::set<int32_t>{0, 1});

  // min_p applies after temperature: at T = 2 relative weights are sqrt(p / 0.5):
  // 1, 0.77, 0.55, 0.32, so min_p 0.4 keeps {0, 1, 2}.
  p.temperature = 2.f;
  Sampler hot(p, 2);
  seen.clear();
  for (int i = 0; i < 3000; ++i) seen.insert(hot.Sample(logits).token);
  CHECK(seen == std::set<int32_t>{0, 1, 2});

  // With top_k 1 of what min_p kept: greedy. min_p 1 keeps the top token only.
  p.temperature = 1.f;
  p.min_p = 1.f;
  Sampler top(p, 3);
  for (int i = 0; i < 50; ++i) CHECK(top.Sample(logits).token == 0);
}

TEST_CASE("min_p then top_p: top_p is taken of the min_p-kept mass") {
  // p = 0.4, 0.3, 0.2, 0.1. min_p 0.4 keeps {0, 1, 2} (0.1 < 0.16), renormalised to
  // 0.444, 0.333, 0.222; top_p 0.75 then keeps {0, 1} (0.778 >= 0.75). top_p alone
  // would keep {0, 1, 2} (0.7 < 0.75).
  const std::vector<float> logits = {std::log(0.4f), std::log(0.3f), std::log(0.2f),
                                     std::log(0.1f)};
  SamplingParams p;
  p.temperature = 1.f;
  p.top_p = 0.75f;
  p.min_p = 0.4f;
  Sampler s(p, 5);
  std::set<int32_t> seen;
  for (int i = 0; i < 3000; ++i) seen.insert(s.Sample(logits).token);
  CHECK(seen == std::set<int32_t>{0, 1});
}

TEST_CASE("DeviceEligible is false whenever a new option is set") {
  CHECK(Sampler(SamplingParams{}, 1).DeviceEligible());
  auto eligible = [](auto set) {
    SamplingParams p;
    set(p);
    return Sampler(p, 1).DeviceEligible();
  };
  CHECK_FALSE(eligible([](SamplingParams& p) { p.presence_penalty = 0.1f; }));
  CHECK_FALSE(eligible([](SamplingParams& p) { p.frequency_penalty = -0.1f; }));
  CHECK_FALSE(eligible([](SamplingParams& p) { p.repetition_penalty = 1.1f; }));
  CHECK_FALSE(eligible([](SamplingParams& p) { p.min_p = 0.05f; }));
  CHECK_FALSE(eligible([](SamplingParams& p) { p.logit_bias = {{0, 0.5f}}; }));
}

TEST_CASE("ValidateSamplingParams names the penalty field at fault") {
  auto error = [](auto set) {
    SamplingParams p;
    set(p);
    return std::string(ValidateSamplingParams(p, 100).message());
  };
  CHECK(error([](SamplingParams&) {}).empty());
  CHECK(error([](SamplingParams& p) {
          p.presence_penalty = -2.f;
          p.frequency_penalty = 2.f;
          p.min_p = 1.f;
          p.repetition_penalty = 0.01f;
          p.logit_bias = {{0, -100.f}, {99, 100.f}};
        }).empty());
  CHECK(error([](SamplingParams& p) { p.presence_penalty = 2.5f; })
            .rfind("presence_penalty: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.frequency_penalty = -2.01f; })
            .rfind("frequency_penalty: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.frequency_penalty = std::nanf(""); })
            .rfind("frequency_penalty: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.repetition_penalty = 0.f; })
            .rfind("repetition_penalty: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.repetition_penalty = INFINITY; })
            .rfind("repetition_penalty: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.min_p = 1.5f; }).rfind("min_p: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.min_p = -0.1f; }).rfind("min_p: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.logit_bias = {{100, 1.f}}; })
            .rfind("logit_bias: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.logit_bias = {{-1, 1.f}}; })
            .rfind("logit_bias: ", 0) == 0);
  CHECK(error([](SamplingParams& p) { p.logit_bias = {{5, 100.5f}}; })
            .rfind("logit_bias: ", 0) == 0);
}

TEST_CASE("non-finite rows stay safe with bias and penalties") {
  const float nan = std::nanf("");
  SamplingParams p = Greedy();
  p.logit_bias = {{1, 5.f}};
  p.frequency_penalty = 1.f;
  Sampler s(p, 1);
  // NaN never wins, even biased; +inf entries share the mass.
  CHECK(s.Sample({nan, nan, 0.f}).token == 2);
  CHECK(s.Sample({0.f, INFINITY, 1.f}).token == 1);
  p.temperature = 1.f;
  Sampler hot(p, 2);
  for (int i = 0; i < 20; ++i) CHECK(hot.Sample({nan, nan, nan}).token >= 0);
}

}  // namespace
}  // namespace moe::engine
