#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/sampling/row_scan.h"

namespace moe::engine {
namespace {

using sampling::ExpWeights;
using sampling::FirstIndexOf;
using sampling::LogSumExp;
using sampling::MaxAndNan;
using sampling::TopN;
using Candidate = std::pair<float, int32_t>;

constexpr int kMaxLogprobs = 20;
constexpr int64_t kHeapTopK = 1024;  // top-k up to this uses a bounded heap
// Candidate lists up to this size are sorted outright; longer ones are cut by selection.
constexpr int64_t kSortAll = 4096;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Orders (value, id) pairs most likely first; equal values by lower id. Deterministic,
// so the same logits always give the same candidate set and order.
struct MoreLikely {
  bool operator()(const Candidate& a, const Candidate& b) const {
    if (a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  }
};

// The biased binary exponent of a weight in (0, 1]: 127 for 1, 126 for [0.5, 1)...
int BiasedExponent(float w) {
  uint32_t bits;
  std::memcpy(&bits, &w, 4);
  return static_cast<int>((bits >> 23) & 0x7f);
}

// A uniform double in [0, 1) from the top 53 bits of one draw. Written out rather than
// using std::uniform_real_distribution so the token stream for a seed does not depend
// on the standard library's implementation.

double UniformUnit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

// The documented rules for rows with non-finite logits (see the header): NaN → -inf;
// if any logit is +inf, the +inf ones → 0 and all others → -inf; if none is finite or
// +inf, all → 0 (uniform).
void Sanitize(absl::Span<const float> logits, std::vector<float>* out) {
  bool any_pos_inf = false, any_finite = false;
  for (float v : logits) {
    if (v == std::numeric_limits<float>::infinity()) any_pos_inf = true;
    if (std::isfinite(v)) any_finite = true;
  }
  out->resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (any_pos_inf) {
      (*out)[i] = v == std::numeric_limits<float>::infinity() ? 0.f : kNegInf;
    } else if (!any_finite) {
      (*out)[i] = 0.f;
    } else {
      (*out)[i] = std::isnan(v) ? kNegInf : v;
    }
  }
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p, int vocab_size) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.f) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be a finite number >= 0, got ", p.temperature));
  }
  if (!(p.top_p > 0.f && p.top_p <= 1.f)) {  // also rejects NaN
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  if (p.top_k < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be -1 or 0 (disabled) or a positive count, got ", p.top_k));
  }
  if (p.logprobs < 0 || p.logprobs > kMaxLogprobs) {
    return absl::InvalidArgumentError(
        absl::StrCat("logprobs must be in [0, ", kMaxLogprobs, "], got ", p.logprobs));
  }
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size must be positive, got ", vocab_size));
  }
  // The range checks below also reject NaN.
  if (!(p.presence_penalty >= -2.f && p.presence_penalty <= 2.f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("presence_penalty: must be in [-2, 2], got ", p.presence_penalty));
  }
  if (!(p.frequency_penalty >= -2.f && p.frequency_penalty <= 2.f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("frequency_penalty: must be in [-2, 2], got ", p.frequency_penalty));
  }
  if (!(p.repetition_penalty > 0.f) || !std::isfinite(p.repetition_penalty)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "repetition_penalty: must be a finite number > 0, got ", p.repetition_penalty));
  }
  if (!(p.min_p >= 0.f && p.min_p <= 1.f)) {
    return absl::InvalidArgumentError(absl::StrCat("min_p: must be in [0, 1], got ", p.min_p));
  }
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0 || id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias: token id ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
    }
    if (!(bias >= -100.f && bias <= 100.f)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "logit_bias: the bias of token ", id, " must be in [-100, 100], got ", bias));
    }
  }
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params, uint64_t fallback_seed,
                 std::unique_ptr<LogitConstraint> constraint)
    : params_(params),
      penalties_(params.logit_bias, params.repetition_penalty, params.frequency_penalty,
                 params.presence_penalty),
      constraint_(std::move(constraint)),
      rng_(params.has_seed ? params.seed : fallback_seed) {}

void Sampler::ApplyConstraint(int64_t n) {
  constraint_->Mask(processed_.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    if (processed_[i] > kNegInf) return;  // NaN compares false: it does not count
  }
  std::fill(processed_.begin(), processed_.end(), 0.f);
  constraint_->Mask(processed_.data(), n);
}

void Sampler::SetPromptTokens(absl::Span<const int32_t> prompt) {
  penalties_.SetPromptTokens(prompt);
}

const float* Sampler::Clean(const float* x, int64_t n, std::vector<float>* buf, float* m) {
  bool any_nan;
  MaxAndNan(x, n, m, &any_nan);
  if (!any_nan && std::isfinite(*m)) return x;
  Sanitize(absl::MakeConstSpan(x, static_cast<size_t>(n)), buf);
  MaxAndNan(buf->data(), n, m, &any_nan);
  return buf->data();
}

bool Sampler::Greedy() const {
  const float inv_t = params_.temperature > 0.f ? 1.f / params_.temperature : 0.f;
  return params_.temperature == 0.f || params_.top_k == 1 || !std::isfinite(inv_t);
}

