#include "engine/sampling/logit_penalties.h"

#include <algorithm>

namespace moe::engine::sampling {

LogitPenalties::LogitPenalties(std::vector<std::pair<int32_t, float>> logit_bias,
                               float repetition_penalty, float frequency_penalty,
                               float presence_penalty)
    : logit_bias_(std::move(logit_bias)),
      repetition_(repetition_penalty),
      frequency_(frequency_penalty),
      presence_(presence_penalty),
      tracks_history_(repetition_penalty != 1.f || frequency_penalty != 0.f ||
                      presence_penalty != 0.f) {}

void LogitPenalties::SetPromptTokens(absl::Span<const int32_t> prompt) {
  prompt_.clear();
  // Only repetition_penalty looks at the prompt: keep no copy otherwise.
  if (repetition_ == 1.f) return;
  for (int32_t t : prompt) {
    if (t >= 0) prompt_.push_back(t);
  }
  std::sort(prompt_.begin(), prompt_.end());
  prompt_.erase(std::unique(prompt_.begin(), prompt_.end()), prompt_.end());
}

void LogitPenalties::RecordOutput(int32_t token) {
  if (tracks_history_ && token >= 0) ++output_counts_[token];
}

void LogitPenalties::Apply(float* x, int64_t n) const {
  for (const auto& [t, bias] : logit_bias_) {
    if (t >= 0 && t < n) x[t] += bias;
  }
  if (!tracks_history_) return;
  const float r = repetition_;
  auto repeat = [r](float v) { return v > 0.f ? v / r : v * r; };
  if (r != 1.f) {
    for (int32_t t : prompt_) {
      if (t < n) x[t] = repeat(x[t]);
    }
  }
  for (const auto& [t, count] : output_counts_) {
    if (t >= n) continue;
    // A token in both the prompt and the output is penalised for repetition once.
    if (r != 1.f && !std::binary_search(prompt_.begin(), prompt_.end(), t)) x[t] = repeat(x[t]);
    x[t] -= frequency_ * static_cast<float>(count) + presence_;
  }
}

}  // namespace moe::engine::sampling
