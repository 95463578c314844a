// Expert-aware batching end to end: the scheduler over the real CPU runner on the trained
// decoupled-router model (exact footprints from TokenFootprint), with an expert cache
// capacity (override) too small for the experts of all concurrent requests.
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/model_runner.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/cpu_test_model.h"

namespace moe::scheduler {
namespace {

constexpr char kRouterModel[] = "tests/data/models/trained/router";
constexpr int kRequests = 8;
constexpr int kMaxTokens = 24;

testing::CpuTestModel LoadRouterModel() {
  auto m = testing::LoadCpuTestModel(kRouterModel, 64);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return *std::move(m);
}

struct Run {
  std::vector<std::vector<int32_t>> tokens;  // per request
  SchedulerStats stats;
};

// Submits kRequests greedy requests (all queued before the engine starts, so they run
// concurrently) and collects every stream.
Run Generate(engine::ModelRunner* runner, int vocab, SchedulerOptions opts) {
  opts.max_num_seqs = kRequests;
  opts.num_sampling_threads = 1;
  Scheduler s(runner, opts);
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < kRequests; ++i) {
    GenerateRequest r;
    for (int j = 0; j < 5 + i; ++j) r.prompt.push_back((i * 613 + j * 97 + 11) % vocab);
    r.max_tokens = kMaxTokens;
    r.ignore_eos = true;
    r.sampling.temperature = 0.f;
    auto h = s.Submit(std::move(r));
    REQUIRE(h.ok());
    handles.push_back(*h);
  }
  REQUIRE(s.Start().ok());
  Run run;
  for (auto& h : handles) {
    std::vector<int32_t> got;
    StreamEvent ev;
    bool complete = false;
    const absl::Time end = absl::Now() + absl::Seconds(120);
    while (!complete && absl::Now() < end) {
      if (!h->Next(&ev, absl::Milliseconds(100))) continue;
      if (ev.kind == StreamEvent::Kind::kTokens) {
        got.insert(got.end(), ev.token_ids.begin(), ev.token_ids.end());
      } else {
        INFO(ev.error.ToString());
        REQUIRE(ev.kind == StreamEvent::Kind::kComplete);
        complete = true;
      }
    }
    REQUIRE(complete);
    run.tokens.push_back(std::move(got));
  }
  REQUIRE(s.WaitUntilIdle(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(30));  // the engine's final stats publication
  run.stats = s.GetStats();
  return run;
}

TEST_CASE("expert-aware batching on the router model: same tokens, deferred decodes, bounded") {
  testing::CpuTestModel m = LoadRouterModel();
  const int keys = m.runner->expert_footprint_keys();
  REQUIRE(keys == m.config.num_layers * m.config.num_experts);
  // One decode token uses layers x k keys; the cache holds about two tokens' worth.
  const int per_token = m.config.num_layers * m.config.num_experts_per_tok;
  const int capacity = 2 * per_token - 2;

  SchedulerOptions off;
  const Run base = Generate(m.runner.get(), m.config.vocab_size, off);
  CHECK_FALSE(base.stats.expert_aware_active);
  CHECK(base.stats.expert_aware_deferred_total == 0);

  for (int max_skips : {1, 4}) {
    INFO("expert_aware_max_skips " << max_skips);
    SchedulerOptions on;
    on.expert_aware_batching = true;
    on.expert_aware_max_skips = max_skips;
    on.expert_cache_slots_override = capacity;
    const Run aware = Generate(m.runner.get(), m.config.vocab_size, on);
    CHECK(aware.stats.expert_aware_active);
    // Batching never changes what a request generates.
    REQUIRE(aware.tokens.size() == base.tokens.size());
    for (int i = 0; i < kRequests; ++i) {
      INFO("request " << i);
      CHECK(aware.tokens[i].size() == static_cast<size_t>(kMaxTokens));
      CHECK(aware.tokens[i] == base.tokens[i]);
    }
    CHECK(aware.stats.expert_aware_deferred_total > 0);
    // Nobody waited longer than the bound; some waited.
    CHECK(aware.stats.expert_aware_max_consecutive_skips >= 1);
    CHECK(aware.stats.expert_aware_max_consecutive_skips <= max_skips);
    // The cost: decodes spread over more steps.
    CHECK(aware.stats.num_steps > base.stats.num_steps);
  }
}

TEST_CASE("expert-aware batching stays off where every expert is resident") {
  testing::CpuTestModel m = LoadRouterModel();
  SchedulerOptions on;
  on.expert_aware_batching = true;  // no override: the CPU runner's expert_cache_slots() is 0
  const Run run = Generate(m.runner.get(), m.config.vocab_size, on);
  CHECK_FALSE(run.stats.expert_aware_active);
  CHECK(run.stats.expert_aware_deferred_total == 0);
  for (const auto& t : run.tokens) CHECK(t.size() == static_cast<size_t>(kMaxTokens));
}

// Forwards to the CPU runner and reports every footprint key as resident in the cache.
class AllResidentRunner : public engine::ModelRunner {
 public:
  explicit AllResidentRunner(engine::ModelRunner* inner) : inner_(inner) {}
  const engine::ModelConfig& config() const override { return inner_->config(); }
  int kv_block_size() const override { return inner_->kv_block_size(); }
  int num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  std::string device_name() const override { return inner_->device_name(); }
  absl::Status Forward(const engine::ForwardBatch& b, engine::ForwardResult* out) override {
    return inner_->Forward(b, out);
  }
  int32_t expert_footprint_keys() const override { return inner_->expert_footprint_keys(); }
  bool TokenFootprint(int32_t token, engine::ExpertFootprint* out) override {
    return inner_->TokenFootprint(token, out);
  }
  bool ResidentExpertKeys(std::vector<uint64_t>* bits) const override {
    ++calls;
    bits->assign((expert_footprint_keys() + 63) / 64, ~uint64_t{0});
    return true;
  }
  mutable int calls = 0;  // engine thread only; read after the scheduler is gone

