#include "server/metrics/prometheus.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace moe::server::metrics {

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatLabels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    absl::StrAppend(&out, labels[i].first, "=\"", EscapeLabelValue(labels[i].second), "\"");
  }
  out += "}";
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
  }
  // Shortest precision that reads back as the same double.
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void AppendHeader(std::string* out, const std::string& name, const std::string& help,
                  const std::string& type) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void AppendSample(std::string* out, const std::string& name, const Labels& labels, double v) {
  absl::StrAppend(out, name, FormatLabels(labels), " ", FormatValue(v), "\n");
}

void AppendCumulativeHistogram(std::string* out, const std::string& name,
                               const std::string& help, const Labels& labels,
                               const std::vector<double>& bounds,
                               const std::vector<int64_t>& cumulative, int64_t count,
                               double sum) {
  AppendHeader(out, name, help, "histogram");
  const size_t n = std::min(bounds.size(), cumulative.size());
  for (size_t b = 0; b <= n; ++b) {
    Labels with_le = labels;
    with_le.emplace_back("le", b < n ? FormatValue(bounds[b]) : "+Inf");
    AppendSample(out, name + "_bucket", with_le,
                 static_cast<double>(b < n ? cumulative[b] : count));
  }
  AppendSample(out, name + "_sum", labels, sum);
  AppendSample(out, name + "_count", labels, static_cast<double>(count));
}

void CounterFamily::Add(const Labels& labels, double delta) {
  if (!(delta >= 0)) return;
  absl::MutexLock lock(&mu_);
  values_[labels] += delta;
}

double CounterFamily::Get(const Labels& labels) const {
  absl::MutexLock lock(&mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0.0 : it->second;
}

void CounterFamily::Render(std::string* out) const {
  AppendHeader(out, name_, help_, "counter");
  absl::MutexLock lock(&mu_);
  for (const auto& [labels, v] : values_) AppendSample(out, name_, labels, v);
}

HistogramFamily::HistogramFamily(std::string name, std::string help, std::vector<double> bounds)
    : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}

void HistogramFamily::Observe(const Labels& labels, double v) {
  if (std::isnan(v)) return;
  size_t b = 0;
  while (b < bounds_.size() && v > bounds_[b]) ++b;
  absl::MutexLock lock(&mu_);
  Series& s = series_[labels];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size() + 1, 0);
  ++s.buckets[b];
  s.sum += v;
  ++s.count;
}

uint64_t HistogramFamily::Count(const Labels& labels) const {
  absl::MutexLock lock(&mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.count;
}

void HistogramFamily::Render(std::string* out) const {
  AppendHeader(out, name_, help_, "histogram");
  absl::MutexLock lock(&mu_);
  for (const auto& [labels, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= bounds_.size(); ++b) {
      cumulative += s.buckets[b];
      Labels with_le = labels;
      with_le.emplace_back("le", b < bounds_.size() ? FormatValue(bounds_[b]) : "+Inf");
      AppendSample(out, name_ + "_bucket", with_le, static_cast<double>(cumulative));
    }
    AppendSample(out, name_ + "_sum", labels, s.sum);
    AppendSample(out, name_ + "_count", labels, static_cast<double>(s.count));
  }
}

}  // namespace moe::server::metrics
