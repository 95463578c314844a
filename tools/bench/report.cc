#include "tools/bench/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace moe::bench {
namespace {

std::string Line(const std::string& label, const std::string& value) {
  return absl::StrFormat("%-40s %-10s\n", label, value);
}
std::string Fixed(double v) { return absl::StrFormat("%.2f", v); }

// "-----Title-----" centred in 50 columns, filled with `fill`.
std::string Banner(const std::string& title, char fill) {
  const int width = 50;
  int pad = width - static_cast<int>(title.size());
  if (pad < 0) pad = 0;
  int left = pad / 2;
  return std::string(left, fill) + title + std::string(pad - left, fill) + "\n";
}

std::string MetricBlock(const std::string& title, const std::string& name, const MetricStats& s) {
  std::string out = Banner(title, '-');
  out += Line(absl::StrCat("Mean ", name, " (ms):"), Fixed(s.mean_ms));
  out += Line(absl::StrCat("Median ", name, " (ms):"), Fixed(s.median_ms));
  // P99 always, plus the requested percentiles but 50, in increasing order.
  std::map<double, double> shown = {{99.0, s.p99_ms}};
  for (const auto& [p, v] : s.percentiles_ms) {
    if (p != 50.0) shown[p] = v;  // P50 is the median line
  }
  for (const auto& [p, v] : shown) {
    out += Line(absl::StrCat(PercentileLabel(p), " ", name, " (ms):"), Fixed(v));
  }
  return out;
}

nlohmann::json StatsToJson(const MetricStats& s) {
  nlohmann::json j = {{"count", s.count},       {"mean_ms", s.mean_ms}, {"median_ms", s.median_ms},
                      {"std_ms", s.std_ms},     {"p99_ms", s.p99_ms}};
  nlohmann::json p = nlohmann::json::object();
  for (const auto& [pct, v] : s.percentiles_ms) p[PercentileLabel(pct)] = v;
  j["percentiles_ms"] = p;
  return j;
}

// JSON has no infinity: an infinite rate is written as the string "inf".
nlohmann::json Rate(double r) { return std::isinf(r) ? nlohmann::json("inf") : nlohmann::json(r); }

}  // namespace

std::string PercentileLabel(double p) {
  if (p == std::floor(p)) return absl::StrCat("P", static_cast<int>(p));
  return absl::StrCat("P", p);
}

std::string FormatSummary(const Summary& s, const RunConfig& config) {
  std::string out = "============ Serving Benchmark Result ============\n";
  out += Line("Backend:", config.backend);
  out += Line("Traffic request rate:",
              std::isinf(config.request_rate) ? "inf" : Fixed(config.request_rate));
  if (!std::isinf(config.request_rate)) out += Line("Burstiness factor:", Fixed(config.burstiness));
  if (config.max_concurrency > 0) {
    out += Line("Maximum request concurrency:", absl::StrCat(config.max_concurrency));
  }
  out += Line("Successful requests:", absl::StrCat(s.completed));
  out += Line("Failed requests:", absl::StrCat(s.failed));
  out += Line("Benchmark duration (s):", Fixed(s.duration_s));
  out += Line("Total input tokens:", absl::StrCat(s.total_input_tokens));
  out += Line("Total generated tokens:", absl::StrCat(s.total_output_tokens));
  out += Line("Request throughput (req/s):", Fixed(s.request_throughput));
  if (s.request_goodput) out += Line("Request goodput (req/s):", Fixed(*s.request_goodput));
  out += Line("Output token throughput (tok/s):", Fixed(s.output_throughput));
  out += Line("Peak output token throughput (tok/s):", Fixed(s.peak_output_throughput));
  out += Line("Total Token throughput (tok/s):", Fixed(s.total_token_throughput));
  if (s.requests_without_usage > 0) {
    out += Line("Requests without server usage:", absl::StrCat(s.requests_without_usage));
  }
  out += MetricBlock("Time to First Token", "TTFT", s.ttft);
  out += MetricBlock("Time per Output Token (excl. 1st token)", "TPOT", s.tpot);
  out += MetricBlock("Inter-token Latency", "ITL", s.itl);
  out += MetricBlock("End-to-end Latency", "E2EL", s.e2el);
  out += std::string(50, '=') + "\n";
  return out;
}

std::string FormatFailures(absl::Span<const RequestRecord> records, int max_reasons) {
  std::map<std::string, int> counts;
  for (const RequestRecord& r : records) {
    if (!r.ok) ++counts[r.error];
  }
  if (counts.empty()) return "";
  std::vector<std::pair<std::string, int>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out = "Failed requests by reason:\n";
  for (size_t i = 0; i < sorted.size() && static_cast<int>(i) < max_reasons; ++i) {
    absl::StrAppendFormat(&out, "  %6d  %s\n", sorted[i].second, sorted[i].first);
  }
  if (static_cast<int>(sorted.size()) > max_reasons) {
    absl::StrAppendFormat(&out, "  ... and %d more reasons (see --json-out)\n",
                          static_cast<int>(sorted.size()) - max_reasons);
  }
  return out;
}

nlohmann::json SummaryToJson(const Summary& s) {
  nlohmann::json j = {
      {"duration_s", s.duration_s},
      {"completed", s.completed},
      {"failed", s.failed},
      {"total_input_tokens", s.total_input_tokens},
      {"total_output_tokens", s.total_output_tokens},
      {"request_throughput", s.request_throughput},
      {"output_throughput", s.output_throughput},
      {"total_token_throughput", s.total_token_throughput},
      {"peak_output_throughput", s.peak_output_throughput},
      {"requests_without_usage", s.requests_without_usage},
      {"ttft", StatsToJson(s.ttft)},
      {"tpot", StatsToJson(s.tpot)},
      {"itl", StatsToJson(s.itl)},
      {"e2el", StatsToJson(s.e2el)},
  };
  j["request_goodput"] = s.request_goodput ? nlohmann::json(*s.request_goodput) : nlohmann::json();
  return j;
}

nlohmann::json RecordToJson(const RequestRecord& r) {
  nlohmann::json j = {
      {"index", r.index},
      {"ok", r.ok},
      {"error", r.error},
      {"start_s", r.start_s},
      {"ttft_s", r.ttft_s},
      {"latency_s", r.latency_s},
      {"itl_s", r.itl_s},
      {"chunk_tokens", r.chunk_tokens},
      {"prompt_tokens", r.prompt_tokens},
      {"output_tokens", r.output_tokens},
      {"usage_from_server", r.usage_from_server},
  };
  std::optional<double> tpot = RequestTpot(r);
  j["tpot_s"] = tpot ? nlohmann::json(*tpot) : nlohmann::json();
  return j;
}

nlohmann::json RunToJson(const RunConfig& c, const Summary& summary,
                         absl::Span<const RequestRecord> records) {
  nlohmann::json config = {
      {"backend", c.backend},
      {"endpoint", c.endpoint},
      {"model", c.model},
      {"dataset", c.dataset},
      {"num_prompts", c.num_prompts},
      {"request_rate", Rate(c.request_rate)},
      {"burstiness", c.burstiness},
      {"max_concurrency", c.max_concurrency},
      {"seed", c.seed},
  };
  nlohmann::json reqs = nlohmann::json::array();
  for (const RequestRecord& r : records) reqs.push_back(RecordToJson(r));
  return {{"config", config}, {"summary", SummaryToJson(summary)}, {"requests", reqs}};
}

absl::Status WriteJson(const std::string& path, const nlohmann::json& doc) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat(path, ": cannot open for writing"));
  out << doc.dump(2) << "\n";
  if (!out) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace moe::bench
