#include "engine/experts/expert_prefetcher.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::engine {

struct ExpertPrefetcher::Impl {
  std::vector<int32_t> layer_index;     // per grid layer: index into `layers`, -1 if not MoE
  std::vector<OffloadLayerStats> layers;
  std::vector<int32_t> filling;         // slots whose copy this prefetcher has not yet seen done
  std::vector<bool> prefetched_unused;  // per grid index: resident by prefetch, not yet used
  std::vector<int64_t> oracle_last;     // per grid index: latest time given to the oracle
  // Predicted experts per time (time = step * num_layers + layer), the union of every
  // prediction for that time; scored when the layer is acquired at that time — over all
  // of its chunks when the layer needs more experts than there are slots: `predicted`
  // counts once (at the first chunk, scored_time), each expert scores in the chunk that
  // places it and leaves the set.
  std::map<int64_t, absl::flat_hash_set<int32_t>> predictions;
  int64_t scored_time = -1;
  std::vector<Placement> placements;  // scratch
  // SetStepRouting: the step's experts per MoE layer; kSlots: the last layer predicted.
  std::vector<std::vector<int32_t>> step_experts;
  int foreseen = -1;
  ForesightPolicy* foresight = nullptr;  // owned by the cache; null without step_foresight

  OffloadLayerStats* stats_of(int32_t layer) {
    const int32_t i = layer_index[layer];
    return i < 0 ? nullptr : &layers[i];
  }
};

void ExpertPrefetcher::ImplDeleter::operator()(Impl* impl) const { delete impl; }

absl::StatusOr<std::unique_ptr<ExpertPrefetcher>> ExpertPrefetcher::Create(
    const ExpertPrefetcherOptions& options, CopyEngine* copies) {
  if (copies == nullptr) return absl::InvalidArgumentError("expert prefetcher: no copy engine");
  const ExpertGrid& g = options.grid;
  for (size_t i = 0; i < options.moe_layers.size(); ++i) {
    const int32_t l = options.moe_layers[i];
    if (l < 0 || l >= g.num_layers || (i > 0 && l <= options.moe_layers[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expert prefetcher: moe_layers must be ascending layers of the grid (",
          g.num_layers, " layers); entry ", i, " is ", l));
    }
  }
  std::unique_ptr<ExpertPrefetcher> p(new ExpertPrefetcher(options, copies));
  // The oracle exists for every policy (cheap); only Belady reads it.
  p->oracle_ = std::make_unique<TraceNextUseOracle>(g);
  auto policy = MakeEvictionPolicy(options.policy, p->oracle_.get());
  if (!policy.ok()) return policy.status();
  if (options.step_foresight) {
    auto wrapped = std::make_unique<ForesightPolicy>(std::move(*policy), p->oracle_.get());
    p->impl_->foresight = wrapped.get();
    *policy = std::move(wrapped);
  }
  ExpertCacheOptions co;
  co.grid = g;
  co.num_slots = options.num_slots;
  co.bytes_per_expert = options.bytes_per_expert;
  auto cache = ExpertCache::Create(co, std::move(*policy), options.table_storage);
  if (!cache.ok()) return cache.status();
  p->cache_ = std::move(*cache);

  Impl& im = *p->impl_;
  im.layer_index.assign(g.num_layers, -1);
  std::vector<int32_t> moe = options.moe_layers;
  if (moe.empty()) {  // no list given: every layer of the grid is an MoE layer
    for (int32_t l = 0; l < g.num_layers; ++l) moe.push_back(l);
  }
  for (int32_t l : moe) {
    im.layer_index[l] = static_cast<int32_t>(im.layers.size());
    OffloadLayerStats s;
    s.layer = l;
    im.layers.push_back(s);
  }
  im.prefetched_unused.assign(g.size(), false);
  im.oracle_last.assign(g.size(), -1);
  return p;
}

ExpertPrefetcher::ExpertPrefetcher(const ExpertPrefetcherOptions& options, CopyEngine* copies)
    : options_(options), copies_(copies), impl_(new Impl) {}

void ExpertPrefetcher::BeginStep(int64_t step) {
  step_ = step;
  current_layer_ = -1;
}

void ExpertPrefetcher::EndStep() {
  // From here until BeginStep every prediction is for the next step.
  current_layer_ = options_.grid.num_layers - 1;
  // Uses before the current time can no longer matter to Belady (bounds memory).
  oracle_->ForgetBefore(cache_->now());
}

namespace {

absl::Status CheckLayer(const ExpertGrid& g, int32_t layer, absl::Span<const int32_t> experts,
                        const char* what) {
  if (layer < 0 || layer >= g.num_layers) {
    return absl::InvalidArgumentError(absl::StrCat("expert prefetcher: ", what, " of layer ",
                                                   layer, " outside the grid of ",
                                                   g.num_layers, " layers"));
  }
  for (int32_t e : experts) {
    if (e < 0 || e >= g.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat(
          "expert prefetcher: ", what, " of layer ", layer, " names expert ", e,
          " outside the grid of ", g.num_experts, " experts"));
    }
  }
  return absl::OkStatus();
}

// Polls every slot with a copy in flight; completed ones become ready (evictable).
absl::Status PollFills(CopyEngine* copies, ExpertCache* cache, std::vector<int32_t>* filling) {
  absl::Status result = absl::OkStatus();
  size_t kept = 0;
  for (int32_t s : *filling) {
    if (!copies->FillDone(s)) {
      (*filling)[kept++] = s;
    } else if (absl::Status st = cache->MarkFilled(s); !st.ok() && result.ok()) {
      result = st;
    }
  }
  filling->resize(kept);
  return result;
}

}  // namespace

