#include "server/metrics/metrics.h"

#include <catch2/catch.hpp>

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

}  // namespace
}  // namespace moe::server
