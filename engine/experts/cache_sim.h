// Trace-driven expert cache simulator: replays a RoutingTrace through an ExpertCache
// with a chosen eviction policy and prefetch depth, and reports hit rate, bytes moved and
// prediction accuracy. Transfers are modelled as instantaneous (every copy lands before
// the next layer), so the result counts traffic and misses, not stall time.
//
// Per layer l of step s (clock = s * num_layers + l):
//   1. the layer's experts are acquired (misses fetched on demand) and pinned;
//   2. with prefetch_depth d > 0, the predictor names the experts of layers l+1..l+d
//      (of this step; of the next step too with prefetch_across_steps) and each is
//      prefetched — the cache may decline (no room, or Belady finds it pointless);
//   3. the layer's pins are released.
// Predictions: kExact reads the trace (what a pre-gated or decoupled-router model
// knows); kNoisy replaces each true expert, with probability `noise`, by a random wrong
// one (a stand-in for a speculative next-gate predictor of known accuracy).
// Belady's oracle holds the whole trace, or only the uses within `belady_horizon`
// clock ticks of now (a limited lookahead).
//
// Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/experts/eviction_policy.h"
#include "engine/experts/expert_cache.h"
#include "engine/experts/prediction_accuracy.h"
#include "engine/experts/routing_trace.h"

namespace moe::engine {

enum class SimPredictions { kExact, kNoisy };

struct CacheSimOptions {
  int32_t num_slots = 0;
  uint64_t bytes_per_expert = 1;
  EvictionPolicyKind policy = EvictionPolicyKind::kLru;
  int prefetch_depth = 0;  // 0: on demand only
  SimPredictions predictions = SimPredictions::kExact;
  double noise = 0.0;  // kNoisy: probability each predicted expert is wrong
  bool prefetch_across_steps = false;
  int64_t belady_horizon = -1;  // clock ticks of foresight; -1: the whole trace
  uint64_t seed = 0;
};

struct CacheSimResult {
  ExpertCacheStats stats;
  std::vector<PredictionCounts> accuracy_by_depth;  // [prefetch_depth]
  int64_t steps = 0;
  double bytes_per_step() const { return steps ? double(stats.bytes_moved) / steps : 0.0; }
};

// Fails on an invalid trace or options (num_slots < 1, a layer needing more experts
// than the cache holds), naming the cause.
absl::StatusOr<CacheSimResult> SimulateCache(const RoutingTrace& trace,
                                             const CacheSimOptions& options);

}  // namespace moe::engine
