// The logit processors a Sampler applies before temperature, with vLLM's semantics and in
// vLLM's order, to a scratch copy of one row:
//   1. logit_bias: x[t] += bias for each (t, bias) entry (entries with t outside the row
//      are skipped; repeated ids add up);
//   2. repetition_penalty r, once per distinct token seen in the prompt OR the output:
//      x[t] = x[t] > 0 ? x[t] / r : x[t] * r;
//   3. frequency_penalty f and presence_penalty p, for tokens of the output only:
//      x[t] -= f * count(t) + p.
// "The output" is every token recorded by RecordOutput since construction (a Sampler
// records the tokens it returns), so the history survives preemption with the Sampler.
// History is kept only when one of the penalties is not its default (tracks_history());
// otherwise SetPromptTokens and RecordOutput do nothing.
//
// Thread safety: one thread at a time (it belongs to one Sampler).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace moe::engine::sampling {

class LogitPenalties {
 public:
  LogitPenalties(std::vector<std::pair<int32_t, float>> logit_bias, float repetition_penalty,
                 float frequency_penalty, float presence_penalty);

  // True when Apply changes anything: a bias entry or a non-default penalty.
  bool active() const { return !logit_bias_.empty() || tracks_history_; }
  // True when a penalty needs the token history (repetition != 1, frequency or
  // presence != 0).
  bool tracks_history() const { return tracks_history_; }

  // Replaces the prompt's tokens (they count for repetition_penalty only). Negative ids
  // are ignored.
  void SetPromptTokens(absl::Span<const int32_t> prompt);
  // Counts one generated token.
  void RecordOutput(int32_t token);

  // Applies bias then penalties to x[0, n) in place.
  void Apply(float* x, int64_t n) const;

 private:
  std::vector<std::pair<int32_t, float>> logit_bias_;
  float repetition_;
  float frequency_;
  float presence_;
  bool tracks_history_;
  std::vector<int32_t> prompt_;                       // sorted, distinct
  absl::flat_hash_map<int32_t, int32_t> output_counts_;  // token → times generated
};

}  // namespace moe::engine::sampling
