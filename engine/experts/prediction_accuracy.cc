#include "engine/experts/prediction_accuracy.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace moe::engine {

void PredictionCounts::Add(const PredictionCounts& o) {
  events += o.events;
  predicted += o.predicted;
  actual += o.actual;
  correct += o.correct;
}

PredictionAccuracy::PredictionAccuracy(int max_depth, int num_layers)
    : by_depth_(std::max(max_depth, 0)), by_layer_(std::max(num_layers, 0)) {}

void PredictionAccuracy::Record(int layer, int depth, absl::Span<const int32_t> predicted,
                                absl::Span<const int32_t> actual) {
  if (depth < 1 || depth > max_depth() || layer < 0 || layer >= (int)by_layer_.size()) return;
  std::vector<int32_t> p(predicted.begin(), predicted.end()), a(actual.begin(), actual.end());
  std::sort(p.begin(), p.end());
  p.erase(std::unique(p.begin(), p.end()), p.end());
  std::sort(a.begin(), a.end());
  a.erase(std::unique(a.begin(), a.end()), a.end());
  std::vector<int32_t> both;
  std::set_intersection(p.begin(), p.end(), a.begin(), a.end(), std::back_inserter(both));
  PredictionCounts c;
  c.events = 1;
  c.predicted = static_cast<int64_t>(p.size());
  c.actual = static_cast<int64_t>(a.size());
  c.correct = static_cast<int64_t>(both.size());
  by_depth_[depth - 1].Add(c);
  by_layer_[layer].Add(c);
}

PredictionCounts PredictionAccuracy::Total() const {
  PredictionCounts t;
  for (const auto& c : by_depth_) t.Add(c);
  return t;
}

void PredictionAccuracy::Merge(const PredictionAccuracy& other) {
  for (size_t i = 0; i < by_depth_.size() && i < other.by_depth_.size(); ++i)
    by_depth_[i].Add(other.by_depth_[i]);
  for (size_t i = 0; i < by_layer_.size() && i < other.by_layer_.size(); ++i)
    by_layer_[i].Add(other.by_layer_[i]);
}

std::string PredictionAccuracy::Summary() const {
  std::string s;
  for (int d = 1; d <= max_depth(); ++d) {
    const auto& c = ByDepth(d);
    absl::StrAppendFormat(&s, "depth %d: precision %.3f recall %.3f (%d predictions)\n", d,
                          c.precision(), c.recall(), c.events);
  }
  return s;
}

}  // namespace moe::engine
