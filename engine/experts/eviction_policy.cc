#include "engine/experts/eviction_policy.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::engine {

// ---- OrderedEvictionPolicy ----

void OrderedEvictionPolicy::Init(int32_t num_slots, ExpertGrid grid) {
  grid_ = grid;
  order_.clear();
  prio_.assign(num_slots, Priority{0, 0});
  present_.assign(num_slots, false);
  touches_ = 0;
}

void OrderedEvictionPolicy::SetPriority(int32_t slot, Priority p) {
  if (present_[slot]) order_.erase({prio_[slot].first, prio_[slot].second, slot});
  prio_[slot] = p;
  present_[slot] = true;
  order_.insert({p.first, p.second, slot});
}

void OrderedEvictionPolicy::OnRemove(int32_t slot, ExpertKey) {
  if (!present_[slot]) return;
  order_.erase({prio_[slot].first, prio_[slot].second, slot});
  present_[slot] = false;
}

int32_t OrderedEvictionPolicy::ChooseVictim(int64_t now,
                                            absl::FunctionRef<bool(int32_t)> evictable) {
  BeforeChoose(now);
  // Pinned and in-flight slots are few (one layer's experts, the prefetch window), so the
  // scan past them is short.
  for (const auto& [a, b, slot] : order_) {
    if (evictable(slot)) return slot;
  }
  return -1;
}

// ---- LRU ----

void LruPolicy::OnInsert(int32_t slot, ExpertKey, int64_t) { SetPriority(slot, {NextTouch(), 0}); }
void LruPolicy::OnAccess(int32_t slot, ExpertKey, int64_t) { SetPriority(slot, {NextTouch(), 0}); }

// ---- LFU ----

void LfuPolicy::Init(int32_t num_slots, ExpertGrid grid) {
  OrderedEvictionPolicy::Init(num_slots, grid);
  if (halve_every_ < 0) halve_every_ = int64_t{8} * std::max(num_slots, 1);
  uses_since_aging_ = 0;
  counts_.assign(grid.size(), 0);
  slot_index_.assign(num_slots, -1);
  slot_touch_.assign(num_slots, 0);
}

void LfuPolicy::OnInsert(int32_t slot, ExpertKey key, int64_t) {
  slot_index_[slot] = grid_.Index(key);
  slot_touch_[slot] = NextTouch();
  SetPriority(slot, {counts_[slot_index_[slot]], slot_touch_[slot]});
}

void LfuPolicy::OnAccess(int32_t slot, ExpertKey key, int64_t) {
  const int64_t i = grid_.Index(key);
  slot_index_[slot] = i;
  ++counts_[i];
  slot_touch_[slot] = NextTouch();
  SetPriority(slot, {counts_[i], slot_touch_[slot]});
  if (halve_every_ > 0 && ++uses_since_aging_ >= halve_every_) Age();
}

void LfuPolicy::Age() {
  uses_since_aging_ = 0;
  for (auto& c : counts_) c /= 2;
  std::vector<int32_t> slots;
  for (const auto& [a, b, slot] : order_) slots.push_back(slot);
  for (int32_t s : slots) SetPriority(s, {counts_[slot_index_[s]], slot_touch_[s]});
}

// ---- Belady ----

void BeladyPolicy::Init(int32_t num_slots, ExpertGrid grid) {
  OrderedEvictionPolicy::Init(num_slots, grid);
  keys_.assign(num_slots, ExpertKey{-1, -1});
}

void BeladyPolicy::Set(int32_t slot, int64_t next_use) {
  // Farthest next use first; among equals the least recently touched.
  SetPriority(slot, {-next_use, NextTouch()});
}

void BeladyPolicy::OnInsert(int32_t slot, ExpertKey key, int64_t now) {
  keys_[slot] = key;
  // A prefetched expert's use may be `now` itself or later.
  Set(slot, oracle_->NextUseAfter(key, now - 1));
}

void BeladyPolicy::OnAccess(int32_t slot, ExpertKey key, int64_t now) {
  keys_[slot] = key;
  Set(slot, oracle_->NextUseAfter(key, now));
}

void BeladyPolicy::OnRemove(int32_t slot, ExpertKey key) {
  OrderedEvictionPolicy::OnRemove(slot, key);
  keys_[slot] = ExpertKey{-1, -1};
}

void BeladyPolicy::BeforeChoose(int64_t now) {
  // Entries whose next use lies in the past were mispredicted: ask again. They sit at the
  // high end of the order (-next_use largest).
  std::vector<int32_t> stale;
  for (auto it = order_.rbegin(); it != order_.rend() && -std::get<0>(*it) < now; ++it) {
    stale.push_back(std::get<2>(*it));
  }
  // Keep their recency: a re-query is not a use.
  for (int32_t s : stale) {
    SetPriority(s, {-oracle_->NextUseAfter(keys_[s], now - 1), priority(s).second});
  }
}

bool BeladyPolicy::AdmitPrefetch(ExpertKey incoming, int32_t victim, int64_t now) {
  return oracle_->NextUseAfter(incoming, now - 1) < next_use(victim);
}

// ---- Foresight ----