 private:
  engine::ModelRunner* const inner_;
};

TEST_CASE("expert-aware batching defers nobody whose experts the cache already holds") {
  testing::CpuTestModel m = LoadRouterModel();
  const int capacity = 2 * m.config.num_layers * m.config.num_experts_per_tok - 2;
  SchedulerOptions off;
  const Run base = Generate(m.runner.get(), m.config.vocab_size, off);
  AllResidentRunner resident(m.runner.get());
  SchedulerOptions on;
  on.expert_aware_batching = true;
  on.expert_cache_slots_override = capacity;  // the same capacity that defers above
  on.expert_aware_miss_cost_steps = 10;       // misses priced high: deferring would pay
  const Run run = Generate(&resident, m.config.vocab_size, on);
  CHECK(run.stats.expert_aware_active);
  CHECK(resident.calls > 0);
  CHECK(run.stats.expert_aware_deferred_total == 0);
  CHECK(run.stats.num_steps == base.stats.num_steps);
  CHECK(run.tokens == base.tokens);
}

TEST_CASE("a negative expert_aware_miss_cost_steps is refused at Start, by name") {
  testing::CpuTestModel m = LoadRouterModel();
  SchedulerOptions o;
  o.expert_aware_miss_cost_steps = -0.5;
  Scheduler s(m.runner.get(), o);
  absl::Status st = s.Start();
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(st.message()).find("expert_aware_miss_cost_steps") != std::string::npos);
}

TEST_CASE("a negative expert_aware_max_skips is refused at Start, by name") {
  testing::CpuTestModel m = LoadRouterModel();
  SchedulerOptions o;
  o.expert_aware_max_skips = -1;
  Scheduler s(m.runner.get(), o);
  absl::Status st = s.Start();
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(st.message()).find("expert_aware_max_skips") != std::string::npos);
}

}  // namespace
}  // namespace moe::scheduler
