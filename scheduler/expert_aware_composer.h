// Expert-aware batching (issue 6, item 5b): which decode-ready sequences run this step
// when the GPU expert cache cannot hold the experts all of them need.
//
// Each candidate carries a footprint: a bitset over (MoE layer, expert) keys naming the
// experts its next decode token is expected to use (engine::ExpertFootprint), or none
// (unknown). With a cache of `capacity` keys, a step whose footprints' union exceeds the
// capacity misses in the cache every step; running a subset whose union fits, and the
// rest a step later, turns those misses into hits. The rule:
//   1. every candidate already left out `max_skips` consecutive steps is taken first, in
//      order (bounded wait: nobody starves);
//   2. candidates with an unknown footprint are always taken;
//   3. if the union of every footprint fits the capacity, or the candidates of steps 1-2
//      alone already overflow it (deferring the rest cannot make this step fit), everyone
//      is taken (what the scheduler does without expert-aware batching);
//   4. otherwise the rest are added greedily, smallest growth of the union first (ties:
//      older first), while the union stays within the capacity; groups whose experts
//      overlap thus run together, and a group left out runs when its wait reaches the
//      bound (step 1), together, since its members were left out together;
//   5. at least one candidate is taken; never more than `max_seqs`.
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
  explicit ExpertAwareComposer(int capacity_keys, int max_skips = kDefaultMaxSkips)
      : capacity_(capacity_keys), max_skips_(max_skips) {}

  // `candidates` in the scheduler's order (oldest first). Returns, for each candidate,
  // whether it runs this step. Takes at least one when there are candidates (and
  // max_seqs >= 1), at most max_seqs.
  std::vector<bool> Select(absl::Span<const DecodeCandidate> candidates, int max_seqs) const;

  int capacity() const { return capacity_; }
  int max_skips() const { return max_skips_; }

 private:
  const int capacity_;
  const int max_skips_;
};

// Bits set in `bits` (popcount over the words).
int PopCount(absl::Span<const uint64_t> bits);

}  // namespace moe::scheduler
