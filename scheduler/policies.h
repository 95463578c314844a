// The scheduler's decisions, as small classes (one decision each):
//   AdmissionPolicy   – may the head of the waiting queue start now? (With prefix
//                       caching, its cached prefix blocks are attached at admission and
//                       only the rest is prefilled.)
//   PreemptionPolicy  – which running sequence gives its blocks back? (And, under the
//                       priority policy, which lower-priority ones a waiting request may
//                       take the place of.)
//   BatchComposer     – which sequences run this step, with how many tokens each:
//                       decodes first (oldest first), then prefill chunks of running
//                       sequences, then newly admitted ones, all under the step's token
//                       budget (max_num_batched_tokens) and max_num_seqs. With
//                       expert-aware batching on, the decodes first pass through
//                       ExpertAwareComposer (expert_aware_composer.h); prefill chunks
//                       are not filtered.
//
// Scheduling policy (vLLM's --scheduling-policy):
//   fcfs      – the waiting queue is served in arrival order (a preempted sequence goes
//               back to its front); the victim of KV pressure is the most recently
//               admitted running sequence. GenerateRequest::priority must be 0.
//   priority  – the waiting queue is served in (priority, arrival) order, lower priority
//               value first, and `running` is kept in that order too (decodes and prefill
//               chunks of better-priority sequences are served first); the victim of KV
//               pressure is the running sequence with the largest priority value, latest
//               arrival among equals. A waiting request that cannot be admitted for lack
//               of KV blocks (or of a max_num_seqs slot) preempts running sequences of
//               strictly worse priority, worst first, but only when that makes room for
//               it; never one of equal or better priority. As in vLLM, there is no aging:
//               under sustained higher-priority load a low-priority request may wait (or
//               be preempted again) indefinitely.
//
// Thread safety: none of these hold locks; BatchComposer::Compose runs on the engine
// thread while the scheduler holds the lock that guards the waiting queue.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "scheduler/expert_aware_composer.h"
#include "scheduler/kv_block_manager.h"
#include "scheduler/sequence.h"

namespace moe::scheduler {

enum class SchedulingPolicy { kFcfs, kPriority };

// "fcfs" | "priority"; INVALID_ARGUMENT naming scheduling_policy otherwise.
absl::StatusOr<SchedulingPolicy> ParseSchedulingPolicy(absl::string_view name);
const char* SchedulingPolicyName(SchedulingPolicy policy);

// The priority policy's service order: lower priority value first, then earlier arrival.
bool ServedBefore(const Sequence& a, const Sequence& b);

struct BatchLimits {
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  // Expert-aware batching: > 0 filters the decodes through ExpertAwareComposer with an
  // expert cache of this many footprint keys (Sequence::expert_footprint); 0: off.
  int expert_cache_keys = 0;
  int expert_aware_max_skips = ExpertAwareComposer::kDefaultMaxSkips;
  double expert_aware_miss_cost_steps = ExpertAwareComposer::kDefaultMissCostSteps;
};

class AdmissionPolicy {
 public:
  explicit AdmissionPolicy(BatchLimits limits) : limits_(limits) {}
  // True when `seq` may join the running set with a first chunk of `chunk_tokens` after
  // the cached prefix `match` (KvBlockManager::FindPrefix; empty: none): its blocks
  // beyond the match, plus the matched blocks that are evictable now (attaching them
  // takes them out of the free count), must fit in the free blocks.
  bool CanAdmit(const Sequence& seq, const PrefixMatch& match, int chunk_tokens,
                int num_running, const KvBlockManager& kv) const;

 private:
  BatchLimits limits_;
};

class PreemptionPolicy {
 public:
  explicit PreemptionPolicy(BatchLimits limits) : limits_(limits) {}
  // fcfs: the most recently admitted running sequence (it has done the least work, and
  // evicting it keeps the oldest requests moving). priority: the last in service order
  // (largest priority value, latest arrival among equals). Null when `running` is empty.
  Sequence* PickVictim(const std::vector<std::unique_ptr<Sequence>>& running) const;

