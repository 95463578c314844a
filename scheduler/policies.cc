#include "scheduler/policies.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {
namespace {

// Takes `seq`'s chunk (if any) out of `plan`; returns its tokens (0: it had none).
int Unschedule(const Sequence* seq, StepPlan* plan) {
  auto it = std::find_if(plan->chunks.begin(), plan->chunks.end(),
                         [seq](const ScheduledChunk& c) { return c.seq == seq; });
  if (it == plan->chunks.end()) return 0;
  const int n = it->num_tokens;
  plan->chunks.erase(it);
  return n;
}

// Puts `q` in service order (priority policy); already sorted is the common case.
template <typename Queue>
void SortByService(Queue* q) {
  auto before = [](const std::unique_ptr<Sequence>& a, const std::unique_ptr<Sequence>& b) {
    return ServedBefore(*a, *b);
  };
  if (!std::is_sorted(q->begin(), q->end(), before)) std::sort(q->begin(), q->end(), before);
}

}  // namespace

absl::StatusOr<SchedulingPolicy> ParseSchedulingPolicy(absl::string_view name) {
  if (name == "fcfs") return SchedulingPolicy::kFcfs;
  if (name == "priority") return SchedulingPolicy::kPriority;
  return absl::InvalidArgumentError(
      absl::StrCat("scheduling_policy: must be fcfs or priority, got \"", name, "\""));
}

const char* SchedulingPolicyName(SchedulingPolicy policy) {
  return policy == SchedulingPolicy::kPriority ? "priority" : "fcfs";
}

bool ServedBefore(const Sequence& a, const Sequence& b) {
  if (a.priority() != b.priority()) return a.priority() < b.priority();
  return a.id < b.id;
}

bool AdmissionPolicy::CanAdmit(const Sequence& seq, const PrefixMatch& match, int chunk_tokens,
                               int num_running, const KvBlockManager& kv) const {
  if (num_running >= limits_.max_num_seqs) return false;
  if (chunk_tokens <= 0) return false;
  const int blocks = kv.ExtraBlocksFor(seq.id, match.num_tokens + chunk_tokens) -
                     static_cast<int>(match.blocks.size()) + match.num_evictable;
  return blocks <= kv.num_free_blocks();
}

BatchComposer::BatchComposer(BatchLimits limits)
    : limits_(limits), admission_(limits), preemption_(limits) {
  if (limits_.expert_cache_keys > 0) {
    expert_aware_ = std::make_unique<ExpertAwareComposer>(
        limits_.expert_cache_keys, limits_.expert_aware_max_skips,
        limits_.expert_aware_miss_cost_steps);
  }
}

std::vector<Sequence*> BatchComposer::DeferredDecodes(
    const std::vector<std::unique_ptr<Sequence>>& running,
    absl::Span<const uint64_t> resident_keys) const {
  std::vector<Sequence*> deferred;
  if (expert_aware_ == nullptr) return deferred;
  std::vector<Sequence*> decodes;
  std::vector<DecodeCandidate> candidates;
  for (const auto& s : running) {
    if (s->pending() != 1) continue;
    decodes.push_back(s.get());
    candidates.push_back({&s->expert_footprint, s->expert_skips});
  }
  // Decodes come first in the step's token budget, one token each.
  const int max_seqs = std::min(limits_.max_num_seqs, limits_.max_num_batched_tokens);
  const std::vector<bool> taken = expert_aware_->Select(candidates, max_seqs, resident_keys);
  for (size_t i = 0; i < decodes.size(); ++i) {
    if (!taken[i]) deferred.push_back(decodes[i]);
  }
  std::sort(deferred.begin(), deferred.end());
  return deferred;
}

Sequence* PreemptionPolicy::PickVictim(
    const std::vector<std::unique_ptr<Sequence>>& running) const {
  Sequence* victim = nullptr;
  for (const auto& s : running) {
    if (victim == nullptr) {
      victim = s.get();
    } else if (limits_.policy == SchedulingPolicy::kPriority) {
      if (ServedBefore(*victim, *s)) victim = s.get();
    } else if (s->admit_order > victim->admit_order) {
      victim = s.get();
    }
  }
  return victim;
}

