#include "server/metrics/metrics.h"

#include <catch2/catch.hpp>

#include "scheduler/testing/fake_model_runner.h"

namespace moe::server {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

TEST_CASE("metrics render vLLM names with model_name and move with finished requests") {
  Metrics m("tiny \"model\"");
  scheduler::SchedulerStats st;
  st.num_running = 2;
  st.num_waiting = 3;
  st.num_kv_blocks = 10;
  st.num_free_kv_blocks = 4;
  st.num_preemptions = 5;
  std::string text = m.Render(&st);
  const std::string lbl = "{model_name=\"tiny \\\"model\\\"\"}";
  CHECK(Has(text, "vllm:num_requests_running" + lbl + " 2.0\n"));
  CHECK(Has(text, "vllm:num_requests_waiting" + lbl + " 3.0\n"));
  CHECK(Has(text, "vllm:kv_cache_usage_perc" + lbl + " 0.6\n"));
  CHECK(Has(text, "vllm:num_preemptions_total" + lbl + " 5.0\n"));
  CHECK(Has(text, "# TYPE vllm:time_to_first_token_seconds histogram\n"));

  FinishedRequestStats r;
  r.finished_reason = "length";
  r.prompt_tokens = 7;
  r.generation_tokens = 5;
  r.time_to_first_token_s = 0.03;
  r.e2e_latency_s = 0.07;
  m.OnRequestFinished(r);
  m.OnRequestFinished(r);
  text = m.Render(nullptr);
  CHECK(Has(text, "vllm:prompt_tokens_total" + lbl + " 14.0\n"));
  CHECK(Has(text, "vllm:generation_tokens_total" + lbl + " 10.0\n"));
  CHECK(Has(text, "vllm:request_success_total{model_name=\"tiny \\\"model\\\"\","
                  "finished_reason=\"length\"} 2.0\n"));
  CHECK(Has(text, "vllm:time_to_first_token_seconds_count" + lbl + " 2.0\n"));
  // 0.03 s falls in the le=0.04 bucket but not in le=0.02.
  CHECK(Has(text, "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny \\\"model\\\"\","
                  "le=\"0.02\"} 0.0\n"));
  CHECK(Has(text, "vllm:time_to_first_token_seconds_bucket{model_name=\"tiny \\\"model\\\"\","
                  "le=\"0.04\"} 2.0\n"));
  CHECK(Has(text, "le=\"+Inf\"} 2.0\n"));
  // (0.07 - 0.03) / 4 = 0.01 per output token.
  CHECK(Has(text, "vllm:time_per_output_token_seconds_count" + lbl + " 2.0\n"));
  CHECK(Has(text, "vllm:num_requests_running" + lbl + " 0.0\n"));
}

TEST_CASE("metrics render the prefix cache counters vLLM users dashboard") {
  Metrics m("m");
  const std::string lbl = "{model_name=\"m\"}";
  std::string text = m.Render(nullptr);
  CHECK(Has(text, "# TYPE vllm:prefix_cache_queries_total counter\n"));
  CHECK(Has(text, "# TYPE vllm:prefix_cache_hits_total counter\n"));
  CHECK(Has(text, "moe_prefix_cache_hit_rate" + lbl + " 0.0\n"));
  scheduler::SchedulerStats st;
  st.prefix_caching = true;
  st.prefix_cache_queries_total = 400;
  st.prefix_cache_hits_total = 300;
  st.prefix_cache_preempted_hits_total = 32;
  st.num_cached_kv_blocks = 7;
  text = m.Render(&st);
  CHECK(Has(text, "vllm:prefix_cache_queries_total" + lbl + " 400.0\n"));
  CHECK(Has(text, "vllm:prefix_cache_hits_total" + lbl + " 300.0\n"));
  CHECK(Has(text, "moe_prefix_cache_hit_rate" + lbl + " 0.75\n"));
  CHECK(Has(text, "moe_prefix_cache_preempted_hits_total" + lbl + " 32.0\n"));
  CHECK(Has(text, "moe_kv_blocks_cached" + lbl + " 7.0\n"));
}

TEST_CASE("metrics render the scheduler's step timing") {
  Metrics m("m");
  const std::string lbl = "{model_name=\"m\"}";
  std::string text = m.Render(nullptr);  // still loading: zeros, families present
  CHECK(Has(text, "# TYPE moe_scheduler_forward_seconds_total counter\n"));
  CHECK(Has(text, "moe_scheduler_host_seconds_total" + lbl + " 0.0\n"));
  CHECK(Has(text, "moe_scheduler_step_host_seconds_count" + lbl + " 0.0\n"));
  CHECK(Has(text, "moe_scheduler_expert_aware_deferred_total" + lbl + " 0.0\n"));

  scheduler::SchedulerStats st;
  st.num_steps = 40;
  st.forward_seconds_total = 1.5;
  st.host_seconds_total = 0.0625;
  st.last_step_num_seqs = 256;
  st.expert_aware_deferred_total = 17;
  st.host_phases.compose_s = 0.0078125;
  st.host_phases.emit_s = 0.015625;
  const auto& bounds = scheduler::StepHostSecondsBounds();
  for (size_t i = 0; i < bounds.size(); ++i) {
    st.step_host_seconds_buckets[i] = bounds[i] >= 0.001 ? 40 : 0;
  }
  text = m.Render(&st);
  CHECK(Has(text, "moe_scheduler_steps_total" + lbl + " 40.0\n"));
  CHECK(Has(text, "moe_scheduler_forward_seconds_total" + lbl + " 1.5\n"));
  CHECK(Has(text, "moe_scheduler_host_seconds_total" + lbl + " 0.0625\n"));
  CHECK(Has(text, "# TYPE moe_scheduler_host_phase_seconds_total counter\n"));
  CHECK(Has(text, "moe_scheduler_host_phase_seconds_total{model_name=\"m\",phase=\"compose\"} 0.0078125\n"));
  CHECK(Has(text, "moe_scheduler_host_phase_seconds_total{model_name=\"m\",phase=\"emit\"} 0.015625\n"));
  CHECK(Has(text, "moe_scheduler_host_phase_seconds_total{model_name=\"m\",phase=\"sample\"} 0.0\n"));
  // 0.0625 - (0.0078125 + 0.015625) of the host time is outside the named phases.
  CHECK(Has(text, "moe_scheduler_host_phase_seconds_total{model_name=\"m\",phase=\"other\"} 0.0390625\n"));
  CHECK(Has(text, "# TYPE moe_scheduler_running_seqs_at_last_step gauge\n"));
  CHECK(Has(text, "moe_scheduler_running_seqs_at_last_step" + lbl + " 256.0\n"));
  CHECK(Has(text, "# TYPE moe_scheduler_expert_aware_deferred_total counter\n"));
  CHECK(Has(text, "moe_scheduler_expert_aware_deferred_total" + lbl + " 17.0\n"));
  CHECK(Has(text, "moe_scheduler_step_host_seconds_bucket{model_name=\"m\",le=\"0.0005\"} 0.0\n"));
  CHECK(Has(text, "moe_scheduler_step_host_seconds_bucket{model_name=\"m\",le=\"0.001\"} 40.0\n"));
  CHECK(Has(text, "moe_scheduler_step_host_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 40.0\n"));
  CHECK(Has(text, "moe_scheduler_step_host_seconds_sum" + lbl + " 0.0625\n"));
}

engine::OffloadStats TwoLayerOffload() {
  engine::OffloadStats s;
  s.num_slots = 96;
  s.num_experts_total = 1024;
  s.h2d_bytes = 6291456;
  s.prefetch = "next-gate";
  s.policy = "lru";
  engine::OffloadLayerStats a;
  a.layer = 0;
  a.hits = 30;
  a.misses = 10;
  a.prefetch_issued = 12;
  a.prefetch_used = 9;
  a.prefetch_wasted = 3;
  a.predicted = 16;
  a.predicted_correct = 12;
  a.actual = 40;
  engine::OffloadLayerStats b;  // nothing predicted: no precision / recall sample
  b.layer = 5;
  b.hits = 4;
  b.misses = 36;
  b.actual = 40;
  s.layers = {a, b};
  s.stall_bucket_bounds = {0.001, 0.01};
  s.stall_bucket_counts = {3, 7};
  s.stall_count = 8;
  s.stall_seconds_sum = 0.125;
  return s;
}

TEST_CASE("offload metrics appear only when the runner reports them, with its values") {
  scheduler::testing::FakeModelRunner runner(scheduler::testing::FakeRunnerOptions{});
  scheduler::Scheduler sched(&runner, scheduler::SchedulerOptions{});
  Metrics m("m");
  const std::string lbl = "{model_name=\"m\"}";

  scheduler::SchedulerStats st = sched.GetStats();
  std::string text = m.Render(&st);
  CHECK_FALSE(Has(text, "moe_expert"));
  CHECK_FALSE(Has(text, "moe_prefetch"));
  CHECK_FALSE(Has(text, "moe_predictor"));

  runner.set_offload_stats(TwoLayerOffload());
  st = sched.GetStats();
  text = m.Render(&st);
  auto layer = [](int l) { return "{model_name=\"m\",layer=\"" + std::to_string(l) + "\"}"; };
  CHECK(Has(text, "# TYPE moe_expert_cache_hits_total counter\n"));
  CHECK(Has(text, "moe_expert_cache_hits_total" + layer(0) + " 30.0\n"));
  CHECK(Has(text, "moe_expert_cache_hits_total" + layer(5) + " 4.0\n"));
  CHECK(Has(text, "moe_expert_cache_misses_total" + layer(5) + " 36.0\n"));
  CHECK(Has(text, "moe_prefetch_issued_total" + layer(0) + " 12.0\n"));
  CHECK(Has(text, "moe_prefetch_used_total" + layer(0) + " 9.0\n"));
  CHECK(Has(text, "moe_prefetch_wasted_total" + layer(0) + " 3.0\n"));
  CHECK(Has(text, "# TYPE moe_expert_h2d_bytes_total counter\n"));
  CHECK(Has(text, "moe_expert_h2d_bytes_total" + lbl + " 6291456.0\n"));
  // Precision 12/16, recall 12/40; layer 5 predicted nothing and is left out.
  CHECK(Has(text, "# TYPE moe_predictor_precision gauge\n"));
  CHECK(Has(text, "moe_predictor_precision" + layer(0) + " 0.75\n"));
  CHECK(Has(text, "moe_predictor_recall" + layer(0) + " 0.3\n"));
  CHECK_FALSE(Has(text, "moe_predictor_precision" + layer(5)));
  CHECK_FALSE(Has(text, "moe_predictor_recall" + layer(5)));
  CHECK(Has(text, "# TYPE moe_expert_stall_seconds histogram\n"));
  CHECK(Has(text, "moe_expert_stall_seconds_bucket{model_name=\"m\",le=\"0.001\"} 3.0\n"));
  CHECK(Has(text, "moe_expert_stall_seconds_bucket{model_name=\"m\",le=\"0.01\"} 7.0\n"));
  CHECK(Has(text, "moe_expert_stall_seconds_bucket{model_name=\"m\",le=\"+Inf\"} 8.0\n"));
  CHECK(Has(text, "moe_expert_stall_seconds_sum" + lbl + " 0.125\n"));
  CHECK(Has(text, "moe_expert_stall_seconds_count" + lbl + " 8.0\n"));
  CHECK(Has(text, "moe_expert_cache_slots" + lbl + " 96.0\n"));
  CHECK(Has(text, "moe_expert_cache_experts_total" + lbl + " 1024.0\n"));
  CHECK(Has(text, "# TYPE moe_expert_offload_info gauge\n"));
  CHECK(Has(text, "moe_expert_offload_info{model_name=\"m\",prefetch=\"next-gate\","
                  "policy=\"lru\"} 1.0\n"));

  runner.set_offload_stats(std::nullopt);
  st = sched.GetStats();
  CHECK_FALSE(Has(m.Render(&st), "moe_expert"));
}

TEST_CASE("prefix cache metrics follow a scheduler whose requests share a prefix") {
  scheduler::testing::FakeModelRunner runner(scheduler::testing::FakeRunnerOptions{});
  scheduler::Scheduler sched(&runner, scheduler::SchedulerOptions{});  // caching on
  REQUIRE(sched.Start().ok());
  std::vector<int32_t> prompt;
  for (int i = 0; i < 40; ++i) prompt.push_back((i * 5 + 3) % 64);  // 2 full blocks + 8
  for (int r = 0; r < 2; ++r) {
    scheduler::GenerateRequest req;
    req.prompt = prompt;
    req.max_tokens = 2;
    auto h = sched.Submit(std::move(req));
    REQUIRE(h.ok());
    scheduler::StreamEvent ev;
    while ((*h)->Next(&ev, absl::Seconds(10)) && ev.kind == scheduler::StreamEvent::Kind::kTokens) {
    }
    REQUIRE(ev.kind == scheduler::StreamEvent::Kind::kComplete);
    REQUIRE(sched.WaitUntilIdle(absl::Seconds(10)));
  }
  absl::SleepFor(absl::Milliseconds(30));  // the engine's final stats publication
  const scheduler::SchedulerStats st = sched.GetStats();
  Metrics m("m");
  const std::string text = m.Render(&st);
  const std::string lbl = "{model_name=\"m\"}";
  CHECK(Has(text, "vllm:prefix_cache_queries_total" + lbl + " 80.0\n"));
  CHECK(Has(text, "vllm:prefix_cache_hits_total" + lbl + " 32.0\n"));
  CHECK(Has(text, "moe_prefix_cache_hit_rate" + lbl + " 0.4\n"));
  CHECK(Has(text, "moe_kv_blocks_cached" + lbl + " 2.0\n"));
  CHECK(Has(text, "vllm:kv_cache_usage_perc" + lbl + " 0.0\n"));  // cached blocks are free
}

}  // namespace
}  // namespace moe::server
