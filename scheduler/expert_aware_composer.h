// Expert-aware batching (issue 6, item 5b): which decode-ready sequences run this step
// when the GPU expert cache cannot hold the experts all of them need.
//
// Each candidate carries a footprint: a bitset over (MoE layer, expert) keys naming the
// experts its next decode token is expected to use (engine::ExpertFootprint), or none
// (unknown). The cache holds `capacity` keys; `resident` (optional) names those it holds
// now (engine::ModelRunner::ResidentExpertKeys). A key a step uses that is neither
// resident nor used by another sequence of the step is a new miss. Estimated cost of a
// step, in decode steps: 1 + miss_cost_steps x (its new misses + the keys of its union
// beyond the capacity, which cannot all stay and miss again when next used); the rule
// minimises that cost per token, taking everyone unless a smaller step is strictly
// cheaper per token:
//   1. every candidate already left out `max_skips` consecutive steps is taken first, in
//      order (bounded wait: nobody starves);
//   2. candidates with an unknown footprint are always taken;
//   3. if the union of every footprint fits the capacity, or the candidates of steps 1-2
//      alone already overflow it, everyone is taken (what the scheduler does without
//      expert-aware batching);
//   4. candidates with no new miss (every key resident or already in the union) are
//      taken, repeatedly, since they cost nothing;
//   5. the rest are ordered greedily, fewest new misses first (ties: older), while their
//      union stays within the capacity; of the steps "taken so far + a prefix of that
//      order", the one with the lowest cost per token runs if it is strictly cheaper per
//      token than everyone together; otherwise everyone runs. Groups whose experts
//      overlap (or are resident) thus run together, and a group left out runs when its
//      wait reaches the bound (step 1), together, since its members were left out
//      together. miss_cost_steps = 0 never defers in this step;
//   6. at least one candidate is taken; never more than `max_seqs`.
// With max_seqs >= the number of candidates, a candidate is never left out more than
// max_skips consecutive steps (it runs at least every max_skips + 1 steps).
//
// Thread safety: immutable after construction; Select is const and may be called from any
// thread. The scheduler calls it on the engine thread.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moe::scheduler {

struct DecodeCandidate {
  // ceil(keys / 64) words; null or empty: unknown. Must outlive the Select call.
  const std::vector<uint64_t>* footprint = nullptr;
  // Consecutive steps this sequence was a candidate and was left out.
  int consecutive_skips = 0;
};

class ExpertAwareComposer {
 public:
  static constexpr int kDefaultMaxSkips = 4;

  // `capacity_keys`: (MoE layer, expert) pairs the expert cache holds at once (> 0).
  // `max_skips`: the bound W on consecutive skips (>= 0; 0 takes everyone every step).
  // t_miss / t_step: one expert's host->GPU copy over a decode step's time.
  static constexpr double kDefaultMissCostSteps = 0.2;
  // `capacity_keys`: (MoE layer, expert) pairs the expert cache holds at once (> 0).
  // `max_skips`: the bound W on consecutive skips (>= 0; 0 takes everyone every step).
  // `miss_cost_steps`: what one miss costs, in decode steps (>= 0).
  explicit ExpertAwareComposer(int capacity_keys, int max_skips = kDefaultMaxSkips,
                               double miss_cost_steps = kDefaultMissCostSteps)
      : capacity_(capacity_keys), max_skips_(max_skips), miss_cost_steps_(miss_cost_steps) {}

  // `candidates` in the scheduler's order (oldest first); `resident`: the footprint keys
  // the cache holds now (same layout; empty: unknown, nothing counts as resident).
  // Returns, for each candidate, whether it runs this step. Takes at least one when there
  // are candidates (and max_seqs >= 1), at most max_seqs.
  std::vector<bool> Select(absl::Span<const DecodeCandidate> candidates, int max_seqs,
                           absl::Span<const uint64_t> resident = {}) const;

  int capacity() const { return capacity_; }
  int max_skips() const { return max_skips_; }
  double miss_cost_steps() const { return miss_cost_steps_; }

 private:
  // Estimated cost per token of a step whose footprints' union is `u`, running `tokens`.
  double StepCostPerToken(const std::vector<uint64_t>& u, absl::Span<const uint64_t> resident,
                          int tokens) const;

  const int capacity_;
  const int max_skips_;
  const double miss_cost_steps_;
};

// Bits set in `bits` (popcount over the words).
int PopCount(absl::Span<const uint64_t> bits);

}  // namespace moe::scheduler