absl::Status ExpertPrefetcher::Predict(int32_t layer, absl::Span<const int32_t> experts,
                                       bool exact, bool* complete) {
  if (complete != nullptr) *complete = true;
  // `exact` changes nothing here: Belady re-queries a prediction whose time passes unused,
  // so exact and inexact predictions feed the oracle alike.
  (void)exact;
  const ExpertGrid& g = options_.grid;
  if (absl::Status st = CheckLayer(g, layer, experts, "prediction"); !st.ok()) return st;
  Impl& im = *impl_;
  const int64_t step = layer > current_layer_ ? step_ : step_ + 1;
  const int64_t time = step * g.num_layers + layer;

  std::vector<int32_t> distinct;
  distinct.reserve(experts.size());
  for (int32_t e : experts) {
    if (std::find(distinct.begin(), distinct.end(), e) == distinct.end()) distinct.push_back(e);
  }
  auto& predicted = im.predictions[time];
  for (int32_t e : distinct) {
    predicted.insert(e);
    const int64_t i = g.Index({layer, e});
    if (time >= im.oracle_last[i]) {  // the oracle wants each key's uses in time order
      oracle_->AddUse({layer, e}, time);
      im.oracle_last[i] = time;
    }
  }

  if (absl::Status st = PollFills(copies_, cache_.get(), &im.filling); !st.ok()) return st;
  cache_->AdvanceTo(step_ * g.num_layers + current_layer_);
  for (int32_t e : distinct) {
    const ExpertKey key{layer, e};
    const bool resident = cache_->Lookup(key) >= 0;
    auto placed = cache_->Prefetch(key);  // a resident key is refreshed in the policy
    if (!placed.ok()) return placed.status();
    if (resident) continue;
    if (!placed->has_value()) {  // refused: no evictable slot, or the policy declined
      if (complete != nullptr) *complete = false;
      break;
    }
    const Placement& p = **placed;
    if (p.evicted.has_value()) {
      const int64_t vi = g.Index(*p.evicted);
      if (im.prefetched_unused[vi]) {
        im.prefetched_unused[vi] = false;
        if (OffloadLayerStats* s = im.stats_of(p.evicted->layer)) ++s->prefetch_wasted;
      }
    }
    if (absl::Status st = copies_->IssueFill(p.slot, key, /*demand=*/false); !st.ok()) return st;
    im.filling.push_back(p.slot);
    im.prefetched_unused[g.Index(key)] = true;
    if (OffloadLayerStats* s = im.stats_of(layer)) ++s->prefetch_issued;
  }
  return absl::OkStatus();
}

