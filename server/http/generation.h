// One HTTP request's scheduler work: n choices for each prompt, each a separate
// scheduler request (choice i of a seeded request uses seed + i), read back through one
// event stream. (Metrics count requests through the scheduler's finished-request hook.)
//
// Thread safety: one Generation belongs to the HTTP worker thread serving its request.
// The scheduler and metrics are shared (their own contracts apply).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/token_trie_cache.h"
#include "scheduler/scheduler.h"
#include "server/http/openai_request.h"

namespace moe::server::http {

class Generation {
 public:
  // Submits prompts.size() * req.n requests (choice index = prompt * n + i). Without
  // max_tokens, completions get 16 tokens (fewer when the context has less room left)
  // and chat the rest of the context. If any Submit fails, the ones already submitted
  // are cancelled and its error is returned.
  // Each choice's handle buffers at most `max_buffered_tokens` untaken tokens (0 =
  // unbounded; see RequestHandle).
  // `constraint` (may be null): constrained decoding for every choice, each with its
  // own state (ResponseFormatConstraint).
  static absl::StatusOr<std::unique_ptr<Generation>> Submit(
      scheduler::Scheduler* scheduler, const OpenAiRequest& req,
      const std::vector<std::vector<int32_t>>& prompts, const std::string& id_prefix,
      int max_buffered_tokens = scheduler::kDefaultMaxBufferedTokens,
      std::shared_ptr<const engine::LogitConstraintFactory> constraint = nullptr);
  // Cancels the choices still running and waits (briefly) for their final events, so
  // aborted requests are counted.
  ~Generation();

  // The next event of any unfinished choice; false when none arrived within `timeout`
  // or every choice has finished.
  bool Next(int* choice, scheduler::StreamEvent* event, absl::Duration timeout);
  bool all_finished() const { return num_finished_ == static_cast<int>(choices_.size()); }
  int num_choices() const { return static_cast<int>(choices_.size()); }
  void CancelAll();

 private:
  struct Choice {
    std::shared_ptr<scheduler::RequestHandle> handle;
    absl::Time submitted;
    bool finished = false;
  };
  Generation() = default;

  std::vector<Choice> choices_;
  int num_finished_ = 0;
  size_t cursor_ = 0;  // round-robin start, so no choice starves
};

// A random 64-bit value (fresh per call; thread-safe), for request ids and
// unseeded sampling.
uint64_t RandomU64();

// The constraint `req.response_format` asks for, ending with one of `eos_ids`, from the
// tokenizer's cached trie: JSON mode (a JSON object), structured outputs (documents valid
// under req.json_schema, compiled here once for all the request's choices), or null for
// plain text. INVALID_ARGUMENT "response_format: json_schema ..." when the schema uses
// what is not supported (the message names the keyword and where it is).
absl::StatusOr<std::shared_ptr<const engine::LogitConstraintFactory>> ResponseFormatConstraint(
    const OpenAiRequest& req, engine::sampling::TokenTrieCache* tries,
    std::vector<int32_t> eos_ids);

// The constraint a forced tool call asks for (req.forced_tool_call(): tool_choice
// "required", any of req.tools, or a named function, that one): one Hermes <tool_call>
// block whose arguments validate against the chosen function's parameters, then one of
// `eos_ids` (engine/sampling/tool_call_constraint.h); null when no call is forced (or
// `tries` is null, after the checks). INVALID_ARGUMENT
// "tools[i].function.parameters: json_schema keyword ..." when a function's parameters
// use what is not supported.
absl::StatusOr<std::shared_ptr<const engine::LogitConstraintFactory>> ToolChoiceConstraint(
    const OpenAiRequest& req, engine::sampling::TokenTrieCache* tries,
    std::vector<int32_t> eos_ids);

}  // namespace moe::server::http
