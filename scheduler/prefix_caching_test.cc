// Automatic prefix caching in the scheduler, against FakeModelRunner: its greedy output
// is known in advance (ReferenceGreedy), it records every chunk it runs, and it fails a
// step that reads a KV slot computed for a different token prefix.
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_model_runner.h"

namespace moe::scheduler {
namespace {

using testing::FakeModelRunner;
using testing::FakeRunnerOptions;
using testing::RecordedStep;
using Tokens = std::vector<int32_t>;

constexpr int kVocab = 64;

Tokens MakeTokens(int len, int salt) {
  Tokens p;
  for (int i = 0; i < len; ++i) p.push_back((i * 7 + salt * 13 + 1) % kVocab);
  return p;
}

Tokens Concat(Tokens a, const Tokens& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

GenerateRequest Greedy(Tokens prompt, int max_tokens) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.f;
  return r;
}

// Every token of `h`'s stream (empty on error or timeout).
Tokens Drain(RequestHandle& h) {
  Tokens out;
  StreamEvent ev;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  while (absl::Now() < end) {
    if (!h.Next(&ev, absl::Milliseconds(100))) continue;
    if (ev.kind == StreamEvent::Kind::kTokens) {
      out.insert(out.end(), ev.token_ids.begin(), ev.token_ids.end());
    } else if (ev.kind == StreamEvent::Kind::kComplete) {
      return out;
    } else {
      FAIL("stream ended with an error: " << ev.error.message());
    }
  }
  FAIL("timed out");
  return {};
}

SchedulerStats IdleStats(Scheduler& s) {
  REQUIRE(s.WaitUntilIdle(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(30));
  return s.GetStats();
}

int64_t TokensRun(const std::vector<RecordedStep>& steps, size_t from = 0) {
  int64_t n = 0;
  for (size_t i = from; i < steps.size(); ++i) n += steps[i].num_tokens;
  return n;
}

// Runs `prompts` one after another (each to completion before the next is submitted) and
// returns the outputs; `tokens_run[i]` is what the runner computed for request i.
std::vector<Tokens> RunInTurn(bool caching, const std::vector<Tokens>& prompts, int max_tokens,
                              std::vector<int64_t>* tokens_run, SchedulerStats* stats,
                              std::vector<std::vector<RecordedStep>>* steps = nullptr) {
  FakeModelRunner runner(FakeRunnerOptions{});  // blocks of 16 tokens
  SchedulerOptions opts;
  opts.enable_prefix_caching = caching;
  Scheduler sched(&runner, opts);
  REQUIRE(sched.Start().ok());
  std::vector<Tokens> out;
  tokens_run->clear();
  for (const Tokens& p : prompts) {
    const size_t before = runner.steps().size();
    auto h = sched.Submit(Greedy(p, max_tokens));
    REQUIRE(h.ok());
    out.push_back(Drain(**h));
    IdleStats(sched);
    const auto all = runner.steps();
    tokens_run->push_back(TokensRun(all, before));
    if (steps != nullptr) steps->emplace_back(all.begin() + before, all.end());
  }
  *stats = IdleStats(sched);
  REQUIRE(stats->num_free_kv_blocks == stats->num_kv_blocks);
  return out;
}

TEST_CASE("Prefix caching: a request sharing a 3-block prefix prefills only the rest and "
          "gives the same output") {
  const Tokens prefix = MakeTokens(48, 1);  // 3 blocks of 16
  const std::vector<Tokens> prompts = {Concat(prefix, MakeTokens(5, 2)),
                                       Concat(prefix, MakeTokens(7, 3))};
  std::vector<int64_t> on_run, off_run;
  SchedulerStats on, off;
  std::vector<std::vector<RecordedStep>> on_steps;
  const auto with = RunInTurn(true, prompts, 4, &on_run, &on, &on_steps);
  const auto without = RunInTurn(false, prompts, 4, &off_run, &off);
  for (size_t i = 0; i < prompts.size(); ++i) {
    REQUIRE(with[i] == FakeModelRunner::ReferenceGreedy(prompts[i], 4, kVocab));
    REQUIRE(without[i] == with[i]);
  }
  // First request: nothing cached. Second: 48 of its 55 prompt tokens are.
  REQUIRE(on_run[0] == off_run[0]);
  REQUIRE(off_run[1] == 55 + 3);
  REQUIRE(on_run[1] == 7 + 3);
  REQUIRE(on_steps[1][0].start_pos[0] == 48);
  REQUIRE(on.prefix_caching);
  REQUIRE(on.prefix_cache_queries_total == 53 + 55);
  REQUIRE(on.prefix_cache_hits_total == 48);
  REQUIRE(on.num_cached_kv_blocks > 0);
  REQUIRE_FALSE(off.prefix_caching);
  REQUIRE(off.prefix_cache_queries_total == 0);
  REQUIRE(off.prefix_cache_hits_total == 0);
  REQUIRE(off.num_cached_kv_blocks == 0);
}

TEST_CASE("Prefix caching: an identical prompt of k blocks reuses k-1 and still computes "
          "its last block; generated tokens are reusable too") {
  const Tokens prompt = MakeTokens(48, 5);
  std::vector<int64_t> run;
  SchedulerStats st;
  // The third prompt continues the first request's output: its generated tokens' blocks.
  Tokens continued = prompt;
  const Tokens gen = FakeModelRunner::ReferenceGreedy(prompt, 20, kVocab);
  continued.insert(continued.end(), gen.begin(), gen.end());  // 68 tokens
  const auto out = RunInTurn(true, {prompt, prompt, continued}, 20, &run, &st);
  REQUIRE(out[0] == gen);
  REQUIRE(out[1] == gen);
  REQUIRE(out[2] == FakeModelRunner::ReferenceGreedy(continued, 20, kVocab));
  REQUIRE(run[0] == 48 + 19);
  REQUIRE(run[1] == 16 + 19);  // blocks 0-1 reused, block 2 recomputed (holds position 47)
  // 67 tokens of the first run were computed (4 full blocks); all 4 match.
  REQUIRE(run[2] == (68 - 64) + 19);
  REQUIRE(st.prefix_cache_hits_total == 32 + 64);
}

TEST_CASE("Prefix caching: a preempted request re-attaches its own blocks on re-admission") {
  // Two 40-token prompts decoding to 70 tokens (5 blocks each) share 8 blocks: when the
  // older needs its 5th block, the newer is preempted. Its full blocks become evictable;
  // the older takes only the one it needs (the newer's last), so on re-admission the
  // newer finds its first three blocks still cached.
  auto run = [](bool caching, SchedulerStats* st, int64_t* tokens) {
    FakeRunnerOptions ro;
    ro.num_kv_blocks = 8;
    FakeModelRunner runner(ro);
    SchedulerOptions opts;
    opts.enable_prefix_caching = caching;
    Scheduler sched(&runner, opts);
    auto x = sched.Submit(Greedy(MakeTokens(40, 7), 30));
    auto y = sched.Submit(Greedy(MakeTokens(40, 8), 30));
    REQUIRE(x.ok());
    REQUIRE(y.ok());
    REQUIRE(sched.Start().ok());  // both queued first: the run is deterministic
    const std::vector<Tokens> out = {Drain(**x), Drain(**y)};
    *st = IdleStats(sched);
    *tokens = TokensRun(runner.steps());
    return out;
  };
  SchedulerStats on, off;
  int64_t on_tokens = 0, off_tokens = 0;
  const auto with = run(true, &on, &on_tokens);
  const auto without = run(false, &off, &off_tokens);
  REQUIRE(with[0] == FakeModelRunner::ReferenceGreedy(MakeTokens(40, 7), 30, kVocab));
  REQUIRE(with[1] == FakeModelRunner::ReferenceGreedy(MakeTokens(40, 8), 30, kVocab));
  REQUIRE(without == with);
  REQUIRE(on.num_preemptions == 1);
  REQUIRE(off.num_preemptions == 1);
  REQUIRE(on.prefix_cache_preempted_hits_total == 48);
  REQUIRE(off_tokens - on_tokens == 48);
  // Re-admissions are not counted as queries (as vLLM): two prompts of 40.
  REQUIRE(on.prefix_cache_queries_total == 80);
  REQUIRE(on.prefix_cache_hits_total == 0);
}

TEST_CASE("Prefix caching under KV pressure: many requests sharing prefixes, submitted at "
          "once, all get their solo output") {
  // 3 system prompts x random tails, 24 requests over 24 blocks: prefixes are computed
  // by several sequences at once (duplicates), reused, evicted and preempted.
  std::vector<Tokens> prompts;
  for (int i = 0; i < 24; ++i) {
    prompts.push_back(Concat(MakeTokens(20 + 12 * (i % 3), 30 + i % 3), MakeTokens(1 + i % 9, i)));
  }
  auto run = [&prompts](bool caching, SchedulerStats* st, int64_t* tokens) {
    FakeRunnerOptions ro;
    ro.num_kv_blocks = 24;
    FakeModelRunner runner(ro);
    SchedulerOptions opts;
    opts.enable_prefix_caching = caching;
    opts.max_num_seqs = 6;
    opts.max_num_batched_tokens = 40;
    Scheduler sched(&runner, opts);
    std::vector<std::shared_ptr<RequestHandle>> hs;
    for (const Tokens& p : prompts) {
      auto h = sched.Submit(Greedy(p, 25));
      REQUIRE(h.ok());
      hs.push_back(*h);
    }
    REQUIRE(sched.Start().ok());
    std::vector<Tokens> out;
    for (auto& h : hs) out.push_back(Drain(*h));
    *st = IdleStats(sched);
    REQUIRE(st->num_free_kv_blocks == 24);
    *tokens = TokensRun(runner.steps());
    return out;
  };
  SchedulerStats on, off;
  int64_t on_tokens = 0, off_tokens = 0;
  const auto with = run(true, &on, &on_tokens);
  const auto without = run(false, &off, &off_tokens);
  for (size_t i = 0; i < prompts.size(); ++i) {
    INFO("request " << i);
    REQUIRE(with[i] == FakeModelRunner::ReferenceGreedy(prompts[i], 25, kVocab));
    REQUIRE(without[i] == with[i]);
  }
  REQUIRE(on.prefix_cache_hits_total > 0);
  REQUIRE(on_tokens < off_tokens);
}

}  // namespace
}  // namespace moe::scheduler
