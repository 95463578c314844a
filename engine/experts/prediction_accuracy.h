// Accuracy of expert predictions, by prediction depth (1 = the next MoE layer) and by
// target layer: precision = correct / predicted, recall = correct / actual, counted over
// sets of distinct experts (micro-averaged: sums of counts, then the ratios).
//
// Thread safety: not thread safe; one owner records (the engine thread), readers copy.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace moe::engine {

struct PredictionCounts {
  int64_t events = 0;     // predictions recorded
  int64_t predicted = 0;  // distinct experts predicted
  int64_t actual = 0;     // distinct experts actually used
  int64_t correct = 0;    // in both

  double precision() const { return predicted == 0 ? 1.0 : double(correct) / predicted; }
  double recall() const { return actual == 0 ? 1.0 : double(correct) / actual; }
  void Add(const PredictionCounts& o);
};

class PredictionAccuracy {
 public:
  PredictionAccuracy(int max_depth, int num_layers);

  // A prediction made `depth` MoE layers ahead (1 <= depth <= max_depth) of the experts
  // `layer` would use, against what it used. Duplicates in either list count once.
  // Out-of-range depth or layer is ignored.
  void Record(int layer, int depth, absl::Span<const int32_t> predicted,
              absl::Span<const int32_t> actual);

  const PredictionCounts& ByDepth(int depth) const { return by_depth_[depth - 1]; }
  const PredictionCounts& ByLayer(int layer) const { return by_layer_[layer]; }
  PredictionCounts Total() const;
  int max_depth() const { return static_cast<int>(by_depth_.size()); }
  void Merge(const PredictionAccuracy& other);  // same shape required
  // "depth 1: precision 0.913 recall 0.874 (1200 predictions)\n..." per depth.
  std::string Summary() const;

 private:
  std::vector<PredictionCounts> by_depth_;
  std::vector<PredictionCounts> by_layer_;
};

}  // namespace moe::engine
