// Which resident expert the expert cache evicts: small policy classes behind one
// interface, so the cache's bookkeeping is independent of the policy.
//
//   LRU     evicts the least recently touched slot (an insert, prefetch included, is a
//           touch: a just-prefetched expert is not the next victim).
//   LFU     evicts the slot whose expert has been used least often, counting uses over
//           the whole run (not only since the expert last became resident: an expert's
//           popularity outlives an eviction). Ties go to the least recently touched.
//           Aging: every `halve_every` uses all counts are halved, so a once-popular
//           expert does not squat forever (0 disables aging).
//   Belady  evicts the slot whose expert's next use (per a NextUseOracle) is farthest
//           in the future; never-used-again experts first. With exact foresight this is
//           the optimal (MIN) policy. Experts whose predicted use has passed without
//           happening (an inexact oracle) are re-queried before a victim is chosen.
//   Foresight (a wrapper over any of them, for exact foresight such as a decoupled
//           router's whole step): an expert with a known use ahead is evicted only when
//           every evictable slot has one, and then the one used farthest ahead; the others
//           rank by the wrapped policy. A prefetch takes a slot only when its occupant's
//           next known use is later than the incoming expert's, so exact foresight never
//           evicts an expert a nearer layer still needs for one a farther layer needs.
//
// Time: the cache passes a logical clock `now` (by convention step * num_layers + layer,
// so all experts of one layer of one step share a time); the oracle speaks the same
// clock. Policies keep their own touch counter for recency.
//
// Thread safety: not thread safe; owned and driven by one ExpertCache (engine thread).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/experts/expert_key.h"

namespace moe::engine {

// Foresight for Belady: when is an expert next used?
class NextUseOracle {
 public:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  virtual ~NextUseOracle() = default;
  // The earliest known use of `key` at a time strictly greater than `after`; kNever if
  // none is known. Must be cheap (called on every access).
  virtual int64_t NextUseAfter(ExpertKey key, int64_t after) const = 0;
};

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  virtual const char* name() const = 0;

  // Called once by the cache before anything else.
  virtual void Init(int32_t num_slots, ExpertGrid grid) = 0;
  // `key` became resident in `slot` (a demand miss or a prefetch), or a prefetch named
  // the already resident `key` (a refresh: it is about to be used). A demand miss is
  // followed by OnAccess at the same time.
  virtual void OnInsert(int32_t slot, ExpertKey key, int64_t now) = 0;
  // The resident `key` in `slot` is used at `now`.
  virtual void OnAccess(int32_t slot, ExpertKey key, int64_t now) = 0;
  // `slot` no longer holds `key` (evicted or invalidated).
  virtual void OnRemove(int32_t slot, ExpertKey key) = 0;
  // The resident slot to evict at `now`, among those `evictable` accepts (the cache
  // refuses pinned slots and slots whose copy is in flight); -1 if there is none.
  virtual int32_t ChooseVictim(int64_t now, absl::FunctionRef<bool(int32_t)> evictable) = 0;
  // Whether a prefetch of `incoming` should displace the resident `victim` (the slot
  // ChooseVictim returned). Default yes; Belady says no when the victim is needed no
  // later than `incoming`, since the swap could only add misses.
  virtual bool AdmitPrefetch(ExpertKey incoming, int32_t victim, int64_t now) { return true; }
};

// Shared machinery: slots ordered by a priority tuple; the victim is the first
// evictable slot in ascending order.
class OrderedEvictionPolicy : public EvictionPolicy {
 public:
  void Init(int32_t num_slots, ExpertGrid grid) override;
  void OnRemove(int32_t slot, ExpertKey key) override;
  int32_t ChooseVictim(int64_t now, absl::FunctionRef<bool(int32_t)> evictable) override;

 protected:
  using Priority = std::pair<int64_t, int64_t>;  // compared lexicographically, low = evict
  void SetPriority(int32_t slot, Priority p);
  bool resident(int32_t slot) const { return present_[slot]; }
  const Priority& priority(int32_t slot) const { return prio_[slot]; }
  // Hook for Belady: fix up stale priorities before a victim is chosen.
  virtual void BeforeChoose(int64_t now) {}
  int64_t NextTouch() { return ++touches_; }

  ExpertGrid grid_;
  std::set<std::tuple<int64_t, int64_t, int32_t>> order_;

 private:
  std::vector<Priority> prio_;
  std::vector<bool> present_;
  int64_t touches_ = 0;
};

class LruPolicy : public OrderedEvictionPolicy {
 public:
  const char* name() const override { return "lru"; }
  void OnInsert(int32_t slot, ExpertKey key, int64_t now) override;
  void OnAccess(int32_t slot, ExpertKey key, int64_t now) override;
};

