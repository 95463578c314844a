// Turns one row of logits into a token: logit_bias and repetition / frequency /
// presence penalties, then greedy, or temperature with min_p, top-k and top-p, with a
// per-request seeded generator (same seed, same logits → same tokens, whatever else is
// in the batch), and top-n logprobs of the unmodified distribution (log_softmax of the
// raw logits, as vLLM reports them by default).
//
// Logit processing (vLLM's semantics and order; logit_penalties.h): logit_bias is added,
// then repetition_penalty applies to every token of the prompt (SetPromptTokens) or the
// output, then frequency and presence penalties to the output's tokens. The output is
// every token Sample() / SampleWithUniform() returned on this Sampler (recorded only when
// a penalty is set). Processing works on a scratch copy: the caller's row is never
// written. Greedy requests take the argmax of the processed row.
//
// Constrained decoding (logit_constraint.h, e.g. JSON mode): a Sampler given a
// LogitConstraint masks the processed row with it (forbidden tokens → -inf) after bias
// and penalties, before temperature / greedy, and passes every token it returns to the
// constraint's Accept. If the masked row has no finite or +inf logit left, the tokens the
// constraint allows are treated as equally likely. Logprobs stay those of the raw row.
//
// Sampling: the weights exp((x - max) / T) of the processed logits; min_p zeroes those
// below min_p times the largest weight (probability relative to the most likely token);
// of the rest, top-k, then top-p (the shortest most-likely-first prefix, ties by lower
// id, whose mass reaches top_p of the kept mass) are kept and walked in id order; the
// token is the first whose cumulative weight exceeds u · (kept mass) for one uniform
// draw u. Neither filter sorts the whole vocabulary (bounded heap, threshold collection,
// selection).
//
// Non-finite logits (after processing, and separately for the raw logprobs): NaN counts
// as -inf (never sampled, logprob -inf). If any logit is +inf, the +inf entries share
// all the mass equally and the rest get -inf. A row with no finite or +inf logit is
// treated as uniform. Sample() never crashes on such rows.
// temperature == 0 or top_k == 1 is greedy (argmax, ties → lowest id) and draws nothing
// from the generator; otherwise each Sample() draws exactly one value. Greedy requests
// without logprobs, bias or penalties cost one max pass over the row; with none of the
// new options set, no scratch copy is made.
//
// Device sampling: NextUniform() takes the one draw Sample() would take, so a device can
// sample a row with it (kernels/cuda/sampling.h reproduces SampleWithUniform for rows
// with no logprobs, bias, penalties or min_p: DeviceEligible()); rows the device
// declines are finished on the host by SampleWithUniform with the same draw. For a
// non-empty row, Sample(x) == SampleWithUniform(x, NextUniform()), generator included.
//
// Thread safety: a Sampler holds one request's generator state, token history and
// scratch buffers; one thread at a time. Different Samplers may run concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/logit_penalties.h"

namespace moe::engine {

struct SamplingParams {
  float temperature = 1.0f;  // 0 → greedy
  int top_k = 0;             // 0 or -1 → disabled
  float top_p = 1.0f;        // in (0, 1]; 1 → disabled
  bool has_seed = false;
  uint64_t seed = 0;
  int logprobs = 0;  // top-n logprobs to return per token (0 = none)
  // Penalties (vLLM semantics, see the header comment); the defaults change nothing.
  float presence_penalty = 0.f;    // in [-2, 2]
  float frequency_penalty = 0.f;   // in [-2, 2]
  float repetition_penalty = 1.f;  // > 0, finite
  float min_p = 0.f;               // in [0, 1]; 0 → disabled
  // (token id, bias) added to the raw logits first; ids in [0, vocab), bias in
  // [-100, 100].
  std::vector<std::pair<int32_t, float>> logit_bias;
};

// Checks ranges; the error names the field ("temperature", "top_p", "top_k",
// "logprobs", "presence_penalty", "frequency_penalty", "repetition_penalty", "min_p",
// "logit_bias").
absl::Status ValidateSamplingParams(const SamplingParams& p, int vocab_size);

struct SampledToken {
  int32_t token = -1;
  // Of `token` under log_softmax(raw logits); computed only when params.logprobs > 0
  // (0 otherwise).
  float logprob = 0.f;
  // The `logprobs` most likely tokens, most likely first.
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

class Sampler {
 public:
  // Without a seed, the generator is seeded from `fallback_seed` (the caller passes a
  // fresh random value per request).
  // `constraint` (may be null): the sequence's own constrained-decoding state.
  Sampler(const SamplingParams& params, uint64_t fallback_seed,
          std::unique_ptr<LogitConstraint> constraint = nullptr);
  // The request's prompt, for repetition_penalty (ignored when that is 1). Call before
  // the first Sample; a later call replaces the prompt tokens, not the output counts.
  void SetPromptTokens(absl::Span<const int32_t> prompt);
  // An empty row gives token -1 and draws nothing.
  SampledToken Sample(absl::Span<const float> logits);

  // The one uniform draw Sample() would take for its next token, for sampling on a
  // device: nullopt when the next token is greedy (temperature 0, top_k 1, 1/T not
  // finite: no draw). Advances the generator exactly as Sample() would on a non-empty row.
  std::optional<double> NextUniform();
  // Sample() with the draw already taken (u in [0, 1); ignored when greedy; a missing
  // draw on a non-greedy request counts as 0): the host fallback for rows a device
  // declined. Draws nothing. For a non-empty row,
  // Sample(x) == SampleWithUniform(x, NextUniform()).
  SampledToken SampleWithUniform(absl::Span<const float> logits, std::optional<double> u);
  // True when this request's tokens may be sampled on a device: no logprobs wanted, and
  // no logit_bias, penalty, min_p or constraint (the device sampler implements none of
  // them, and penalties and constraints need host-side state).
  bool DeviceEligible() const {
    return params_.logprobs == 0 && !penalties_.active() && params_.min_p == 0.f &&
           constraint_ == nullptr;
  }
  // True when the next token is the argmax (no draw): temperature 0, top_k 1, or 1/T
  // not finite.
  bool Greedy() const;

  const SamplingParams& params() const { return params_; }

 private:
  // The sampled token for weights `w` (sum `total`) and the draw `u` in [0, 1); -1 if
  // none is kept.
  int32_t Choose(const float* w, int64_t n, double total, double u);
  // sel_ = the k most likely tokens of `w` with positive weight (all of them if fewer),
  // in no particular order.
  void CollectTopK(const float* w, int64_t n, int64_t k);

  // x, or a sanitised copy of it in *buf when it holds NaN or no finite maximum; *m is
  // the result's max.
  const float* Clean(const float* x, int64_t n, std::vector<float>* buf, float* m);

  // Masks processed_ with constraint_; a row left with nothing finite or +inf becomes
  // 0 on the allowed tokens (uniform among them).
  void ApplyConstraint(int64_t n);

  SamplingParams params_;
  sampling::LogitPenalties penalties_;
  std::unique_ptr<LogitConstraint> constraint_;
  std::mt19937_64 rng_;
  std::vector<float> weights_;                   // exp of the scaled logits
  std::vector<float> cleaned_;                   // a sanitised row (non-finite logits)
  std::vector<float> processed_;                 // the row after bias and penalties
  std::vector<float> processed_clean_;           // processed_, sanitised
  std::vector<std::pair<float, int32_t>> sel_;   // (weight, id) candidates
  std::vector<std::pair<float, int32_t>> top_;   // (logit, id) top-n logprobs
};

}  // namespace moe::engine