  // Priority policy: the running sequences to preempt, worst first, so that `seq` (not
  // running, AdmissionPolicy::CanAdmit false for this `match` and `chunk_tokens`) can be
  // admitted: only sequences of strictly larger priority value, and only as many as
  // needed for its blocks (counting what their release really frees: blocks another
  // table shares stay in use) and a max_num_seqs slot. Empty when preempting all of them
  // would not be enough, or under fcfs.
  std::vector<Sequence*> VictimsToAdmit(const Sequence& seq, const PrefixMatch& match,
                                        int chunk_tokens,
                                        const std::vector<std::unique_ptr<Sequence>>& running,
                                        const KvBlockManager& kv) const;

 private:
  BatchLimits limits_;
};

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int num_tokens = 0;  // tokens[seq->num_computed, +num_tokens) run this step
  bool wants_logits = false;  // the chunk reaches the end of the sequence's tokens
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  int num_tokens = 0;
  int num_preempted = 0;
  // Prefix caching, over the sequences admitted this step for the first time (not
  // re-admissions after preemption, as vLLM counts): tokens looked up, and tokens found
  // cached (not prefilled).
  int64_t prefix_cache_queries = 0;
  int64_t prefix_cache_hits = 0;
  // The same over re-admissions after preemption.
  int64_t prefix_cache_preempted_hits = 0;
  // Expert-aware batching: decode-ready sequences left out of this step, and the largest
  // Sequence::expert_skips among them after this step (0 when none).
  int num_expert_deferred = 0;
  int max_expert_skips = 0;
  bool empty() const { return chunks.empty(); }
};

class BatchComposer {
 public:
  explicit BatchComposer(BatchLimits limits);

  // Builds the next step. May move sequences between `waiting` and `running`: admits
  // from the front of `waiting` (under the priority policy, `waiting` and `running` are
  // first put in service order; see the top of this file) (attaching each one's cached prefix from
  // KvBlockManager::FindPrefix when prefix caching is on, so num_computed starts at the
  // matched length), and preempts running sequences (blocks freed,
  // num_computed reset, requeued at the front of `waiting`) when a decode needs a block
  // and none is free. Reserves the KV blocks every scheduled chunk needs.
  // `next_admit_order` numbers admissions. With expert-aware batching, decode-ready
  // sequences the ExpertAwareComposer leaves out do not run this step (their
  // expert_skips grows; every sequence that runs has it reset to 0); `resident_keys` are
  // the footprint keys the expert cache holds now (ModelRunner::ResidentExpertKeys;
  // empty: unknown).
  StepPlan Compose(std::vector<std::unique_ptr<Sequence>>* running,
                   std::deque<std::unique_ptr<Sequence>>* waiting, KvBlockManager* kv,
                   int64_t* next_admit_order,
                   absl::Span<const uint64_t> resident_keys = {}) const;

 private:
  // Frees the victim's blocks and requeues it: at the front of `waiting` (fcfs) or at its
  // place in service order (priority).
  void Preempt(Sequence* victim, std::vector<std::unique_ptr<Sequence>>* running,
               std::deque<std::unique_ptr<Sequence>>* waiting, KvBlockManager* kv) const;
  bool priority() const { return limits_.policy == SchedulingPolicy::kPriority; }
  // The decode-ready sequences of `running` that expert-aware batching leaves out this
  // step, sorted by address (for binary_search); empty when it is off.
  std::vector<Sequence*> DeferredDecodes(const std::vector<std::unique_ptr<Sequence>>& running,
                                         absl::Span<const uint64_t> resident_keys) const;

  BatchLimits limits_;
  AdmissionPolicy admission_;
  PreemptionPolicy preemption_;
  std::unique_ptr<ExpertAwareComposer> expert_aware_;  // null: off
};

}  // namespace moe::scheduler
