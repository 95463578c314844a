#include "tools/bench/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace moe::bench {

double Percentile(absl::Span<const double> sorted, double p) {
  if (sorted.empty()) return 0.0;
  double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

MetricStats ComputeStats(std::vector<double> values_s, absl::Span<const double> percentiles) {
  MetricStats s;
  s.count = static_cast<int>(values_s.size());
  for (double& v : values_s) v *= 1000.0;
  std::sort(values_s.begin(), values_s.end());
  if (!values_s.empty()) {
    double sum = std::accumulate(values_s.begin(), values_s.end(), 0.0);
    s.mean_ms = sum / values_s.size();
    double sq = 0.0;
    for (double v : values_s) sq += (v - s.mean_ms) * (v - s.mean_ms);
    s.std_ms = std::sqrt(sq / values_s.size());
  }
  s.median_ms = Percentile(values_s, 50.0);
  s.p99_ms = Percentile(values_s, 99.0);
  for (double p : percentiles) s.percentiles_ms.emplace_back(p, Percentile(values_s, p));
  return s;
}

std::optional<double> RequestTpot(const RequestRecord& r) {
  if (!r.ok || r.output_tokens < 2) return std::nullopt;
  return (r.latency_s - r.ttft_s) / (r.output_tokens - 1);
}

double PeakOutputThroughput(absl::Span<const RequestRecord> records) {
  std::vector<std::pair<double, int>> events;  // (absolute time, tokens)
  for (const RequestRecord& r : records) {
    if (!r.ok) continue;
    size_t chunks = r.itl_s.size() + 1;
    if (r.output_tokens <= 0) continue;  // no token arrived
    double t = r.start_s + r.ttft_s;
    for (size_t k = 0; k < chunks; ++k) {
      if (k > 0) t += r.itl_s[k - 1];
      int n = k < r.chunk_tokens.size() ? r.chunk_tokens[k] : 1;
      events.emplace_back(t, n);
    }
  }
  std::sort(events.begin(), events.end());
  int64_t window = 0, best = 0;
  size_t first = 0;
  for (size_t j = 0; j < events.size(); ++j) {
    window += events[j].second;
    while (events[j].first - events[first].first >= 1.0) window -= events[first++].second;
    best = std::max(best, window);
  }
  return static_cast<double>(best);
}

Summary Summarize(absl::Span<const RequestRecord> records, double duration_s,
                  absl::Span<const double> percentiles, const SloTargets& slo) {
  Summary s;
  s.duration_s = duration_s;
  std::vector<double> ttfts, tpots, itls, e2els;
  int good = 0;
  for (const RequestRecord& r : records) {
    if (!r.ok) {
      ++s.failed;
      continue;
    }
    ++s.completed;
    s.total_input_tokens += r.prompt_tokens;
    s.total_output_tokens += r.output_tokens;
    if (!r.usage_from_server) ++s.requests_without_usage;
    ttfts.push_back(r.ttft_s);
    e2els.push_back(r.latency_s);
    itls.insert(itls.end(), r.itl_s.begin(), r.itl_s.end());
    std::optional<double> tpot = RequestTpot(r);
    if (tpot) tpots.push_back(*tpot);
    bool meets = (!slo.ttft_ms || r.ttft_s * 1000.0 <= *slo.ttft_ms) &&
                 (!slo.tpot_ms || tpot.value_or(0.0) * 1000.0 <= *slo.tpot_ms) &&
                 (!slo.e2el_ms || r.latency_s * 1000.0 <= *slo.e2el_ms);
    if (meets) ++good;
  }
  if (duration_s > 0.0) {
    s.request_throughput = s.completed / duration_s;
    s.output_throughput = s.total_output_tokens / duration_s;
    s.total_token_throughput = (s.total_input_tokens + s.total_output_tokens) / duration_s;
    if (!slo.empty()) s.request_goodput = good / duration_s;
  } else if (!slo.empty()) {
    s.request_goodput = 0.0;
  }
  s.peak_output_throughput = PeakOutputThroughput(records);
  s.ttft = ComputeStats(std::move(ttfts), percentiles);
  s.tpot = ComputeStats(std::move(tpots), percentiles);
  s.itl = ComputeStats(std::move(itls), percentiles);
  s.e2el = ComputeStats(std::move(e2els), percentiles);
  return s;
}

absl::StatusOr<std::vector<double>> ParsePercentiles(const std::string& text) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
    double p;
    if (!absl::SimpleAtod(part, &p) || !(p >= 0.0 && p <= 100.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric-percentiles: '", part, "' is not a number in [0, 100]"));
    }
    out.push_back(p);
  }
  return out;
}

absl::StatusOr<SloTargets> ParseGoodput(absl::Span<const std::string> items) {
  SloTargets slo;
  for (const std::string& item : items) {
    std::vector<std::string> kv = absl::StrSplit(item, ':');
    double ms;
    if (kv.size() != 2 || !absl::SimpleAtod(kv[1], &ms) || !(ms > 0.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("goodput: '", item, "' must be NAME:MS with MS > 0 (ttft, tpot, e2el)"));
    }
    if (kv[0] == "ttft") {
      slo.ttft_ms = ms;
    } else if (kv[0] == "tpot") {
      slo.tpot_ms = ms;
    } else if (kv[0] == "e2el") {
      slo.e2el_ms = ms;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("goodput: unknown metric '", kv[0], "' (ttft, tpot, e2el)"));
    }
  }
  return slo;
}

}  // namespace moe::bench
