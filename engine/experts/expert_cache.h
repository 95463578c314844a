// The GPU expert cache's bookkeeping, independent of any device: N expert slots, the
// slot table (layer, expert) -> slot, pins, the fill state of each slot, and the
// statistics the metrics report. The device side (slot memory, copies, events) lives in
// the backend and follows what this class decides.
//
// Slot table: a dense int32 array [num_layers * num_experts] (index layer * num_experts +
// expert), -1 = not resident. Its address never changes for the cache's lifetime, so a
// kernel (or a CUDA graph) may be given the pointer once. It may live in caller-provided
// storage (e.g. mapped pinned host memory the kernels read directly); otherwise the
// cache owns it and the backend mirrors it to the device, uploading the indices that
// DrainTableUpdates() reports (it reports every index whose entry changed).
//
// Protocol for one layer of one step (engine thread):
//   AdvanceTo(step * num_layers + layer);
//   AcquireAndPin(the layer's experts)   -> one Placement per distinct expert, all pinned;
//     each with needs_fill: issue the host->device copy into `slot`, record its event;
//     each with filling (a copy already in flight): wait on that slot's event;
//     each `evicted`: the device must finish reading the old contents before the copy
//     (wait on the slot's last-reader event);
//   Prefetch(experts of later layers)    -> copies to issue; never evicts pinned or
//     filling slots;
//   MarkFilled(slot) when a copy is known complete (its event has fired);
//   UnpinAll() once the layer's kernels are enqueued (a host-side release: the device
//     "last reader" event of each slot keeps a later copy from overwriting data a
//     queued kernel has yet to read).
// A filling slot is never chosen as a victim, so an expert evicted while a copy into its
// slot is in flight cannot happen: the copy completes before the slot is reused.
//
// Errors: a layer needing more distinct experts than there are unpinned, non-filling
// slots fails with FailedPrecondition naming the counts, and changes nothing.
//
// Thread safety: not thread safe. Driven by the engine thread only; the slot table's
// memory is read concurrently by device kernels (entries are aligned int32 writes), which
// is sound only under the event protocol above.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/experts/eviction_policy.h"
#include "engine/experts/expert_key.h"

namespace moe::engine {

struct ExpertCacheOptions {
  ExpertGrid grid;
  int32_t num_slots = 0;          // > 0
  uint64_t bytes_per_expert = 0;  // for bytes_moved (gate + up + down of one expert)
};

// How many slots a memory budget holds: min(grid size, budget / bytes_per_expert).
int32_t SlotsForBudget(uint64_t budget_bytes, uint64_t bytes_per_expert, ExpertGrid grid);

enum class SlotState : uint8_t {
  kEmpty,
  kFilling,  // assigned; its host->device copy is in flight
  kReady,
};

struct Placement {
  ExpertKey key;
  int32_t slot = -1;
  bool hit = false;         // already resident (ready, or filling from a prefetch)
  bool needs_fill = false;  // the caller must copy `key`'s weights into `slot`
  bool filling = false;     // resident but its copy is still in flight: wait on it
  std::optional<ExpertKey> evicted;  // what `slot` held before (needs_fill only)
};

struct ExpertCacheStats {
  int64_t hits = 0;         // demand uses found resident (ready or filling)
  int64_t late_hits = 0;    // of those, still filling (the layer stalls on the copy)
  int64_t misses = 0;       // demand uses not resident: fetched on demand
  int64_t evictions = 0;
  int64_t prefetches_issued = 0;
  int64_t prefetches_used = 0;      // a prefetched expert was used before eviction
  int64_t prefetches_wasted = 0;    // evicted without having been used
  int64_t prefetches_rejected = 0;  // no evictable slot, or the policy declined
  uint64_t bytes_moved = 0;         // (misses + prefetches_issued) * bytes_per_expert

  double hit_rate() const {
    return hits + misses == 0 ? 0.0 : static_cast<double>(hits) / (hits + misses);
  }
};

class ExpertCache {
 public:
  // `policy` is initialised here. `table_storage`, if not null, holds grid.size() int32
  // and outlives the cache; it is filled with -1.
  static absl::StatusOr<std::unique_ptr<ExpertCache>> Create(
      const ExpertCacheOptions& options, std::unique_ptr<EvictionPolicy> policy,
      int32_t* table_storage = nullptr);

