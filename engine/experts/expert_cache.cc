#include "engine/experts/expert_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moe::engine {

int32_t SlotsForBudget(uint64_t budget_bytes, uint64_t bytes_per_expert, ExpertGrid grid) {
  if (bytes_per_expert == 0) return static_cast<int32_t>(grid.size());
  const uint64_t n = budget_bytes / bytes_per_expert;
  return static_cast<int32_t>(std::min<uint64_t>(n, static_cast<uint64_t>(grid.size())));
}

absl::StatusOr<std::unique_ptr<ExpertCache>> ExpertCache::Create(
    const ExpertCacheOptions& options, std::unique_ptr<EvictionPolicy> policy,
    int32_t* table_storage) {
  if (options.grid.num_layers <= 0 || options.grid.num_experts <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert cache: grid must be positive, got ", options.grid.num_layers, " layers x ",
        options.grid.num_experts, " experts"));
  }
  if (options.num_slots <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expert cache: num_slots must be positive, got ", options.num_slots));
  }
  if (policy == nullptr) return absl::InvalidArgumentError("expert cache: no eviction policy");
  return std::unique_ptr<ExpertCache>(new ExpertCache(options, std::move(policy), table_storage));
}

ExpertCache::ExpertCache(const ExpertCacheOptions& options, std::unique_ptr<EvictionPolicy> policy,
                         int32_t* table)
    : options_(options), policy_(std::move(policy)), table_(table) {
  const int64_t n = options_.grid.size();
  if (table_ == nullptr) {
    owned_table_.assign(n, -1);
    table_ = owned_table_.data();
  } else {
    std::fill(table_, table_ + n, -1);
  }
  is_dirty_.assign(n, false);
  slots_.resize(options_.num_slots);
  for (int32_t s = options_.num_slots - 1; s >= 0; --s) empty_.push_back(s);  // slot 0 first
  num_empty_ = options_.num_slots;
  policy_->Init(options_.num_slots, options_.grid);
}

int32_t ExpertCache::Lookup(ExpertKey key) const { return table_[options_.grid.Index(key)]; }

void ExpertCache::SetTable(int64_t index, int32_t value) {
  table_[index] = value;
  if (!is_dirty_[index]) {
    is_dirty_[index] = true;
    dirty_.push_back(index);
  }
}

void ExpertCache::DrainTableUpdates(std::vector<int64_t>* indices) {
  for (int64_t i : dirty_) is_dirty_[i] = false;
  indices->insert(indices->end(), dirty_.begin(), dirty_.end());
  dirty_.clear();
}

void ExpertCache::Pin(int32_t slot) {
  Slot& s = slots_[slot];
  const bool was_blocked = Blocked(slot);
  if (s.pins++ == 0) pinned_.push_back(slot);
  if (!was_blocked) ++num_blocked_;
}

void ExpertCache::Unpin(int32_t slot) {
  Slot& s = slots_[slot];
  if (s.pins == 0) return;
  const bool was_blocked = Blocked(slot);
  if (--s.pins == 0) pinned_.erase(std::find(pinned_.begin(), pinned_.end(), slot));
  if (was_blocked && !Blocked(slot)) --num_blocked_;
}

void ExpertCache::UnpinAll() {
  for (int32_t slot : pinned_) {
    const bool was_blocked = Blocked(slot);
    slots_[slot].pins = 0;
    if (was_blocked && !Blocked(slot)) --num_blocked_;
  }
  pinned_.clear();
}

absl::Status ExpertCache::MarkFilled(int32_t slot) {
  if (slot < 0 || slot >= options_.num_slots || slots_[slot].state != SlotState::kFilling) {
    return absl::FailedPreconditionError(
        absl::StrCat("expert cache: MarkFilled(", slot, "): the slot has no copy in flight"));
  }
  slots_[slot].state = SlotState::kReady;
  if (slots_[slot].pins == 0) --num_blocked_;
  return absl::OkStatus();
}

