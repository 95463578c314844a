// Per-request measurements and the benchmark summary computed from them.
//
// Definitions (all the same as vLLM's serving benchmark):
//  - TTFT: request send -> first chunk carrying at least one token (non-empty).
//  - ITL: gaps between successive token-carrying chunks of one request.
//  - TPOT: (latency - TTFT) / (output_tokens - 1), only for requests with > 1 token.
//  - E2EL: request send -> end of the stream.
//  - Token counts: the server's usage; only successful requests count in totals.
//  - Percentiles: linear interpolation between closest ranks (numpy's default).
//  - Peak output throughput: the most output tokens whose chunks arrived within any
//    window [t, t + 1 s), over all requests (a chunk's tokens count at its arrival).
//  - Goodput: successful requests meeting every given SLO, per second of duration; a
//    request with one output token has TPOT 0 for this purpose.
// All functions are pure and thread-safe.
#ifndef MOE_TOOLS_BENCH_METRICS_H_
#define MOE_TOOLS_BENCH_METRICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moe::bench {

struct RequestRecord {
  int index = 0;           // dataset index
  bool ok = false;
  std::string error;       // why it failed; empty when ok
  double start_s = 0.0;    // send time, seconds since the benchmark started
  double ttft_s = 0.0;     // 0 when no token arrived
  double latency_s = 0.0;  // end-to-end, send -> end of stream (or failure)
  std::vector<double> itl_s;
  // Tokens carried by each token-carrying chunk (size itl_s.size() + 1 when any token
  // arrived). Empty means one token per chunk.
  std::vector<int> chunk_tokens;
  int prompt_tokens = 0;
  int output_tokens = 0;
  bool usage_from_server = true;  // false: the server sent no usage, counts are estimates
};

struct SloTargets {
  std::optional<double> ttft_ms;
  std::optional<double> tpot_ms;
  std::optional<double> e2el_ms;
  bool empty() const { return !ttft_ms && !tpot_ms && !e2el_ms; }
};

// Statistics of one metric, in milliseconds. All zero when there are no samples.
struct MetricStats {
  int count = 0;
  double mean_ms = 0.0;
  double median_ms = 0.0;
  double std_ms = 0.0;  // population standard deviation
  double p99_ms = 0.0;
  std::vector<std::pair<double, double>> percentiles_ms;  // (p, value) as requested
};

struct Summary {
  double duration_s = 0.0;
  int completed = 0;
  int failed = 0;
  int64_t total_input_tokens = 0;
  int64_t total_output_tokens = 0;
  double request_throughput = 0.0;
  double output_throughput = 0.0;
  double total_token_throughput = 0.0;
  double peak_output_throughput = 0.0;
  std::optional<double> request_goodput;  // set when SLOs were given
  int requests_without_usage = 0;
  MetricStats ttft, tpot, itl, e2el;
};

// The p-th percentile (p in [0, 100]) of `sorted` (ascending), numpy-style linear
// interpolation. 0 for an empty span.
double Percentile(absl::Span<const double> sorted, double p);

// Mean, median, population std, P99 and `percentiles` of `values_s` (seconds), in ms.
MetricStats ComputeStats(std::vector<double> values_s, absl::Span<const double> percentiles);

// Per-request TPOT in seconds, or nullopt for a failed request or one with < 2 tokens.
std::optional<double> RequestTpot(const RequestRecord& r);

// Most tokens in any 1 s window; 0 when there are none.
double PeakOutputThroughput(absl::Span<const RequestRecord> records);

Summary Summarize(absl::Span<const RequestRecord> records, double duration_s,
                  absl::Span<const double> percentiles, const SloTargets& slo);

// "50,90,99" -> {50, 90, 99}; each in [0, 100]. InvalidArgument names the bad entry.
absl::StatusOr<std::vector<double>> ParsePercentiles(const std::string& text);

// {"ttft:200", "tpot:50", "e2el:2000"} (milliseconds, each > 0) -> SloTargets.
absl::StatusOr<SloTargets> ParseGoodput(absl::Span<const std::string> items);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_METRICS_H_
