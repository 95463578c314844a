#include "server/request_validation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace moe::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// A float in [lo, hi] (NaN refused).
absl::Status CheckRange(absl::string_view field, float v, float lo, float hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
}

// presence / frequency / repetition penalties, min_p and logit_bias.
absl::Status ConvertPenalties(const moe::v1::SamplingParams& sp, const ModelLimits& limits,
                              engine::SamplingParams* out) {
  if (absl::Status s = CheckRange("sampling.presence_penalty", sp.presence_penalty(), -2.f, 2.f);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckRange("sampling.frequency_penalty", sp.frequency_penalty(), -2.f, 2.f);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckRange("sampling.min_p", sp.min_p(), 0.f, 1.f); !s.ok()) return s;
  out->presence_penalty = sp.presence_penalty();
  out->frequency_penalty = sp.frequency_penalty();
  out->min_p = sp.min_p();
  if (sp.has_repetition_penalty()) {
    const float r = sp.repetition_penalty();
    if (!(r > 0.f) || std::isinf(r)) {
      return Invalid("sampling.repetition_penalty",
                     absl::StrCat("must be a finite number > 0, got ", r));
    }
    out->repetition_penalty = r;
  }
  for (const auto& [id, bias] : sp.logit_bias()) {
    if (id < 0 || id >= limits.vocab_size) {
      return Invalid("sampling.logit_bias", absl::StrCat("token id ", id,
                                                         " is outside the vocabulary [0, ",
                                                         limits.vocab_size, ")"));
    }
    if (!(bias >= -100.f && bias <= 100.f)) {
      return Invalid("sampling.logit_bias",
                     absl::StrCat("the bias of token ", id, " must be in [-100, 100], got ", bias));
    }
    out->logit_bias.emplace_back(id, bias);
  }
  // Sorted by id: the order a proto map iterates in is unspecified.
  std::sort(out->logit_bias.begin(), out->logit_bias.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<scheduler::GenerateRequest> ToSchedulerRequest(
    const moe::v1::GenerateRequest& req, const engine::Tokenizer* tokenizer,
    const ModelLimits& limits, absl::Time deadline, uint64_t fallback_seed) {
  scheduler::GenerateRequest out;
  out.request_id = req.request_id();
  out.priority = req.priority();  // the scheduler checks it against its policy
  out.deadline = deadline;
  out.fallback_seed = fallback_seed;

  switch (req.input_case()) {
    case moe::v1::GenerateRequest::kText: {
      if (req.text().empty()) return Invalid("text", "the prompt is empty");
      if (tokenizer == nullptr) return Invalid("text", "this model has no tokenizer; send token_ids");
      auto ids = tokenizer->Encode(req.text(), req.add_special_tokens());
      if (!ids.ok()) return Invalid("text", ids.status().message());
      if (ids->empty()) return Invalid("text", "the prompt encodes to no tokens");
      out.prompt = std::move(*ids);
      break;
    }
    case moe::v1::GenerateRequest::kTokenIds: {
      const auto& ids = req.token_ids().ids();
      if (ids.empty()) return Invalid("token_ids", "the prompt is empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
          return Invalid("token_ids", absl::StrCat("token id ", ids[i], " at index ", i,
                                                   " is outside the vocabulary [0, ",
                                                   limits.vocab_size, ")"));
        }
      }
      out.prompt.assign(ids.begin(), ids.end());
      break;
    }
    default:
      return Invalid("input", "the prompt is empty: set text or token_ids");
  }

  const char* prompt_field = req.input_case() == moe::v1::GenerateRequest::kTokenIds ? "token_ids"
                                                                                  : "text";
  if (limits.context_length > 0 && static_cast<int64_t>(out.prompt.size()) >= limits.context_length) {
    return Invalid(prompt_field, absl::StrCat("the prompt (", out.prompt.size(),
                                              " tokens) leaves no room in the context length ",
                                              limits.context_length));
  }
  if (limits.max_prompt_tokens > 0 &&
      static_cast<int64_t>(out.prompt.size()) > limits.max_prompt_tokens) {
    return Invalid(prompt_field, absl::StrCat("the prompt (", out.prompt.size(),
                                              " tokens) exceeds the server's max_prompt_tokens ",
                                              limits.max_prompt_tokens));
  }
  const moe::v1::SamplingParams& sp = req.sampling();
  if (sp.has_max_tokens() && sp.max_tokens() <= 0) {
    return Invalid("sampling.max_tokens", absl::StrCat("must be > 0, got ", sp.max_tokens()));
  }
  // The default never overflows the context: it shrinks to the room the prompt leaves
  // (which the check above makes at least 1), as vLLM clamps it.
  out.max_tokens = kDefaultMaxTokens;
  if (sp.has_max_tokens()) {
    out.max_tokens = sp.max_tokens();
  } else if (limits.context_length > 0) {
    out.max_tokens = static_cast<int>(std::min<int64_t>(
        kDefaultMaxTokens, limits.context_length - static_cast<int64_t>(out.prompt.size())));
  }
  const int64_t total = static_cast<int64_t>(out.prompt.size()) + out.max_tokens;
  if (limits.context_length > 0 && total > limits.context_length) {
    return Invalid("sampling.max_tokens",
                   absl::StrCat("prompt (", out.prompt.size(), " tokens) + max_tokens (",
                                out.max_tokens, ") exceeds the context length ",
                                limits.context_length));
  }
  if (std::isnan(sp.temperature()) || sp.temperature() < 0.f || std::isinf(sp.temperature())) {
    return Invalid("sampling.temperature",
                   absl::StrCat("must be a finite number >= 0, got ", sp.temperature()));
  }
  out.sampling.temperature = sp.temperature();
  // top_p: unset (0) means 1; otherwise it must lie in (0, 1].
  if (sp.top_p() != 0.f && !(sp.top_p() > 0.f && sp.top_p() <= 1.f)) {
    return Invalid("sampling.top_p", absl::StrCat("must be in (0, 1], got ", sp.top_p()));
  }
  out.sampling.top_p = sp.top_p() == 0.f ? 1.f : sp.top_p();
  if (sp.top_k() < -1) {
    return Invalid("sampling.top_k",
                   absl::StrCat("must be >= -1 (0 and -1 = disabled), got ", sp.top_k()));
  }
  out.sampling.top_k = sp.top_k();
  if (sp.logprobs() < 0 || sp.logprobs() > 20) {
    return Invalid("sampling.logprobs", absl::StrCat("must be in [0, 20], got ", sp.logprobs()));
  }
  out.sampling.logprobs = sp.logprobs();
  if (sp.has_seed()) {
    out.sampling.has_seed = true;
    out.sampling.seed = sp.seed();
  }
  for (int i = 0; i < sp.stop_size(); ++i) {
    if (sp.stop(i).empty()) {
      return Invalid("sampling.stop", absl::StrCat("entry ", i, " is an empty string"));
    }
    out.stop_strings.push_back(sp.stop(i));
  }
  for (int32_t id : sp.stop_token_ids()) {
    if (id < 0 || id >= limits.vocab_size) {
      return Invalid("sampling.stop_token_ids",
                     absl::StrCat("token id ", id, " is outside the vocabulary"));
    }
    out.stop_token_ids.push_back(id);
  }
  out.ignore_eos = sp.ignore_eos();
  if (absl::Status s = ConvertPenalties(sp, limits, &out.sampling); !s.ok()) return s;
  return out;
}

}  // namespace moe::server