std::vector<Sequence*> PreemptionPolicy::VictimsToAdmit(
    const Sequence& seq, const PrefixMatch& match, int chunk_tokens,
    const std::vector<std::unique_ptr<Sequence>>& running, const KvBlockManager& kv) const {
  std::vector<Sequence*> victims;
  if (limits_.policy != SchedulingPolicy::kPriority || chunk_tokens <= 0) return victims;
  std::vector<Sequence*> candidates;
  for (const auto& s : running) {
    if (s->priority() > seq.priority()) candidates.push_back(s.get());
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Sequence* a, const Sequence* b) { return ServedBefore(*b, *a); });
  // What admission needs and has, as AdmissionPolicy::CanAdmit counts them, updated as
  // each victim's release is simulated: a block becomes available when every table
  // holding it is a victim's; a matched block released that way turns evictable, so
  // attaching it takes it out of the free count again.
  const std::unordered_set<int32_t> matched(match.blocks.begin(), match.blocks.end());
  int need = kv.ExtraBlocksFor(seq.id, match.num_tokens + chunk_tokens) -
             static_cast<int>(match.blocks.size()) + match.num_evictable;
  int available = kv.num_free_blocks();
  std::unordered_map<int32_t, int> victim_refs;
  const int num_running = static_cast<int>(running.size());
  for (Sequence* v : candidates) {
    victims.push_back(v);
    for (int32_t b : kv.BlockTable(v->id)) {
      if (++victim_refs[b] != kv.RefCount(b)) continue;
      ++available;
      if (matched.count(b) > 0) ++need;
    }
    const bool slot = num_running - static_cast<int>(victims.size()) < limits_.max_num_seqs;
    if (slot && need <= available) return victims;
  }
  victims.clear();
  return victims;
}

void BatchComposer::Preempt(Sequence* victim, std::vector<std::unique_ptr<Sequence>>* running,
                            std::deque<std::unique_ptr<Sequence>>* waiting,
                            KvBlockManager* kv) const {
  auto it = std::find_if(running->begin(), running->end(),
                         [victim](const auto& s) { return s.get() == victim; });
  if (it == running->end()) return;
  kv->Free(victim->id);
  victim->num_computed = 0;
  victim->admit_order = -1;
  victim->expert_skips = 0;
  ++victim->num_preemptions;
  if (priority()) {
    auto pos = std::upper_bound(waiting->begin(), waiting->end(), victim,
                                [](const Sequence* v, const std::unique_ptr<Sequence>& w) {
                                  return ServedBefore(*v, *w);
                                });
    waiting->insert(pos, std::move(*it));
  } else {
    waiting->push_front(std::move(*it));
  }
  running->erase(it);
}

