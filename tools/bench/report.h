// Presenting a run: the text summary in the layout vLLM's serving benchmark prints, the
// failed requests grouped by reason, and a JSON document with every figure and every
// per-request record. Pure functions (WriteJson writes one file); thread-safe.
#ifndef MOE_TOOLS_BENCH_REPORT_H_
#define MOE_TOOLS_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "nlohmann/json.hpp"
#include "tools/bench/metrics.h"

namespace moe::bench {

// What was run, echoed in the report and the JSON.
struct RunConfig {
  std::string backend;
  std::string endpoint;
  std::string model;
  std::string dataset;
  int num_prompts = 0;
  double request_rate = 0.0;  // +inf for all at once
  double burstiness = 1.0;
  int max_concurrency = 0;    // 0 = unlimited
  uint64_t seed = 0;
};

// "P99", "P99.9": the label vLLM uses for a percentile.
std::string PercentileLabel(double p);

// The "============ Serving Benchmark Result ============" block. Each metric shows
// mean, median, P99 and the percentiles the summary was computed with, in order.
std::string FormatSummary(const Summary& summary, const RunConfig& config);

// "Failed requests by reason:" with a count per distinct reason, most frequent first;
// empty when nothing failed. At most `max_reasons` reasons are listed.
std::string FormatFailures(absl::Span<const RequestRecord> records, int max_reasons = 10);

nlohmann::json SummaryToJson(const Summary& summary);
nlohmann::json RecordToJson(const RequestRecord& record);
// {"config": ..., "summary": ..., "requests": [...]}.
nlohmann::json RunToJson(const RunConfig& config, const Summary& summary,
                         absl::Span<const RequestRecord> records);

// Writes `doc` (indented) to `path`; the error names the file.
absl::Status WriteJson(const std::string& path, const nlohmann::json& doc);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_REPORT_H_