void ForesightPolicy::Init(int32_t num_slots, ExpertGrid grid) {
  base_->Init(num_slots, grid);
  keys_.assign(num_slots, ExpertKey{-1, -1});
}

void ForesightPolicy::OnInsert(int32_t slot, ExpertKey key, int64_t now) {
  keys_[slot] = key;
  base_->OnInsert(slot, key, now);
}

void ForesightPolicy::OnAccess(int32_t slot, ExpertKey key, int64_t now) {
  keys_[slot] = key;
  base_->OnAccess(slot, key, now);
}

void ForesightPolicy::OnRemove(int32_t slot, ExpertKey key) {
  keys_[slot] = ExpertKey{-1, -1};
  base_->OnRemove(slot, key);
}

int64_t ForesightPolicy::NextUse(int32_t slot, int64_t now) const {
  // Strictly after `now`: the experts used at `now` (the layer being acquired) are pinned,
  // and a prefetch planned before a step's first layer runs at the previous step's last
  // time, whose experts are done with.
  return oracle_->NextUseAfter(keys_[slot], now);
}

int32_t ForesightPolicy::ChooseVictim(int64_t now, absl::FunctionRef<bool(int32_t)> evictable) {
  // The wrapped policy's choice among the experts with no known use ahead.
  const int32_t free = base_->ChooseVictim(
      now, [&](int32_t s) { return evictable(s) && NextUse(s, now) == NextUseOracle::kNever; });
  if (free >= 0) return free;
  // Every evictable expert is needed again: the one needed farthest ahead (MIN).
  int32_t best = -1;
  int64_t best_use = -1;
  for (int32_t s = 0; s < static_cast<int32_t>(keys_.size()); ++s) {
    if (keys_[s].layer < 0 || !evictable(s)) continue;
    const int64_t u = NextUse(s, now);
    if (u > best_use) {
      best = s;
      best_use = u;
    }
  }
  return best;
}

bool ForesightPolicy::AdmitPrefetch(ExpertKey incoming, int32_t victim, int64_t now) {
  const int64_t victim_use = NextUse(victim, now);
  if (free_only_) return victim_use == NextUseOracle::kNever;
  return victim_use > oracle_->NextUseAfter(incoming, now);
}

// ---- TraceNextUseOracle ----

TraceNextUseOracle::TraceNextUseOracle(ExpertGrid grid)
    : grid_(grid), uses_(grid.size()), first_(grid.size(), 0) {}

void TraceNextUseOracle::AddUse(ExpertKey key, int64_t time) {
  auto& u = uses_[grid_.Index(key)];
  if (u.empty() || u.back() < time) {
    u.push_back(time);
  } else if (u.back() > time) {  // out of order (the contract asks not to): keep sorted
    auto it = std::lower_bound(u.begin(), u.end(), time);
    if (*it != time) u.insert(it, time);
  }
}

int64_t TraceNextUseOracle::NextUseAfter(ExpertKey key, int64_t after) const {
  if (!grid_.Contains(key)) return kNever;
  const int64_t i = grid_.Index(key);
  const auto& u = uses_[i];
  auto it = std::upper_bound(u.begin() + first_[i], u.end(), after);
  return it == u.end() ? kNever : *it;
}

void TraceNextUseOracle::ForgetBefore(int64_t time) {
  for (size_t i = 0; i < uses_.size(); ++i) {
    auto& u = uses_[i];
    first_[i] = std::lower_bound(u.begin() + first_[i], u.end(), time) - u.begin();
    if (first_[i] > 1024 && first_[i] * 2 > u.size()) {  // compact now and then
      u.erase(u.begin(), u.begin() + first_[i]);
      first_[i] = 0;
    }
  }
}

// ---- factory ----

const char* EvictionPolicyName(EvictionPolicyKind k) {
  switch (k) {
    case EvictionPolicyKind::kLru: return "lru";
    case EvictionPolicyKind::kLfu: return "lfu";
    case EvictionPolicyKind::kBelady: return "belady";
  }
  return "?";
}


absl::StatusOr<EvictionPolicyKind> ParseEvictionPolicy(absl::string_view name) {
  for (auto k : {EvictionPolicyKind::kLru, EvictionPolicyKind::kLfu, EvictionPolicyKind::kBelady}) {
    if (name == EvictionPolicyName(k)) return k;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown eviction policy '", name, "' (known: lru, lfu, belady)"));
}

absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(EvictionPolicyKind kind,
                                                                   const NextUseOracle* oracle) {
  switch (kind) {
    case EvictionPolicyKind::kLru: return std::unique_ptr<EvictionPolicy>(new LruPolicy());
    case EvictionPolicyKind::kLfu: return std::unique_ptr<EvictionPolicy>(new LfuPolicy());
    case EvictionPolicyKind::kBelady:
      if (oracle == nullptr) {
        return absl::InvalidArgumentError(
            "eviction policy 'belady' needs foresight (a NextUseOracle): use it with an exact "
            "predictor (pregate or router) or a recorded trace");
      }
      return std::unique_ptr<EvictionPolicy>(new BeladyPolicy(oracle));
  }
  return absl::InvalidArgumentError("unknown eviction policy");
}

}  // namespace moe::engine
