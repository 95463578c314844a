#include "tools/bench/report.h"

#include <limits>

#include <catch2/catch.hpp>

namespace moe::bench {
namespace {

std::vector<RequestRecord> Records() {
  std::vector<RequestRecord> v(4);
  for (int i = 0; i < 3; ++i) {
    v[i].index = i;
    v[i].ok = true;
    v[i].ttft_s = 0.1 * (i + 1);
    v[i].itl_s = {0.02, 0.02};
    v[i].latency_s = 0.1 * (i + 1) + 0.04;
    v[i].prompt_tokens = 10;
    v[i].output_tokens = 3;
  }
  v[3].index = 3;
  v[3].error = "HTTP 500: boom";
  return v;
}

TEST_CASE("The summary uses vLLM's labels and the computed figures", "[report]") {
  std::vector<RequestRecord> records = Records();
  std::vector<double> percentiles = {50, 90};
  Summary s = Summarize(records, 2.0, percentiles, SloTargets{});
  RunConfig config;
  config.backend = "openai";
  config.request_rate = std::numeric_limits<double>::infinity();
  std::string text = FormatSummary(s, config);
  for (const char* label :
       {"============ Serving Benchmark Result ============", "Successful requests:",
        "Benchmark duration (s):", "Total input tokens:", "Total generated tokens:",
        "Request throughput (req/s):", "Output token throughput (tok/s):",
        "Peak output token throughput (tok/s):", "Total Token throughput (tok/s):",
        "---------------Time to First Token----------------", "Mean TTFT (ms):",
        "Median TTFT (ms):", "P99 TTFT (ms):", "P90 TTFT (ms):", "Mean TPOT (ms):",
        "P99 ITL (ms):", "Median E2EL (ms):",
        "\n==================================================\n"}) {
    INFO(label);
    CHECK(text.find(label) != std::string::npos);
  }
  CHECK(text.find("Successful requests:                     3") != std::string::npos);
  CHECK(text.find("Failed requests:                         1") != std::string::npos);
  CHECK(text.find("Total input tokens:                      30") != std::string::npos);
  CHECK(text.find("Mean TTFT (ms):                          200.00") != std::string::npos);
  CHECK(text.find("Mean TPOT (ms):                          20.00") != std::string::npos);
  CHECK(text.find("Request goodput") == std::string::npos);

  std::string failures = FormatFailures(records);
  CHECK(failures.find("1  HTTP 500: boom") != std::string::npos);
  CHECK(FormatFailures(std::vector<RequestRecord>(records.begin(), records.begin() + 3)).empty());
}

TEST_CASE("The JSON holds every figure and every request", "[report]") {
  std::vector<RequestRecord> records = Records();
  Summary s = Summarize(records, 2.0, std::vector<double>{50}, SloTargets{});
  RunConfig config;
  config.request_rate = std::numeric_limits<double>::infinity();
  nlohmann::json j = RunToJson(config, s, records);
  CHECK(j["config"]["request_rate"] == "inf");
  CHECK(j["summary"]["completed"] == 3);
  CHECK(j["summary"]["failed"] == 1);
  CHECK(j["summary"]["total_output_tokens"] == 9);
  CHECK(j["summary"]["ttft"]["percentiles_ms"]["P50"].get<double>() == Approx(200.0));
  REQUIRE(j["requests"].size() == 4);
  CHECK(j["requests"][3]["ok"] == false);
  CHECK(j["requests"][3]["error"] == "HTTP 500: boom");
  CHECK(j["requests"][0]["itl_s"].size() == 2);
  CHECK(j["requests"][0]["tpot_s"].get<double>() == Approx(0.02));
  CHECK(PercentileLabel(99.9) == "P99.9");
}

}  // namespace
}  // namespace moe::bench
