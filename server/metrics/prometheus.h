// Minimal Prometheus instruments and text exposition (format 0.0.4): counters, gauges
// and histograms, each a family keyed by label values. Only what the serving metrics
// need; no registry of arbitrary names at run time.
//
// Thread safety: every method may be called from any thread (one mutex per family).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe::server::metrics {

// Ordered (name, value) pairs, e.g. {{"model_name", "m"}, {"finished_reason", "stop"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// Escapes a label value as the text format requires (backslash, quote, newline).
std::string EscapeLabelValue(const std::string& v);
// `{a="x",b="y"}`, or "" for no labels.
std::string FormatLabels(const Labels& labels);
// Shortest text that round-trips a double; "+Inf", "-Inf", "NaN" as Prometheus spells them.
std::string FormatValue(double v);

// Writes "# HELP" and "# TYPE" lines.
void AppendHeader(std::string* out, const std::string& name, const std::string& help,
                  const std::string& type);
// Writes one sample line: name{labels} value.
void AppendSample(std::string* out, const std::string& name, const Labels& labels, double v);
// Writes a histogram's HELP/TYPE lines and one series from a snapshot kept elsewhere:
// `cumulative[i]` observations were <= bounds[i] (entries past the shorter of the two are
// dropped), `count` is the +Inf bucket and _count, `sum` the _sum.
void AppendCumulativeHistogram(std::string* out, const std::string& name,
                               const std::string& help, const Labels& labels,
                               const std::vector<double>& bounds,
                               const std::vector<int64_t>& cumulative, int64_t count, double sum);

class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help)
      : name_(std::move(name)), help_(std::move(help)) {}
  // `delta` must be >= 0 (negative deltas are ignored: counters never go down).
  void Add(const Labels& labels, double delta);
  double Get(const Labels& labels) const;
  void Render(std::string* out) const;

 private:
  const std::string name_, help_;
  mutable absl::Mutex mu_;
  std::map<Labels, double> values_ ABSL_GUARDED_BY(mu_);
};

class HistogramFamily {
 public:
  // `bounds`: the finite upper bounds, ascending; +Inf is implicit.
  HistogramFamily(std::string name, std::string help, std::vector<double> bounds);
  void Observe(const Labels& labels, double v);
  // Observations recorded so far for these labels.
  uint64_t Count(const Labels& labels) const;
  void Render(std::string* out) const;

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // non-cumulative, one per bound + the +Inf bucket
    double sum = 0;
    uint64_t count = 0;
  };
  const std::string name_, help_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<Labels, Series> series_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::server::metrics
