// Turns a moe.v1.GenerateRequest into a scheduler::GenerateRequest, checking every field
// a client controls. Errors are INVALID_ARGUMENT and start with the field's name as the
// proto spells it ("sampling.max_tokens: ...").
//
// Thread safety: pure function; the tokenizer is used read-only.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/tokenizer/tokenizer.h"
#include "moe/v1/inference.pb.h"
#include "scheduler/request.h"

namespace moe::server {

struct ModelLimits {
  int vocab_size = 0;
  int context_length = 0;  // prompt + max_tokens must fit
  int max_prompt_tokens = 0;  // 0: only the context limits the prompt
};

// max_tokens when the request leaves it unset, lowered to the room the prompt leaves.
inline constexpr int kDefaultMaxTokens = 16;

// `tokenizer` may be null only when requests carry token_ids. `deadline` comes from the
// RPC. `fallback_seed` seeds unseeded sampling.
absl::StatusOr<scheduler::GenerateRequest> ToSchedulerRequest(
    const moe::v1::GenerateRequest& req, const engine::Tokenizer* tokenizer,
    const ModelLimits& limits, absl::Time deadline, uint64_t fallback_seed);

}  // namespace moe::server
