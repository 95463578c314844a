// Drives the expert cache for one backend: per layer, demand acquisition (hits, on-demand
// fills for misses, waits on copies still in flight), prefetches from predictions, the
// Belady oracle when foresight is exact, and the per-layer counters /metrics reports.
// Backend-independent: the copies go through a CopyEngine (CUDA streams and events, or a
// fake in tests). Output never depends on predictions: a mispredicted expert is fetched on
// demand; only time changes.
//
// Clock: ExpertCache time = step * num_layers + layer (all experts of one layer of one step
// share a time). BeginStep(step) sets the step.
//
// Protocol per step (engine thread):
//   BeginStep(step);
//   for each MoE layer l:
//     [Predict(l', experts, exact) for later layers l' as predictions become known]
//     AcquireLayer(l, experts of l, &slot_of)   -> slot per expert; compute waits ordered
//     enqueue the layer's expert kernels reading those slots
//     ReleaseLayer()                            -> readers recorded, pins dropped
//   EndStep();
// Predict(l', ...) with l' <= the current layer refers to the NEXT step's layer l'
// (cross-step lookahead: the next step's first layers prefetched while this step's last
// layers run).
//
// Whole-step exact foresight (a decoupled router): after BeginStep, SetStepRouting(the
// experts of every MoE layer); then PrefetchStepAhead(-1) before the first layer and
// PrefetchStepAhead(m) after acquiring the m-th MoE layer, in place of Predict. With
// options.step_foresight the eviction policy is wrapped in ForesightPolicy
// (eviction_policy.h): neither a demand miss nor a prefetch evicts an expert whose next
// known use is sooner than what comes in, so the foresight never adds traffic.
//
// Thread safety: not thread safe (engine thread). stats() returns a copy.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/experts/copy_engine.h"
#include "engine/experts/eviction_policy.h"
#include "engine/experts/expert_cache.h"
#include "engine/model_runner.h"

namespace moe::engine {

// How PrefetchStepAhead plans a step whose routing is known (SetStepRouting).
enum class StepPrefetchRule {
  // Whole layers in layer order while the experts of the layers ahead fit in the slots
  // beside the current layer's; each layer predicted once. The policy picks the victims,
  // so with LFU a far layer's prefetch evicts what a nearer layer needs (issue 6); kept
  // for comparison (cache_sim's whole-step replay).
  kSlots,
  // Layer by layer, nearest first, retried after every layer, stopping at the first
  // expert the cache refuses; with step_foresight a refusal means every evictable slot
  // holds an expert needed sooner. Optionally bounded by window_bytes_per_layer.
  kForesight,
};

struct ExpertPrefetcherOptions {
  ExpertGrid grid;
  int32_t num_slots = 0;
  uint64_t bytes_per_expert = 0;
  EvictionPolicyKind policy = EvictionPolicyKind::kLru;
  // MoE layers that exist (ascending); counters are kept for these only.
  std::vector<int32_t> moe_layers;
  // Caller-provided slot table storage (grid.size() int32), or null: see ExpertCache.
  int32_t* table_storage = nullptr;
  // Exact whole-step foresight (SetStepRouting): the policy is wrapped in ForesightPolicy.
  // Only for exact foresight: an inexact prediction would protect a wrong expert.
  bool step_foresight = false;
  StepPrefetchRule step_rule = StepPrefetchRule::kForesight;
  // kForesight: bytes the host->device link moves while one MoE layer computes. A layer j
  // ahead of the current m is prefetched only while the bytes still missing for layers
  // m+1..j fit in (j - m) times this (the nearest layer always is). 0: no bound.
  uint64_t window_bytes_per_layer = 0;
};

class ExpertPrefetcher {
 public:
  // Belady needs foresight: the prefetcher owns a TraceNextUseOracle fed by Predict(...,
  // exact=true) and by inexact predictions too (the policy re-queries passed predictions).
  // `copies` must outlive the prefetcher.
  static absl::StatusOr<std::unique_ptr<ExpertPrefetcher>> Create(
      const ExpertPrefetcherOptions& options, CopyEngine* copies);

  void BeginStep(int64_t step);
  void EndStep();

  // Predicted experts of `layer` (this step's if layer > the current layer, else the next
  // step's). Counts the prediction for precision/recall (against the experts that layer
  // actually acquires at that time; a layer predicted twice for the same time counts the
  // union), feeds the oracle, and issues prefetch fills in the given order for those not
  // resident until the cache refuses one (no evictable slot, or the policy declines).
  // Never fails on a refusal; fails on an expert outside the grid.
  // `complete`, if not null, is set to false when a prefetch was refused.
  absl::Status Predict(int32_t layer, absl::Span<const int32_t> experts, bool exact,
                       bool* complete = nullptr);