absl::Status ExpertPrefetcher::AddKnownUses(int32_t layer, absl::Span<const int32_t> experts) {
  const ExpertGrid& g = options_.grid;
  if (absl::Status st = CheckLayer(g, layer, experts, "known use"); !st.ok()) return st;
  Impl& im = *impl_;
  const int64_t step = layer > current_layer_ ? step_ : step_ + 1;
  const int64_t time = step * g.num_layers + layer;
  for (int32_t e : experts) {
    const int64_t i = g.Index({layer, e});
    if (time > im.oracle_last[i]) {  // in time order, each (key, time) once
      oracle_->AddUse({layer, e}, time);
      im.oracle_last[i] = time;
    }
  }
  if (options_.policy == EvictionPolicyKind::kBelady) {
    // Belady ranks a resident expert by the next use known when it was last touched: a
    // resident one named here is refreshed (re-ranked), as Predict refreshes it, but no
    // copy is issued for the others.
    cache_->AdvanceTo(step_ * g.num_layers + current_layer_);
    for (int32_t e : experts) {
      const ExpertKey key{layer, e};
      if (cache_->Lookup(key) < 0) continue;
      auto refreshed = cache_->Prefetch(key);
      if (!refreshed.ok()) return refreshed.status();
    }
  }
  return absl::OkStatus();
}

absl::Status ExpertPrefetcher::SetStepRouting(
    const std::vector<std::vector<int32_t>>& per_moe_layer) {
  Impl& im = *impl_;
  if (per_moe_layer.size() != im.layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert prefetcher: step routing names ", per_moe_layer.size(),
        " MoE layers; the model has ", im.layers.size()));
  }
  for (size_t m = 0; m < per_moe_layer.size(); ++m) {
    if (absl::Status st = AddKnownUses(im.layers[m].layer, per_moe_layer[m]); !st.ok()) return st;
  }
  im.step_experts = per_moe_layer;
  im.foreseen = -1;
  return absl::OkStatus();
}

absl::Status ExpertPrefetcher::PrefetchStepAhead(int m) {
  Impl& im = *impl_;
  const int M = static_cast<int>(im.step_experts.size());
  if (options_.step_rule == StepPrefetchRule::kSlots) {
    const int64_t room =
        cache_->num_slots() - (m >= 0 && m < M ? static_cast<int64_t>(im.step_experts[m].size()) : 0);
    im.foreseen = std::max(im.foreseen, m);
    int64_t window = 0;
    for (int j = m + 1; j <= im.foreseen; ++j) window += static_cast<int64_t>(im.step_experts[j].size());
    while (im.foreseen + 1 < M) {
      const std::vector<int32_t>& next = im.step_experts[im.foreseen + 1];
      if (window + static_cast<int64_t>(next.size()) > room) break;
      if (absl::Status st = Predict(im.layers[im.foreseen + 1].layer, next, /*exact=*/true); !st.ok()) {
        return st;
      }
      window += static_cast<int64_t>(next.size());
      ++im.foreseen;
    }
    return absl::OkStatus();
  }
  // kForesight: nearest layer first; a refusal ends the plan (a farther layer's experts
  // are needed later still, so no slot would take them either). Beyond the next layer
  // only slots with no known use ahead are taken (ForesightPolicy::set_prefetch_free_only).
  uint64_t missing_bytes = 0;
  struct FreeOnly {
    ForesightPolicy* p;
    ~FreeOnly() {
      if (p != nullptr) p->set_prefetch_free_only(false);
    }
  } reset{im.foresight};
  for (int j = m + 1; j < M; ++j) {
    if (im.foresight != nullptr) im.foresight->set_prefetch_free_only(j > m + 1);
    const int32_t layer = im.layers[j].layer;
    if (options_.window_bytes_per_layer > 0) {
      for (int32_t e : im.step_experts[j]) {
        if (cache_->Lookup({layer, e}) < 0) missing_bytes += options_.bytes_per_expert;
      }
      if (j > m + 1 && missing_bytes > options_.window_bytes_per_layer * static_cast<uint64_t>(j - m)) break;
    }
    bool complete = true;
    if (absl::Status st = Predict(layer, im.step_experts[j], /*exact=*/true, &complete); !st.ok()) {
      return st;
    }
    if (!complete) break;
  }
  return absl::OkStatus();
}

