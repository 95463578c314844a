// One request's state inside the scheduler: all its tokens (prompt, then generated),
// how many of them are in the KV cache, its sampler, text decoder and stop matcher.
//
// Preemption by recompute only resets num_computed to 0 (and frees the blocks): the
// generated tokens stay in `tokens`, so on re-admission they are prefilled as if they
// were prompt and generation continues where it stopped. With prefix caching, admission
// (first or re-admission) sets num_computed to the length of the cached prefix it
// attached (KvBlockManager::FindPrefix), and only the rest is prefilled. The sampler keeps its generator
// state, so greedy and seeded outputs are unchanged by preemption.
//
// Thread safety: owned by the scheduler; touched by the engine thread only, except the
// handle (which is thread-safe).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "engine/sampling/sampler.h"
#include "scheduler/request.h"
#include "scheduler/request_handle.h"
#include "scheduler/stop_string_matcher.h"
#include "scheduler/text_decoder.h"

namespace moe::scheduler {

struct Sequence {
  int64_t id = 0;  // increasing in arrival (Submit) order
  std::shared_ptr<RequestHandle> handle;
  GenerateRequest request;  // request.prompt is moved into `tokens`
  std::vector<int32_t> tokens;
  int prompt_len = 0;
  int num_computed = 0;     // tokens[0, num_computed) are in the KV cache
  int64_t admit_order = -1; // larger = admitted more recently
  int num_preemptions = 0;
  absl::Time arrival;
  bool scheduled = false;   // has been part of a step at least once
  absl::Time first_scheduled;
  bool has_first_token = false;
  absl::Time first_token_time;
  std::unique_ptr<engine::Sampler> sampler;
  std::unique_ptr<TextDecoder> decoder;  // null: no text is produced
  std::unique_ptr<StopStringMatcher> stop_matcher;
  // Expert-aware batching (expert_aware_composer.h): the (MoE layer, expert) keys the next
  // decode token is expected to use (engine::ExpertFootprint::bits; empty: unknown), and
  // the consecutive steps this sequence's decode was deferred.
  std::vector<uint64_t> expert_footprint;
  int expert_skips = 0;

  // Priority scheduling: lower is served first (GenerateRequest::priority). Ties go to
  // the earlier arrival, i.e. the smaller id (ids are assigned in Submit order).
  int priority() const { return request.priority; }

  int num_generated() const { return static_cast<int>(tokens.size()) - prompt_len; }
  // Tokens still to run through the model (1 for a sequence in decode).
  int pending() const { return static_cast<int>(tokens.size()) - num_computed; }
};

}  // namespace moe::scheduler