StepPlan BatchComposer::Compose(std::vector<std::unique_ptr<Sequence>>* running,
                                std::deque<std::unique_ptr<Sequence>>* waiting,
                                KvBlockManager* kv, int64_t* next_admit_order,
                                absl::Span<const uint64_t> resident_keys) const {
  StepPlan plan;
  if (priority()) {
    SortByService(waiting);
    SortByService(running);
  }
  std::vector<Sequence*> deferred = DeferredDecodes(*running, resident_keys);
  auto is_deferred = [&deferred](Sequence* s) {
    return std::binary_search(deferred.begin(), deferred.end(), s);
  };
  // Preemptions because running sequences ran out of blocks (not the priority policy's
  // preemptions in favour of a waiting request): no admissions after one.
  int memory_preemptions = 0;
  // Sequences preempted this step to admit a better-priority one: not readmitted now.
  std::vector<Sequence*> made_room;
  // Each pass either schedules something or preempts one sequence, so this ends.
  while (true) {
    int budget = limits_.max_num_batched_tokens;
    const int block_size = kv->block_size();

    // 1. Decodes, oldest first (priority: in service order). A decode that needs a block
    //    nobody has preempts PickVictim's choice (possibly itself) until it fits; `running`
    //    is in that order, so the victim never precedes it.
    for (size_t i = 0; i < running->size() && budget > 0;) {
      Sequence* s = (*running)[i].get();
      if (s->pending() != 1 || is_deferred(s)) {
        ++i;
        continue;
      }
      bool preempted_self = false;
      while (!kv->Reserve(s->id, static_cast<int>(s->tokens.size()))) {
        Sequence* victim = preemption_.PickVictim(*running);
        Preempt(victim, running, waiting, kv);
        ++plan.num_preempted;
        ++memory_preemptions;
        if (victim == s) {
          preempted_self = true;
          break;
        }
      }
      if (preempted_self) break;  // s was the newest: nothing runs after it
      plan.chunks.push_back({s, 1, true});
      budget -= 1;
      ++i;
    }

    // 2. Prefill chunks of running sequences, oldest first (priority: in service order),
    //    as far as blocks allow.
    for (size_t i = 0; i < running->size() && budget > 0; ++i) {
      Sequence* s = (*running)[i].get();
      if (s->pending() <= 1) continue;
      const int have = static_cast<int>(kv->BlockTable(s->id).size());
      const int room = (have + kv->num_free_blocks()) * block_size - s->num_computed;
      const int n = std::min({s->pending(), budget, room});
      if (n <= 0) continue;
      kv->Reserve(s->id, s->num_computed + n);
      plan.chunks.push_back({s, n, n == s->pending()});
      budget -= n;
    }

    // 3. Admissions from the front of `waiting`: first come first served (a preempted
    //    sequence is at the front), or in service order under the priority policy.
    //    None in a step that had to preempt for memory: memory is short.
    //    A cached prefix (prefix caching) is attached, not prefilled.
    //    Priority policy: a request that does not fit takes the place of running
    //    sequences of strictly worse priority when that makes room (VictimsToAdmit);
    //    their chunks, if scheduled above, are dropped from this step.
    while (memory_preemptions == 0 && budget > 0 && !waiting->empty()) {
      if (static_cast<int>(running->size()) >= limits_.max_num_seqs && !priority()) {
        break;  // skip the lookup
      }
      Sequence* s = waiting->front().get();
      if (std::find(made_room.begin(), made_room.end(), s) != made_room.end()) break;
      PrefixMatch match = kv->FindPrefix(s->tokens);
      const int n = std::min(s->pending() - match.num_tokens, budget);
      if (!admission_.CanAdmit(*s, match, n, static_cast<int>(running->size()), *kv)) {
        const std::vector<Sequence*> victims =
            preemption_.VictimsToAdmit(*s, match, n, *running, *kv);
        if (victims.empty()) break;
        for (Sequence* v : victims) {
          budget += Unschedule(v, &plan);
          Preempt(v, running, waiting, kv);  // requeued behind `s`: strictly worse priority
          ++plan.num_preempted;
          made_room.push_back(v);
        }
        match = kv->FindPrefix(s->tokens);  // blocks were released since the lookup
        if (!admission_.CanAdmit(*s, match, n, static_cast<int>(running->size()), *kv)) break;
      }
      if (kv->prefix_caching()) {
        if (s->num_preemptions == 0) {
          plan.prefix_cache_queries += static_cast<int64_t>(s->tokens.size());
          plan.prefix_cache_hits += match.num_tokens;
        } else {
          plan.prefix_cache_preempted_hits += match.num_tokens;
        }
      }
      kv->AttachPrefix(s->id, match);
      s->num_computed = match.num_tokens;
      kv->Reserve(s->id, s->num_computed + n);
      s->admit_order = (*next_admit_order)++;
      running->push_back(std::move(waiting->front()));
      waiting->pop_front();
      plan.chunks.push_back({s, n, n == s->pending()});
      budget -= n;
    }

    if (!plan.chunks.empty() || running->empty()) break;
    if (!deferred.empty()) {
      // Nothing else could run (the decode it kept preempted itself): run the deferred
      // decodes rather than preempt them.
      deferred.clear();
      continue;
    }
    // Running prefills hold every block and none can advance: give the newest one's
    // blocks to the others (the oldest always fits alone; Submit checks that).
    Preempt(preemption_.PickVictim(*running), running, waiting, kv);
    ++plan.num_preempted;
    ++memory_preemptions;
  }
  for (const auto& c : plan.chunks) {
    plan.num_tokens += c.num_tokens;
    c.seq->expert_skips = 0;
  }
  for (Sequence* s : deferred) {
    if (s->admit_order < 0) continue;  // preempted this step: back in `waiting`
    ++s->expert_skips;
    ++plan.num_expert_deferred;
    plan.max_expert_skips = std::max(plan.max_expert_skips, s->expert_skips);
  }
  return plan;
}

}  // namespace moe::scheduler
