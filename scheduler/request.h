// What a frontend submits to the scheduler: prompt token ids, sampling parameters and
// stop rules. Plain data; validated by the frontend (field-level errors) and, for what
// only the scheduler knows (KV capacity), by Scheduler::Submit.
//
// Thread safety: a value type; no shared state.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/sampler.h"

namespace moe::scheduler {

struct GenerateRequest {
  // Unique among in-flight requests (Abort finds requests by it). Empty: the scheduler
  // assigns one.
  std::string request_id;
  std::vector<int32_t> prompt;  // non-empty
  engine::SamplingParams sampling;
  // Sampler seed when sampling.has_seed is false (the frontend passes a fresh random
  // value per request).
  uint64_t fallback_seed = 0;
  // Constrained decoding (e.g. JSON mode), or null: Submit makes this sequence's own
  // constraint with it, so the sequence is sampled on the host. Shared by the sequences
  // of one HTTP request (n > 1), each with its own state.
  std::shared_ptr<const engine::LogitConstraintFactory> constraint;

  int max_tokens = 16;  // > 0
  // Generation stops when the decoded text contains one of these; the matched string is
  // removed from the output text.
  std::vector<std::string> stop_strings;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;  // otherwise the model's eos ids stop generation

  // Priority scheduling (SchedulerOptions::scheduling_policy kPriority): lower values are
  // served first. Must be 0 under fcfs (Scheduler::Submit refuses anything else).
  int priority = 0;

  // Past this time the request ends with DEADLINE_EXCEEDED and its blocks are freed.
  absl::Time deadline = absl::InfiniteFuture();
};

}  // namespace moe::scheduler