class LfuPolicy : public OrderedEvictionPolicy {
 public:
  // `halve_every`: uses between agings; 0: never age. Negative: 8 × the slot count.
  explicit LfuPolicy(int64_t halve_every = -1) : halve_every_(halve_every) {}
  const char* name() const override { return "lfu"; }
  void Init(int32_t num_slots, ExpertGrid grid) override;
  void OnInsert(int32_t slot, ExpertKey key, int64_t now) override;
  void OnAccess(int32_t slot, ExpertKey key, int64_t now) override;
  int64_t count(ExpertKey key) const { return counts_[grid_.Index(key)]; }

 private:
  void Age();
  int64_t halve_every_;
  int64_t uses_since_aging_ = 0;
  std::vector<int64_t> counts_;       // per grid index: uses (aged)
  std::vector<int64_t> slot_index_;   // per slot: its key's grid index, -1 if empty
  std::vector<int64_t> slot_touch_;   // per slot: last touch
};

class BeladyPolicy : public OrderedEvictionPolicy {
 public:
  // `oracle` must outlive the policy.
  explicit BeladyPolicy(const NextUseOracle* oracle) : oracle_(oracle) {}
  const char* name() const override { return "belady"; }
  void Init(int32_t num_slots, ExpertGrid grid) override;
  void OnInsert(int32_t slot, ExpertKey key, int64_t now) override;
  void OnAccess(int32_t slot, ExpertKey key, int64_t now) override;
  void OnRemove(int32_t slot, ExpertKey key) override;
  bool AdmitPrefetch(ExpertKey incoming, int32_t victim, int64_t now) override;
  // The next use the policy holds for `slot` (kNever if none).
  int64_t next_use(int32_t slot) const { return -priority(slot).first; }

 protected:
  void BeforeChoose(int64_t now) override;

 private:
  void Set(int32_t slot, int64_t next_use);
  const NextUseOracle* oracle_;
  std::vector<ExpertKey> keys_;
};

// The Foresight wrapper (see the file comment). Use it only with an exact oracle: a
// predicted use that never comes would protect its expert until that time passes.
class ForesightPolicy : public EvictionPolicy {
 public:
  // `oracle` must outlive the policy.
  ForesightPolicy(std::unique_ptr<EvictionPolicy> base, const NextUseOracle* oracle)
      : base_(std::move(base)), oracle_(oracle) {}
  const char* name() const override { return base_->name(); }
  void Init(int32_t num_slots, ExpertGrid grid) override;
  void OnInsert(int32_t slot, ExpertKey key, int64_t now) override;
  void OnAccess(int32_t slot, ExpertKey key, int64_t now) override;
  void OnRemove(int32_t slot, ExpertKey key) override;
  int32_t ChooseVictim(int64_t now, absl::FunctionRef<bool(int32_t)> evictable) override;
  // Admits when the victim's next known use is later than the incoming expert's (the
  // wrapped policy's own admission is not asked: its view of the future is this one).
  bool AdmitPrefetch(ExpertKey incoming, int32_t victim, int64_t now) override;
  // While set, a prefetch takes only a slot whose expert has no known use ahead. The
  // prefetcher sets it for layers beyond the next one: by their time the experts of the
  // layers in between are done with and free to take, so evicting a still-needed expert
  // now would only add a copy.
  void set_prefetch_free_only(bool on) { free_only_ = on; }
  const EvictionPolicy& base() const { return *base_; }

 private:
  // The next known use of `slot`'s expert after `now` (kNever if none).
  int64_t NextUse(int32_t slot, int64_t now) const;
  std::unique_ptr<EvictionPolicy> base_;
  const NextUseOracle* oracle_;
  std::vector<ExpertKey> keys_;  // per slot, {-1, -1} when empty
  bool free_only_ = false;
};

// An oracle fed by exact foresight: every future use, recorded as it becomes known
// (a routing trace, a decoupled router's whole-step routing, a pre-gate's next layer).
// Uses of one key must be added in non-decreasing time order.
//
// Thread safety: not thread safe (the engine thread adds and the policy reads).
class TraceNextUseOracle : public NextUseOracle {
 public:
  explicit TraceNextUseOracle(ExpertGrid grid);
  void AddUse(ExpertKey key, int64_t time);
  int64_t NextUseAfter(ExpertKey key, int64_t after) const override;
  // Forgets uses at times < `time` (bounds memory on long runs).
  void ForgetBefore(int64_t time);

 private:
  ExpertGrid grid_;
  std::vector<std::vector<int64_t>> uses_;  // per grid index, ascending
  std::vector<size_t> first_;               // per grid index: first live entry
};

enum class EvictionPolicyKind { kLru, kLfu, kBelady };
const char* EvictionPolicyName(EvictionPolicyKind k);
// "lru", "lfu", "belady"; the error lists them.
absl::StatusOr<EvictionPolicyKind> ParseEvictionPolicy(absl::string_view name);
// Belady needs `oracle` (non-null, outliving the policy); the others ignore it.
absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(
    EvictionPolicyKind kind, const NextUseOracle* oracle = nullptr);

}  // namespace moe::engine
