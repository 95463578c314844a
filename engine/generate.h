// Single-sequence generation straight on a ModelRunner, without the scheduler: the
// engine of //tools:moe_generate and of the reference tests. The server uses the
// continuous-batching scheduler instead.
//
// Thread safety: drives the runner from the calling thread; the caller must ensure no
// other thread uses the runner meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/model_runner.h"
#include "engine/sampling/sampler.h"

namespace moe::engine {

struct GenerateOptions {
  SamplingParams sampling;
  uint64_t fallback_seed = 0;
  int max_tokens = 16;
  std::vector<int32_t> stop_token_ids;  // generation ends after emitting one of these
  int prefill_chunk = 512;              // prompt tokens per forward step
  // Called after each token; return false to stop early.
  std::function<bool(const SampledToken&)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> token_ids;
  std::vector<SampledToken> tokens;  // with logprobs when requested
  bool stopped_on_token = false;     // ended on a stop id rather than max_tokens
};

// Runs prefill over `prompt` (in chunks) then decodes up to max_tokens, using KV blocks
// 0, 1, 2, ... of the runner's cache. Fails if the prompt plus max_tokens does not fit
// the model's context or the KV cache.
absl::StatusOr<GenerateResult> GenerateOne(ModelRunner& runner, absl::Span<const int32_t> prompt,
                                           const GenerateOptions& options);

// Teacher forcing: one forward over `tokens`, returning the logits of every position
// ([tokens.size(), vocab] rows).
absl::StatusOr<ForwardResult> ScoreSequence(ModelRunner& runner, absl::Span<const int32_t> tokens);

}  // namespace moe::engine