std::optional<double> Sampler::NextUniform() {
  if (Greedy()) return std::nullopt;
  return UniformUnit(rng_);
}

SampledToken Sampler::Sample(absl::Span<const float> raw_logits) {
  if (raw_logits.empty()) return SampledToken{};  // no draw
  return SampleWithUniform(raw_logits, NextUniform());
}

SampledToken Sampler::SampleWithUniform(absl::Span<const float> raw_logits,
                                        std::optional<double> u) {
  SampledToken out;
  const int64_t n = static_cast<int64_t>(raw_logits.size());
  if (n == 0) return out;

  // x: the raw row (sanitised if need be), for logprobs; s: the row sampled from,
  // which is x unless bias or penalties apply.
  float m;
  const float* x = Clean(raw_logits.data(), n, &cleaned_, &m);
  const float* s = x;
  float sm = m;
  const bool processed = penalties_.active() || constraint_ != nullptr;
  if (processed) {
    processed_.assign(raw_logits.begin(), raw_logits.end());
    if (penalties_.active()) penalties_.Apply(processed_.data(), n);
    if (constraint_ != nullptr) ApplyConstraint(n);
    s = Clean(processed_.data(), n, &processed_clean_, &sm);
  }

  const int want =
      static_cast<int>(std::min<int64_t>(std::clamp(params_.logprobs, 0, kMaxLogprobs), n));
  const float inv_t = params_.temperature > 0.f ? 1.f / params_.temperature : 0.f;
  // Greedy: temperature 0, top_k 1, or a temperature so small that 1/T overflows.
  const bool greedy = Greedy();

  int32_t chosen;
  double total = 0;
  if (greedy) {
    chosen = FirstIndexOf(s, n, sm);  // ties → lowest id; no draw
  } else {
    weights_.resize(n);
    total = ExpWeights(s, sm, inv_t, n, weights_.data());
    if (params_.min_p > 0.f) {
      // The most likely token weighs exactly 1, so a token's probability relative to it
      // is its weight.
      const float floor_w = params_.min_p;
      total = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        if (weights_[i] < floor_w) weights_[i] = 0.f;
        total += weights_[i];
      }
    }
    chosen = Choose(weights_.data(), n, total, u.value_or(0.0));
    if (chosen < 0) chosen = FirstIndexOf(s, n, sm);
  }
  out.token = chosen;
  if (penalties_.tracks_history()) penalties_.RecordOutput(chosen);
  if (constraint_ != nullptr) constraint_->Accept(chosen);
  if (want == 0) return out;

  // log_softmax(x) = x - lse, lse = m + log(sum exp(x - m)); at temperature 1 with no
  // processing the sum is the one just computed for sampling.
  const bool reuse_total = !greedy && inv_t == 1.f && !processed && params_.min_p == 0.f;
  const float lse = reuse_total ? m + static_cast<float>(std::log(total)) : LogSumExp(x, m, n);
  out.logprob = x[chosen] - lse;
  TopN(x, n, want, &top_);
  out.top_logprobs.reserve(want);
  for (const auto& [v, id] : top_) out.top_logprobs.emplace_back(id, v - lse);
  return out;
}