  // Sets the logical clock (step * num_layers + layer by convention). Never goes back:
  // an earlier time is ignored.
  void AdvanceTo(int64_t now) { now_ = now > now_ ? now : now_; }
  int64_t now() const { return now_; }

  // The slot holding `key`, or -1. No side effects. `key` must be in the grid.
  int32_t Lookup(ExpertKey key) const;

  // Demand access for one layer's experts (duplicates are merged; `out` gets one
  // Placement per distinct key, in first-appearance order). Every one ends up pinned.
  // Hits are pinned before any victim is chosen, so the layer never evicts its own
  // experts. Fails (changing nothing) on a key outside the grid or when the misses
  // outnumber the slots that can be evicted.
  absl::Status AcquireAndPin(absl::Span<const ExpertKey> keys, std::vector<Placement>* out);

  // Speculative insert, not pinned. Returns nullopt when `key` is already resident (the
  // policy is told, as if it had just been inserted, so the rest of the prefetch window
  // does not evict it), when
  // no slot can be evicted, or when the policy declines the swap; otherwise the
  // Placement to fill.
  absl::StatusOr<std::optional<Placement>> Prefetch(ExpertKey key);

  // The copy into `slot` has completed. Fails if the slot is not filling.
  absl::Status MarkFilled(int32_t slot);
  // Drops one pin of `slot`; UnpinAll drops every pin.
  void Unpin(int32_t slot);
  void UnpinAll();

  // The slot table: grid.size() int32, stable address (see the file comment).
  const int32_t* slot_table() const { return table_; }
  // Appends the table indices changed since the last call (each once) and clears them.
  void DrainTableUpdates(std::vector<int64_t>* indices);

  int32_t num_slots() const { return options_.num_slots; }
  const ExpertGrid& grid() const { return options_.grid; }
  ExpertKey slot_key(int32_t slot) const { return slots_[slot].key; }
  SlotState slot_state(int32_t slot) const { return slots_[slot].state; }
  int32_t pin_count(int32_t slot) const { return slots_[slot].pins; }
  int32_t num_resident() const { return options_.num_slots - num_empty_; }
  const ExpertCacheStats& stats() const { return stats_; }
  const EvictionPolicy& policy() const { return *policy_; }

 private:
  struct Slot {
    ExpertKey key{-1, -1};
    SlotState state = SlotState::kEmpty;
    int32_t pins = 0;
    bool prefetched_unused = false;
  };

  ExpertCache(const ExpertCacheOptions& options, std::unique_ptr<EvictionPolicy> policy,
              int32_t* table);
  bool Blocked(int32_t slot) const {
    const Slot& s = slots_[slot];
    return s.state == SlotState::kFilling || (s.state == SlotState::kReady && s.pins > 0);
  }
  bool Evictable(int32_t slot) const {
    const Slot& s = slots_[slot];
    return s.state == SlotState::kReady && s.pins == 0;
  }
  // A slot for a new expert: an empty one, else the policy's victim (evicted here);
  // -1 if none. `*evicted` gets the victim's key.
  int32_t TakeSlot(std::optional<ExpertKey>* evicted, bool prefetch, ExpertKey incoming);
  void Install(int32_t slot, ExpertKey key);
  void SetTable(int64_t index, int32_t value);
  void Pin(int32_t slot);

  ExpertCacheOptions options_;
  std::unique_ptr<EvictionPolicy> policy_;
  std::vector<int32_t> owned_table_;
  int32_t* table_;
  std::vector<Slot> slots_;
  std::vector<int32_t> empty_;   // stack of empty slots
  int32_t num_empty_ = 0;
  int32_t num_blocked_ = 0;      // resident slots that are pinned or filling
  std::vector<int32_t> pinned_;  // slots with pins > 0 (for UnpinAll)
  std::vector<int64_t> dirty_;
  std::vector<bool> is_dirty_;
  int64_t now_ = 0;
  ExpertCacheStats stats_;
};

}  // namespace moe::engine
