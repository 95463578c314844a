// A routing trace: per step, per layer, the distinct experts the batch used. What the
// cache simulator replays, what an engine run can record, and (from exact predictors)
// the foresight Belady eviction consumes. Also a generator of synthetic traces with
// tunable popularity skew and temporal locality.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/experts/expert_key.h"

namespace moe::engine {

struct RoutingTrace {
  ExpertGrid grid;
  // steps[s][l]: distinct experts layer l used at step s (empty for a dense layer).
  std::vector<std::vector<std::vector<int32_t>>> steps;

  // The logical clock of the expert cache: step * num_layers + layer.
  int64_t Time(int64_t step, int32_t layer) const { return step * grid.num_layers + layer; }
  // Every step has num_layers layers; experts in range and distinct. Errors name the
  // step and layer.
  absl::Status Validate() const;
};

struct SyntheticTraceOptions {
  int steps = 100;
  int num_layers = 4;
  int num_experts = 16;
  int top_k = 2;
  int tokens_per_step = 1;  // the batch: a layer's set is the union over its tokens
  // Zipf exponent of expert popularity (each layer ranks its experts in its own random
  // order); 0: uniform.
  double popularity_skew = 0.0;
  // Probability that a token keeps its previous step's experts at a layer (temporal
  // locality, as consecutive tokens of one sequence show); 0: independent steps.
  double stickiness = 0.0;
  uint64_t seed = 0;
};

RoutingTrace MakeSyntheticTrace(const SyntheticTraceOptions& options);

}  // namespace moe::engine
