// A rate sweep's outputs: the list of rates from --sweep, a markdown table with one row
// per rate, and a hand-written SVG plot of output token throughput (x) against median
// and P99 latency (y), one panel for end-to-end latency and one for TTFT.
// Pure functions (WriteSweep writes files); thread-safe.
#ifndef MOE_TOOLS_BENCH_SWEEP_H_
#define MOE_TOOLS_BENCH_SWEEP_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/bench/metrics.h"

namespace moe::bench {

struct SweepPoint {
  double request_rate = 0.0;  // +inf for all at once
  Summary summary;
};

// "1,2,4,inf" -> {1, 2, 4, +inf}. Each rate > 0; InvalidArgument names the bad entry.
absl::StatusOr<std::vector<double>> ParseSweepRates(const std::string& text);

// "inf" or the rate with up to 3 significant decimals ("0.5", "16").
std::string RateLabel(double rate);

// A markdown table, header + one row per point, in the given order.
std::string SweepTable(absl::Span<const SweepPoint> points);

// A standalone SVG document (two panels).
std::string SweepSvg(absl::Span<const SweepPoint> points);

// Writes DIR/sweep.md and DIR/sweep.svg, creating DIR if needed. Errors name the file.
absl::Status WriteSweep(const std::string& dir, absl::Span<const SweepPoint> points);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_SWEEP_H_
