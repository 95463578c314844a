// Automatic prefix caching end to end: the scheduler over the real CPU runner on the
// trained standard model (MixtralForCausalLM). Requests sharing a long "system prompt"
// generate exactly what they generate with prefix caching off, while the runner computes
// fewer prompt tokens.
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/model_runner.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/cpu_test_model.h"

namespace moe::scheduler {
namespace {

constexpr char kModel[] = "tests/data/models/trained/standard";
constexpr int kMaxTokens = 16;
constexpr int kPrefixLen = 100;  // 6 full blocks of 16, and 4 tokens

testing::CpuTestModel LoadModel() {
  auto m = testing::LoadCpuTestModel(kModel, 96);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *std::move(m);
}

std::vector<int32_t> Ids(int len, int salt, int vocab) {
  std::vector<int32_t> p;
  for (int j = 0; j < len; ++j) p.push_back((salt * 613 + j * 97 + 11) % vocab);
  return p;
}

struct Request {
  std::vector<int32_t> prompt;
  bool sampled = false;  // temperature 0.8 with `seed`, else greedy
  uint64_t seed = 0;
};

struct Run {
  std::vector<std::vector<int32_t>> tokens;  // per request
  SchedulerStats stats;
};

std::vector<int32_t> Drain(RequestHandle& h) {
  std::vector<int32_t> got;
  StreamEvent ev;
  const absl::Time end = absl::Now() + absl::Seconds(120);
  while (absl::Now() < end) {
    if (!h.Next(&ev, absl::Milliseconds(100))) continue;
    if (ev.kind == StreamEvent::Kind::kTokens) {
      got.insert(got.end(), ev.token_ids.begin(), ev.token_ids.end());
    } else {
      INFO(ev.error.ToString());
      REQUIRE(ev.kind == StreamEvent::Kind::kComplete);
      return got;
    }
  }
  FAIL("timed out");
  return got;
}

// Runs requests[0] alone (it computes the shared prefix), then all the others at once.
Run Generate(engine::ModelRunner* runner, const std::vector<Request>& requests, bool caching) {
  SchedulerOptions opts;
  opts.enable_prefix_caching = caching;
  opts.max_num_seqs = 8;
  opts.num_sampling_threads = 1;
  Scheduler s(runner, opts);
  REQUIRE(s.Start().ok());
  auto submit = [&s](const Request& q) {
    GenerateRequest r;
    r.prompt = q.prompt;
    r.max_tokens = kMaxTokens;
    r.ignore_eos = true;
    r.sampling.temperature = q.sampled ? 0.8f : 0.f;
    r.sampling.has_seed = q.sampled;
    r.sampling.seed = q.seed;
    auto h = s.Submit(std::move(r));
    REQUIRE(h.ok());
    return *h;
  };
  Run run;
  run.tokens.push_back(Drain(*submit(requests[0])));
  REQUIRE(s.WaitUntilIdle(absl::Seconds(10)));
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (size_t i = 1; i < requests.size(); ++i) handles.push_back(submit(requests[i]));
  for (auto& h : handles) run.tokens.push_back(Drain(*h));
  REQUIRE(s.WaitUntilIdle(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(30));  // the engine's final stats publication
  run.stats = s.GetStats();
  return run;
}

TEST_CASE("prefix caching on the CPU runner: same outputs, fewer prompt tokens computed") {
  testing::CpuTestModel m = LoadModel();
  const int vocab = m.config.vocab_size;
  const std::vector<int32_t> system = Ids(kPrefixLen, 1, vocab);
  auto with_tail = [&](int len, int salt) {
    std::vector<int32_t> p = system;
    const std::vector<int32_t> tail = Ids(len, salt, vocab);
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  std::vector<Request> requests = {
      {with_tail(7, 2)},                // computes the prefix
      {with_tail(12, 3)},               // shares it
      {with_tail(3, 4)},                // shares it
      {with_tail(7, 2)},                // identical to the first
      {with_tail(9, 5), true, 1},       // n = 2: one prompt, two seeded samples
      {with_tail(9, 5), true, 2},
      {Ids(40, 9, vocab)},              // shares nothing
  };
  const Run off = Generate(m.runner.get(), requests, false);
  const Run on = Generate(m.runner.get(), requests, true);
  REQUIRE(on.tokens.size() == requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << i);
    CHECK(on.tokens[i].size() == static_cast<size_t>(kMaxTokens));
    CHECK(on.tokens[i] == off.tokens[i]);
  }
  CHECK(on.tokens[3] == on.tokens[0]);
  CHECK(on.tokens[4] != on.tokens[5]);  // the two samples really differ

  // Requests 1-5 each reuse the prefix's 6 full blocks (96 tokens) that request 0 left.
  // Every step token is a prompt token or one of the (kMaxTokens - 1) decodes per request.
  const int64_t decodes = static_cast<int64_t>(requests.size()) * (kMaxTokens - 1);
  const int64_t saved = off.stats.num_batched_tokens - on.stats.num_batched_tokens;
  WARN("prompt tokens computed: " << off.stats.num_batched_tokens - decodes
       << " with prefix caching off, " << on.stats.num_batched_tokens - decodes
       << " on; saved " << saved);
  CHECK(on.stats.prefix_cache_hits_total == 5 * 96);
  CHECK(saved == on.stats.prefix_cache_hits_total);
  int64_t prompt_tokens = 0;
  for (const Request& q : requests) prompt_tokens += static_cast<int64_t>(q.prompt.size());
  CHECK(on.stats.prefix_cache_queries_total == prompt_tokens);
  CHECK(off.stats.num_batched_tokens - decodes == prompt_tokens);
  CHECK(off.stats.prefix_cache_hits_total == 0);
  CHECK(on.stats.num_preemptions == 0);
}

}  // namespace
}  // namespace moe::scheduler