absl::Status ExpertPrefetcher::AcquireLayer(int32_t layer, absl::Span<const int32_t> experts,
                                            std::vector<int32_t>* slot_of) {
  const ExpertGrid& g = options_.grid;
  if (absl::Status st = CheckLayer(g, layer, experts, "acquisition"); !st.ok()) return st;
  if (!acquired_slots_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert prefetcher: layer ", layer, " acquired before the layer ", current_layer_,
        " was released"));
  }
  if (layer < current_layer_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expert prefetcher: layer ", layer, " acquired after layer ", current_layer_,
        " in step ", step_, " (layers go in ascending order; BeginStep starts a step)"));
  }
  Impl& im = *impl_;
  if (absl::Status st = PollFills(copies_, cache_.get(), &im.filling); !st.ok()) return st;
  const int64_t time = step_ * g.num_layers + layer;
  cache_->AdvanceTo(time);

  std::vector<ExpertKey> keys;
  keys.reserve(experts.size());
  for (int32_t e : experts) keys.push_back({layer, e});
  std::vector<Placement>& placed = im.placements;
  if (absl::Status st = cache_->AcquireAndPin(keys, &placed); !st.ok()) return st;
  current_layer_ = layer;
  // Recorded before any copy is issued, so that ReleaseLayer unpins even after a copy
  // engine error.
  slot_of->assign(g.num_experts, -1);
  acquired_slots_.clear();
  for (const Placement& p : placed) {
    (*slot_of)[p.key.expert] = p.slot;
    acquired_slots_.push_back(p.slot);
  }

  OffloadLayerStats* ls = im.stats_of(layer);
  for (const Placement& p : placed) {
    const int64_t i = g.Index(p.key);
    if (p.hit) {
      if (ls) ++ls->hits;
      if (im.prefetched_unused[i]) {
        im.prefetched_unused[i] = false;
        if (ls) ++ls->prefetch_used;
      }
    } else if (ls) {
      ++ls->misses;
    }
    if (p.evicted.has_value()) {
      const int64_t vi = g.Index(*p.evicted);
      if (im.prefetched_unused[vi]) {
        im.prefetched_unused[vi] = false;
        if (OffloadLayerStats* s = im.stats_of(p.evicted->layer)) ++s->prefetch_wasted;
      }
    }
  }
  // Demand copies first (the copy engine orders each after its victim's readers), then the
  // compute stream waits on every acquired slot still filling, prefetched ones included.
  // A copy engine error leaves the cache believing the copy in flight: the backend treats
  // it as fatal.
  for (const Placement& p : placed) {
    if (!p.needs_fill) continue;
    if (absl::Status st = copies_->IssueFill(p.slot, p.key, /*demand=*/true); !st.ok()) {
      return st;
    }
    im.filling.push_back(p.slot);
  }
  for (const Placement& p : placed) {
    if (cache_->slot_state(p.slot) != SlotState::kFilling) continue;
    if (absl::Status st = copies_->ComputeWaitFill(p.slot); !st.ok()) return st;
  }

  // Score the prediction for this time, if any; drop older ones that never came true.
  while (!im.predictions.empty() && im.predictions.begin()->first < time) {
    im.predictions.erase(im.predictions.begin());
  }
  if (auto it = im.predictions.find(time); it != im.predictions.end()) {
    if (ls) {
      if (im.scored_time != time) ls->predicted += static_cast<int64_t>(it->second.size());
      ls->actual += static_cast<int64_t>(placed.size());
      for (const Placement& p : placed) ls->predicted_correct += it->second.erase(p.key.expert);
    }
    im.scored_time = time;  // the layer's next chunk, if any, scores against what is left
  }
  return absl::OkStatus();
}

absl::Status ExpertPrefetcher::ReleaseLayer() {
  absl::Status result = absl::OkStatus();
  for (int32_t s : acquired_slots_) {
    if (absl::Status st = copies_->RecordReader(s); !st.ok() && result.ok()) result = st;
  }
  cache_->UnpinAll();
  acquired_slots_.clear();
  return result;
}

OffloadStats ExpertPrefetcher::stats() const {
  OffloadStats out;
  out.num_slots = cache_->num_slots();
  out.num_experts_total = static_cast<int32_t>(options_.grid.size());
  out.h2d_bytes = cache_->stats().bytes_moved;
  out.policy = EvictionPolicyName(options_.policy);
  out.layers = impl_->layers;
  return out;
}

}  // namespace moe::engine
