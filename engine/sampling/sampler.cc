#include "engine/sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moe::engine {
namespace {

constexpr int kMaxLogprobs = 20;
constexpr int64_t kHeapTopK = 1024;  // top-k up to this uses a bounded heap
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Orders (value, id) pairs most likely first; equal values by lower id. Deterministic,
// so the same logits always give the same candidate set and order.
struct MoreLikely {
  bool operator()(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) const {
    if (a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  }
};

// A uniform double in [0, 1) from the top 53 bits of one draw. Written out rather than
// using std::uniform_real_distribution so the token stream for a seed does not depend
// on the standard library's implementation.
double UniformUnit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

// exp(x) for x <= 0 (x - max), as a branch-free loop body the compiler vectorises:
// 2^k · e^r with k = round(x / ln2), |r| <= ln2 / 2, e^r by its degree-6 Taylor
// polynomial (relative error < 2e-7). Below -87 (and at -inf) it returns exactly 0, so
// masked tokens keep zero weight.
inline float ExpNonPositive(float x) {
  const float xc = std::max(x, -87.f);
  // Round to nearest by the 1.5 * 2^23 trick (no libm call, so the loop vectorises).
  const float k = (xc * 1.44269504f + 12582912.f) - 12582912.f;
  const float r = (xc - k * 0.693145752f) - k * 1.42860677e-6f;  // ln2 split hi + lo
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x < -87.f ? 0.f : p * scale;
}

// w[i] = exp((x[i] - m) * scale); returns the sum, accumulated in double.
double ExpWeights(const float* x, float m, float scale, int64_t n, float* w) {
  for (int64_t i = 0; i < n; ++i) w[i] = ExpNonPositive((x[i] - m) * scale);
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  for (; i < n; ++i) s0 += w[i];
  return (s0 + s1) + (s2 + s3);
}

// Max and argmax (ties → lowest id) and whether the row holds a NaN, in one pass.
void ScanRow(const float* x, int64_t n, float* max, int32_t* argmax, bool* any_nan) {
  float m = kNegInf;
  int32_t am = 0;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    nan |= x[i] != x[i];
    if (x[i] > m) {
      m = x[i];
      am = static_cast<int32_t>(i);
    }
  }
  *max = m;
  *argmax = am;
  *any_nan = nan;
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
  return absl::OkStatus();
}

Sampler::Sampler(const SamplingParams& params, uint64_t fallback_seed)
    : params_(params), rng_(params.has_seed ? params.seed : fallback_seed) {}

SampledToken Sampler::Sample(absl::Span<const float> raw_logits) {
  SampledToken out;
  const int64_t n = static_cast<int64_t>(raw_logits.size());
  if (n == 0) return out;

  const float* x = raw_logits.data();
  float m;
  int32_t argmax;
  bool any_nan;
  ScanRow(x, n, &m, &argmax, &any_nan);
  std::vector<float> cleaned;
  if (any_nan || !std::isfinite(m)) {
    Sanitize(raw_logits, &cleaned);
    x = cleaned.data();
    ScanRow(x, n, &m, &argmax, &any_nan);
  }

  // log_softmax(x) = x - lse, lse = m + log(sum exp(x - m)).
  weights_.resize(n);
  const double sum = ExpWeights(x, m, 1.f, n, weights_.data());
  const float lse = m + static_cast<float>(std::log(sum));
  auto logprob_of = [&](int32_t id) { return x[id] - lse; };

  // Top-n logprobs: a small sorted list; almost every token is rejected by one compare.
  const int want = static_cast<int>(std::min<int64_t>(std::clamp(params_.logprobs, 0, kMaxLogprobs), n));
  if (want > 0) {
    std::vector<std::pair<float, int32_t>> best;
    best.reserve(want + 1);
    MoreLikely more;
    for (int64_t i = 0; i < n; ++i) {
      std::pair<float, int32_t> c{x[i], static_cast<int32_t>(i)};
      if (static_cast<int>(best.size()) == want && !more(c, best.back())) continue;
      best.insert(std::upper_bound(best.begin(), best.end(), c, more), c);
      if (static_cast<int>(best.size()) > want) best.pop_back();
    }
    out.top_logprobs.reserve(want);
    for (const auto& [v, id] : best) out.top_logprobs.emplace_back(id, v - lse);
  }

  const float inv_t = params_.temperature > 0.f ? 1.f / params_.temperature : 0.f;
  // Greedy: temperature 0, top_k 1, or a temperature so small that 1/T overflows.
  if (params_.temperature == 0.f || params_.top_k == 1 || !std::isfinite(inv_t)) {
    out.token = argmax;
    out.logprob = logprob_of(argmax);
    return out;
  }

  // Unnormalised probabilities of the scaled logits, relative to the max (weight 1).
  double total = sum;
  if (inv_t != 1.f) total = ExpWeights(x, m, inv_t, n, weights_.data());
  const float* w = weights_.data();
  const bool top_k_on = params_.top_k > 0 && params_.top_k < n;
  const bool top_p_on = params_.top_p < 1.f;

  int32_t chosen = argmax;
  if (!top_k_on && !top_p_on) {
    // Plain sampling: one walk in id order, no candidate list.
    const double u = UniformUnit(rng_) * total;
    double cum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if (w[i] <= 0.f) continue;
      cum += w[i];
      chosen = static_cast<int32_t>(i);
      if (u < cum) break;
    }
    out.token = chosen;
    out.logprob = logprob_of(chosen);
    return out;
  }

