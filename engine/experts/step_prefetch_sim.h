// Whole-step foresight replay: a routing trace replayed through the real ExpertPrefetcher
// as a decoupled-router model drives it (the step's routing known before its first layer:
// SetStepRouting, PrefetchStepAhead), against a timed model of the host->device link, so
// that a prefetch planning rule is judged by the bytes it copies, the demand misses it
// leaves and the time the layers wait for copies. cache_sim.h replays with instantaneous
// copies and per-layer prediction depths; this replays the planning the CUDA runner uses.
//
// Copy model: one link of `link_bytes_per_s`, copies one at a time. Prefetches queue in
// issue order; a demand copy goes ahead of every queued prefetch not yet started. A copy
// into a slot starts only after the slot's last reader (the layer that used the evicted
// expert) has finished. Time: every MoE layer computes for `layer_compute_s` once its
// experts have arrived; a layer starts when the previous one ends and its experts are in.
// The host issues a layer's demand copies and the prefetches planned after it when the
// layer is due to start (no host run-ahead: the router's routing reaches the host once
// per step). When a layer's misses find every slot pinned or filling, the layer waits for
// the copies in flight and retries (as the CUDA offload does).
//
// Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "engine/experts/eviction_policy.h"
#include "engine/experts/expert_prefetcher.h"
#include "engine/experts/routing_trace.h"

namespace moe::engine {

struct StepPrefetchSimOptions {
  int32_t num_slots = 0;
  uint64_t bytes_per_expert = 1;
  EvictionPolicyKind policy = EvictionPolicyKind::kLfu;
  bool prefetch = true;       // false: demand fetches only (the routing still reaches Belady)
  bool step_foresight = true; // ExpertPrefetcherOptions::step_foresight
  StepPrefetchRule rule = StepPrefetchRule::kForesight;
  bool window = false;        // kForesight: bound by link_bytes_per_s * layer_compute_s
  double link_bytes_per_s = 54e9;
  double layer_compute_s = 1e-4;
};

struct StepPrefetchSimResult {
  int64_t steps = 0;
  int64_t uses = 0;            // (layer, expert) uses, summed over steps
  int64_t demand_misses = 0;   // uses not resident (nor on their way) when the layer ran
  int64_t late_hits = 0;       // uses whose copy was still in flight when the layer ran
  int64_t copies = 0;          // experts copied host -> device (demand + prefetch)
  int64_t prefetches_wasted = 0;
  uint64_t bytes_moved = 0;
  double stall_s = 0;          // time layers waited for copies
  double total_s = 0;          // modelled time of the whole replay
  double per_step(double v) const { return steps ? v / steps : 0.0; }
};

// Fails on an invalid trace or options (a layer needing more experts than the slots).
absl::StatusOr<StepPrefetchSimResult> SimulateStepPrefetch(const RoutingTrace& trace,
                                                           const StepPrefetchSimOptions& options);

// "off", "slots", "foresight", "foresight+window" with the policy: a table row label.
std::string StepPrefetchSimLabel(const StepPrefetchSimOptions& options);

}  // namespace moe::engine