  // Whole-step exact foresight for the current step (call after BeginStep, before the
  // first AcquireLayer): per_moe_layer[m] = the experts the m-th MoE layer uses (one entry
  // per moe_layers entry). Recorded as known uses (AddKnownUses); PrefetchStepAhead plans
  // from it. Fails on a count that does not match moe_layers or an expert outside the grid.
  absl::Status SetStepRouting(const std::vector<std::vector<int32_t>>& per_moe_layer);
  // Prefetches the step's known experts for the MoE layers after the m-th (-1: before the
  // first layer) under options.step_rule; exact predictions, scored like Predict's.
  absl::Status PrefetchStepAhead(int m);

  // Exact uses known ahead of the predictions (a decoupled router's whole step): records
  // that `layer` uses `experts` at its time (this step's if layer > the current layer,
  // else the next step's) in the Belady oracle only: no prefetch, no prediction scored.
  // Under Belady the resident ones among them are re-ranked at once. Announce every layer
  // of the step before the first Predict, so that Belady's prefetch admissions and demand
  // evictions see all of the step's uses. Fails on an expert outside the grid.
  absl::Status AddKnownUses(int32_t layer, absl::Span<const int32_t> experts);

  // Demand access for `layer` of the current step. First polls every filling slot
  // (FillDone -> MarkFilled). Then acquires and pins `experts` (duplicates merged), issues
  // demand fills for misses (after their victims' readers), and calls ComputeWaitFill on
  // every acquired slot still filling. `slot_of` is resized to grid.num_experts and gets
  // the slot of each acquired expert, -1 elsewhere. Fails (issuing nothing) when the layer
  // needs more distinct experts than the cache can pin. The same layer may be acquired
  // again (after ReleaseLayer) for a further chunk of its experts when they do not all fit;
  // a prediction for the layer is scored against the first chunk only.
  absl::Status AcquireLayer(int32_t layer, absl::Span<const int32_t> experts,
                            std::vector<int32_t>* slot_of);
  // The acquired layer's kernels are enqueued: RecordReader on each of its slots, unpin.
  absl::Status ReleaseLayer();

  const ExpertCache& cache() const { return *cache_; }
  // Counters for /metrics (num_slots, num_experts_total, h2d_bytes, per-layer counters;
  // the stall histogram and names are the backend's to fill).
  OffloadStats stats() const;

 private:
  ExpertPrefetcher(const ExpertPrefetcherOptions& options, CopyEngine* copies);

  ExpertPrefetcherOptions options_;
  CopyEngine* copies_;
  std::unique_ptr<TraceNextUseOracle> oracle_;
  std::unique_ptr<ExpertCache> cache_;
  int64_t step_ = 0;
  int32_t current_layer_ = -1;
  std::vector<int32_t> acquired_slots_;
  // Implementation state (pending predictions per (time, layer), prefetched-unused keys,
  // per-layer counters) is the implementer's choice.
  //
  // Counting (expert_prefetcher.cc):
  //   - A prediction for (time, layer) is scored when that layer is acquired at that time:
  //     predicted += the union of the predicted experts, predicted_correct += those of
  //     them acquired, actual += the distinct experts acquired (all counts). A layer use
  //     with no prediction for its time adds to none of the three, so recall measures the
  //     predictor where it spoke (a run without prediction reports 0/0, not recall 0).
  //     Predictions whose time passes without the layer being acquired are dropped
  //     unscored.
  //   - prefetch_used / prefetch_wasted: a prefetched expert's first demand use, or its
  //     eviction before any use (seen as Placement::evicted of a demand or prefetch
  //     placement); counted under the expert's layer.
  //   - Between EndStep and the next BeginStep every prediction is for the next step.
  //   - Filling slots are polled (FillDone -> MarkFilled) in Predict as well as in
  //     AcquireLayer, so a completed prefetch becomes evictable for the next prefetch.
  struct Impl;
  // Out of line (expert_prefetcher.cc, where Impl is complete): the class declares no
  // destructor, so a plain unique_ptr<Impl> would need Impl in every file that destroys
  // an ExpertPrefetcher.
  struct ImplDeleter {
    void operator()(Impl* impl) const;
  };
  std::unique_ptr<Impl, ImplDeleter> impl_;
};

}  // namespace moe::engine
