// Turns one row of logits into a token: greedy, temperature, top-k, top-p, with a
// per-request seeded generator (same seed, same logits → same tokens, whatever else is
// in the batch), and top-n logprobs of the unmodified distribution (log_softmax of the
// raw logits, as vLLM reports them).
//
// Sampling: the weights exp((x - max) / T) of the tokens kept by top-k, then top-p (the
// shortest most-likely-first prefix, ties by lower id, whose mass reaches top_p of the
// top-k-filtered mass), are walked in id order; the token is the first whose cumulative
// weight exceeds u · (kept mass) for one uniform draw u. Neither filter sorts the whole
// vocabulary (bounded heap, threshold collection, selection).
//
// Non-finite logits: NaN counts as -inf (never sampled, logprob -inf). If any logit is
// +inf, the +inf entries share all the mass equally and the rest get -inf. A row with no
// finite or +inf logit is treated as uniform. Sample() never crashes on such rows.
// temperature == 0 or top_k == 1 is greedy (argmax, ties → lowest id) and draws nothing
// from the generator; otherwise each Sample() draws exactly one value. Greedy requests
// without logprobs cost one max pass over the row.
//
// Device sampling: NextUniform() takes the one draw Sample() would take, so a device can
// sample a row with it (kernels/cuda/sampling.h reproduces SampleWithUniform); rows the
// device declines are finished on the host by SampleWithUniform with the same draw. For a
// non-empty row, Sample(x) == SampleWithUniform(x, NextUniform()), generator included.
//
// Thread safety: a Sampler holds one request's generator state and scratch buffers; one
// thread at a time. Different Samplers may run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace moe::engine {

struct SamplingParams {
  float temperature = 1.0f;  // 0 → greedy
  int top_k = 0;             // 0 or -1 → disabled
  float top_p = 1.0f;        // in (0, 1]; 1 → disabled
  bool has_seed = false;
  uint64_t seed = 0;
  int logprobs = 0;  // top-n logprobs to return per token (0 = none)
};

// Checks ranges; the error names the field ("temperature", "top_p", "top_k",
// "logprobs").
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
  Sampler(const SamplingParams& params, uint64_t fallback_seed);
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
  // True when this request's tokens may be sampled on a device: no logprobs wanted.
  bool DeviceEligible() const { return params_.logprobs == 0; }
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

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> weights_;                   // exp of the scaled logits
  std::vector<float> cleaned_;                   // a sanitised row (non-finite logits)
  std::vector<std::pair<float, int32_t>> sel_;   // (weight, id) candidates
  std::vector<std::pair<float, int32_t>> top_;   // (logit, id) top-n logprobs
};

}  // namespace moe::engine