int32_t ExpertCache::TakeSlot(std::optional<ExpertKey>* evicted, bool prefetch,
                              ExpertKey incoming) {
  evicted->reset();
  if (!empty_.empty()) {
    const int32_t s = empty_.back();
    empty_.pop_back();
    --num_empty_;
    return s;
  }
  const int32_t victim =
      policy_->ChooseVictim(now_, [this](int32_t s) { return Evictable(s); });
  if (victim < 0) return -1;
  if (prefetch && !policy_->AdmitPrefetch(incoming, victim, now_)) return -1;
  Slot& v = slots_[victim];
  *evicted = v.key;
  policy_->OnRemove(victim, v.key);
  SetTable(options_.grid.Index(v.key), -1);
  if (v.prefetched_unused) ++stats_.prefetches_wasted;
  ++stats_.evictions;
  v = Slot{};
  return victim;
}

void ExpertCache::Install(int32_t slot, ExpertKey key) {
  Slot& s = slots_[slot];
  s.key = key;
  s.state = SlotState::kFilling;
  s.pins = 0;
  ++num_blocked_;  // filling
  SetTable(options_.grid.Index(key), slot);
  policy_->OnInsert(slot, key, now_);
  stats_.bytes_moved += options_.bytes_per_expert;
}

absl::Status ExpertCache::AcquireAndPin(absl::Span<const ExpertKey> keys,
                                        std::vector<Placement>* out) {
  out->clear();
  // Distinct keys, validated, before anything changes.
  std::vector<ExpertKey> distinct;
  distinct.reserve(keys.size());
  for (ExpertKey k : keys) {
    if (!options_.grid.Contains(k)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expert cache: expert (layer ", k.layer, ", expert ", k.expert,
          ") outside the grid of ", options_.grid.num_layers, " layers x ",
          options_.grid.num_experts, " experts"));
    }
    if (std::find(distinct.begin(), distinct.end(), k) == distinct.end()) distinct.push_back(k);
  }
  int64_t misses = 0, unblocked_hits = 0;
  for (ExpertKey k : distinct) {
    const int32_t s = Lookup(k);
    if (s < 0) {
      ++misses;
    } else if (!Blocked(s)) {
      ++unblocked_hits;
    }
  }
  const int64_t resident = options_.num_slots - num_empty_;
  const int64_t available = num_empty_ + (resident - num_blocked_) - unblocked_hits;
  if (misses > available) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert cache: layer ", distinct.front().layer, " needs ", misses,
        " experts fetched but only ", available, " of ", options_.num_slots,
        " slots can take them (", num_blocked_, " pinned or filling, ", unblocked_hits,
        " held by this request's own hits); raise the cache size or lower the batch"));
  }
  // Hits first, pinned, so that no miss evicts them.
  out->resize(distinct.size());
  for (size_t i = 0; i < distinct.size(); ++i) {
    Placement& p = (*out)[i];
    p.key = distinct[i];
    const int32_t s = Lookup(p.key);
    if (s < 0) continue;
    p.slot = s;
    p.hit = true;
    p.filling = slots_[s].state == SlotState::kFilling;
    ++stats_.hits;
    if (p.filling) ++stats_.late_hits;
    if (slots_[s].prefetched_unused) {
      slots_[s].prefetched_unused = false;
      ++stats_.prefetches_used;
    }
    policy_->OnAccess(s, p.key, now_);
    Pin(s);
  }
  for (Placement& p : *out) {
    if (p.hit) continue;
    const int32_t s = TakeSlot(&p.evicted, /*prefetch=*/false, p.key);
    // Cannot fail: counted above.
    p.slot = s;
    p.needs_fill = true;
    p.filling = true;
    ++stats_.misses;
    Install(s, p.key);
    policy_->OnAccess(s, p.key, now_);
    Pin(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Placement>> ExpertCache::Prefetch(ExpertKey key) {
  if (!options_.grid.Contains(key)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert cache: prefetch of expert (layer ", key.layer, ", expert ", key.expert,
        ") outside the grid"));
  }
  if (const int32_t s = Lookup(key); s >= 0) {
    // Refresh it, so that the rest of this prefetch window does not evict it.
    policy_->OnInsert(s, key, now_);
    return std::optional<Placement>();
  }
  Placement p;
  p.key = key;
  const int32_t s = TakeSlot(&p.evicted, /*prefetch=*/true, key);
  if (s < 0) {
    ++stats_.prefetches_rejected;
    return std::optional<Placement>();
  }
  p.slot = s;
  p.needs_fill = true;
  p.filling = true;
  Install(s, key);
  slots_[s].prefetched_unused = true;
  ++stats_.prefetches_issued;
  return std::optional<Placement>(p);
}

}  // namespace moe::engine