  // Candidates as (weight, id). Tokens that cannot matter are left out up front:
  // zero weights always; with top-p alone, every token lighter than
  // tau = (1 - top_p) * total / (2n) — together they weigh at most half the mass the
  // nucleus may leave out, so the nucleus lies entirely among the heavier ones.
  float floor_w = 0.f;
  if (top_p_on && !top_k_on) {
    floor_w = static_cast<float>((1.0 - params_.top_p) * total / (2.0 * n));
  }
  scratch_.clear();
  const int64_t k = params_.top_k;
  if (top_k_on && k <= kHeapTopK) {
    // Top-k by a bounded heap whose front is the least likely kept token: almost every
    // token is rejected by one comparison.
    MoreLikely more;
    for (int64_t i = 0; i < n; ++i) {
      if (!(w[i] > 0.f)) continue;
      std::pair<float, int32_t> c{w[i], static_cast<int32_t>(i)};
      if (static_cast<int64_t>(scratch_.size()) < k) {
        scratch_.push_back(c);
        std::push_heap(scratch_.begin(), scratch_.end(), more);
      } else if (more(c, scratch_.front())) {
        std::pop_heap(scratch_.begin(), scratch_.end(), more);
        scratch_.back() = c;
        std::push_heap(scratch_.begin(), scratch_.end(), more);
      }
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (w[i] > 0.f && w[i] >= floor_w) scratch_.emplace_back(w[i], static_cast<int32_t>(i));
    }
  }
  int64_t count = static_cast<int64_t>(scratch_.size());
  auto begin = scratch_.begin();
  if (top_k_on && k < count) {
    std::nth_element(begin, begin + (k - 1), scratch_.end(), MoreLikely());
    count = k;
  }
  double kept = 0.0;
  for (int64_t i = 0; i < count; ++i) kept += scratch_[i].first;

  if (top_p_on) {
    // Nucleus: the smallest most-likely-first prefix whose mass reaches top_p of the
    // (top-k-filtered) distribution, by selection rather than sorting (expected
    // O(count)): split [lo, hi) at its middle element; if the mass down to it reaches
    // the target the cut is in the upper part, else in the lower part.
    const double target = static_cast<double>(params_.top_p) * (top_k_on ? kept : total);
    int64_t lo = 0, hi = count;
    double acc = 0.0;  // mass of [0, lo)
    while (hi - lo > 32) {
      const int64_t mid = lo + (hi - lo) / 2;
      std::nth_element(begin + lo, begin + mid, begin + hi, MoreLikely());
      double upper = 0.0;
      for (int64_t i = lo; i <= mid; ++i) upper += scratch_[i].first;
      if (acc + upper >= target) {
        hi = mid + 1;
      } else {
        acc += upper;
        lo = mid + 1;
      }
    }
    std::sort(begin + lo, begin + hi, MoreLikely());
    int64_t cut = hi - 1;  // rounding may leave the target unreached: keep the range
    for (int64_t i = lo; i < hi; ++i) {
      acc += scratch_[i].first;
      if (acc >= target) {
        cut = i;
        break;
      }
    }
    count = std::max<int64_t>(cut + 1, 1);
    kept = 0.0;
    for (int64_t i = 0; i < count; ++i) kept += scratch_[i].first;
  }

  // One draw per sampled token, whatever the candidate set: keeps the stream aligned.
  const double u = UniformUnit(rng_) * kept;
  double cum = 0.0;
  for (int64_t i = 0; i < count; ++i) {
    cum += scratch_[i].first;
    chosen = scratch_[i].second;
    if (u < cum) break;
  }
  out.token = chosen;
  out.logprob = logprob_of(chosen);
  return out;
}

}  // namespace moe::engine