int32_t Sampler::Choose(const float* w, int64_t n, double total, double draw) {
  const bool top_k_on = params_.top_k > 0 && params_.top_k < n;
  const bool top_p_on = params_.top_p < 1.f;
  if (!top_k_on && !top_p_on) {
    // Plain sampling: one walk in id order, no candidate list.
    const double u = draw * total;
    double cum = 0.0;
    int32_t chosen = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (w[i] <= 0.f) continue;
      cum += w[i];
      chosen = static_cast<int32_t>(i);
      if (u < cum) break;
    }
    return chosen;
  }

  // 1. A candidate set `sel_` that holds the kept tokens (a most-likely-first prefix of
  //    the vocabulary), and the mass the top-p target is a fraction of.
  double mass = total;
  const int64_t k = params_.top_k;
  if (top_k_on) {
    CollectTopK(w, n, k);
    mass = 0.0;
    if (top_p_on && static_cast<int64_t>(sel_.size()) <= kSortAll) {
      std::sort(sel_.begin(), sel_.end(), MoreLikely());
    }
    for (const Candidate& c : sel_) mass += c.first;
  } else {
    // Top-p alone: every token at or above a threshold is a most-likely-first prefix;
    // once its mass reaches the target, the nucleus lies inside it. Collect the tokens
    // above 2^-20 of the max's weight (the max weighs 1) with their mass per power of two,
    // and keep those at or above the highest power of two whose prefix mass reaches the
    // target: about the nucleus, whatever the vocabulary size. If the tokens above
    // 2^-20 do not reach it, fall back to a floor that always does: the tokens under it
    // weigh at most half the mass the nucleus may leave out.
    const double target = static_cast<double>(params_.top_p) * total;
    const float floor_w = static_cast<float>((1.0 - params_.top_p) * total / (2.0 * n));
    double bucket[128] = {};
    // Branch-free compaction: every token is written, only those kept advance `kept_n`.
    sel_.resize(n);
    int64_t kept_n = 0;
    for (int64_t i = 0; i < n; ++i) {
      sel_[kept_n] = Candidate{w[i], static_cast<int32_t>(i)};
      kept_n += w[i] >= 0x1p-20f ? 1 : 0;
    }
    sel_.resize(kept_n);
    double got = 0.0;
    for (const Candidate& c : sel_) got += c.first;
    if (got >= target) {
      for (const Candidate& c : sel_) bucket[BiasedExponent(c.first)] += c.first;
      double cum = 0.0;
      int e = 127;
      for (; e > 0; --e) {
        cum += bucket[e];
        if (cum >= target) break;
      }
      const float edge = std::ldexp(1.f, e - 127);
      sel_.erase(std::partition(sel_.begin(), sel_.end(),
                                [edge](const Candidate& c) { return c.first >= edge; }),
                 sel_.end());
    } else {
      sel_.clear();
      for (int64_t i = 0; i < n; ++i) {
        if (w[i] > 0.f && w[i] >= floor_w) sel_.emplace_back(w[i], static_cast<int32_t>(i));
      }
    }
  }

  // 2. The nucleus: the shortest most-likely-first prefix of `sel_` whose mass reaches
  //    top_p of `mass`. Small lists are sorted; larger ones are cut by selection
  //    (expected O(size)): split [lo, hi) at its middle element; if the mass down to it
  //    reaches the target the cut is in the upper part, else in the lower part.
  int64_t count = static_cast<int64_t>(sel_.size());
  double kept = mass;
  if (top_p_on && count > 0) {
    const double target = static_cast<double>(params_.top_p) * mass;
    auto begin = sel_.begin();
    int64_t lo = 0, hi = count;
    double acc = 0.0;  // mass of [0, lo)
    if (count > kSortAll || !top_k_on) {
      while (hi - lo > kSortAll) {
        const int64_t mid = lo + (hi - lo) / 2;
        std::nth_element(begin + lo, begin + mid, begin + hi, MoreLikely());
        double upper = 0.0;
        for (int64_t i = lo; i <= mid; ++i) upper += sel_[i].first;
        if (acc + upper >= target) {
          hi = mid + 1;
        } else {
          acc += upper;
          lo = mid + 1;
        }
      }
      std::sort(begin + lo, begin + hi, MoreLikely());
    }
    int64_t cut = hi - 1;  // rounding may leave the target unreached: keep the range
    for (int64_t i = lo; i < hi; ++i) {
      acc += sel_[i].first;
      if (acc >= target) {
        cut = i;
        break;
      }
    }
    count = cut + 1;
    kept = 0.0;
    for (int64_t i = 0; i < count; ++i) kept += sel_[i].first;
  }
  if (count == 0) return -1;

  // 3. The draw scaled to the kept mass, then a walk over the kept tokens in id order (as
  //    plain sampling walks the whole vocabulary), so the token for a draw does not depend
  //    on how the set was found. Long kept sets are walked in place over the vocabulary.
  const double u = draw * kept;
  double cum = 0.0;
  int32_t chosen = -1;
  if (count <= kSortAll) {
    std::sort(sel_.begin(), sel_.begin() + count,
              [](const Candidate& a, const Candidate& b) { return a.second < b.second; });
    for (int64_t i = 0; i < count; ++i) {
      cum += sel_[i].first;
      chosen = sel_[i].second;
      if (u < cum) break;
    }
    return chosen;
  }
  // The least likely kept token bounds the set (ties by id).
  const Candidate last =
      *std::min_element(sel_.begin(), sel_.begin() + count, [](const Candidate& a, const Candidate& b) {
        return MoreLikely()(b, a);
      });
  for (int64_t i = 0; i < n; ++i) {
    if (w[i] > last.first || (w[i] == last.first && i <= last.second)) {
      cum += w[i];
      chosen = static_cast<int32_t>(i);
      if (u < cum) break;
    }
  }
  return chosen;
}

void Sampler::CollectTopK(const float* w, int64_t n, int64_t k) {
  sel_.clear();
  MoreLikely more;
  if (k <= kHeapTopK) {
    // A bounded heap whose front is the least likely kept token: almost every token is
    // rejected by one comparison.
    for (int64_t i = 0; i < n; ++i) {
      if (!(w[i] > 0.f)) continue;
      const Candidate c{w[i], static_cast<int32_t>(i)};
      if (static_cast<int64_t>(sel_.size()) < k) {
        sel_.push_back(c);
        std::push_heap(sel_.begin(), sel_.end(), more);
      } else if (w[i] > sel_.front().first) {  // a later id wins only by weight
        std::pop_heap(sel_.begin(), sel_.end(), more);
        sel_.back() = c;
        std::push_heap(sel_.begin(), sel_.end(), more);
      }
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (w[i] > 0.f) sel_.emplace_back(w[i], static_cast<int32_t>(i));
  }
  if (k < static_cast<int64_t>(sel_.size())) {
    std::nth_element(sel_.begin(), sel_.begin() + (k - 1), sel_.end(), more);
    sel_.resize(k);
  }
}

}  // namespace moe::engine
