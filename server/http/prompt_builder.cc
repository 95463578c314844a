#include "server/http/prompt_builder.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace moe::server::http {
namespace {

// Cuts `text` right after the last occurrence of the final message's content (as
// written, else with surrounding whitespace stripped, for templates that trim it).
absl::Status CutAfterFinalMessage(const nlohmann::ordered_json& messages, std::string* text) {
  const nlohmann::ordered_json* content = nullptr;
  if (messages.is_array() && !messages.empty() && messages.back().is_object()) {
    auto it = messages.back().find("content");
    if (it != messages.back().end() && it->is_string()) content = &*it;
  }
  const std::string final_text = content != nullptr ? content->get<std::string>() : "";
  for (absl::string_view needle :
       {absl::string_view(final_text), absl::StripAsciiWhitespace(final_text)}) {
    if (needle.empty()) break;
    const size_t at = text->rfind(needle.data(), std::string::npos, needle.size());
    if (at != std::string::npos) {
      text->resize(at + needle.size());
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(
      "messages: continue_final_message needs a last message whose text content appears in "
      "the rendered chat (it is empty or the template drops it)");
}

}  // namespace

absl::StatusOr<std::unique_ptr<PromptBuilder>> PromptBuilder::Create(
    const engine::Tokenizer* tokenizer, const std::string& chat_template_override) {
  if (tokenizer == nullptr) return absl::InvalidArgumentError("tokenizer: required");
  std::unique_ptr<PromptBuilder> b(new PromptBuilder());
  b->tokenizer_ = tokenizer;
  const std::string& source =
      chat_template_override.empty() ? tokenizer->chat_template() : chat_template_override;
  if (!source.empty()) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(source);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("chat_template: ", t.status().message()));
    }
    b->chat_template_ = std::make_shared<const ChatTemplate>(*std::move(t));
  }
  if (auto bos = tokenizer->bos_id(); bos.has_value()) b->bos_text_ = tokenizer->IdToToken(*bos);
  if (auto eos = tokenizer->eos_id(); eos.has_value()) b->eos_text_ = tokenizer->IdToToken(*eos);
  return b;
}

absl::StatusOr<std::vector<std::vector<int32_t>>> PromptBuilder::CompletionPrompts(
    const OpenAiRequest& req) const {
  std::vector<std::vector<int32_t>> out = req.prompt_ids;
  for (const std::string& text : req.prompt_texts) {
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(text, true);
    if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("prompt: ", ids.status().message()));
    if (ids->empty()) return absl::InvalidArgumentError("prompt: encodes to no tokens");
    out.push_back(*std::move(ids));
  }
  return out;
}

absl::StatusOr<std::string> PromptBuilder::RenderChat(const nlohmann::ordered_json& messages,
                                                      bool add_generation_prompt,
                                                      const nlohmann::ordered_json& kwargs,
                                                      bool continue_final_message) const {
  if (chat_template_ == nullptr) {
    return absl::InvalidArgumentError(
        "messages: this model has no chat template; start the server with a chat template "
        "(--chat-template) or use /v1/completions");
  }
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  if (kwargs.is_object()) extra = kwargs;
  extra["bos_token"] = bos_text_;
  extra["eos_token"] = eos_text_;
  absl::StatusOr<std::string> text =
      chat_template_->Render(messages, add_generation_prompt, extra);
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("messages: ", text.status().message()));
  }
  if (continue_final_message) {
    if (absl::Status s = CutAfterFinalMessage(messages, &*text); !s.ok()) return s;
  }
  return text;
}

absl::StatusOr<std::vector<int32_t>> PromptBuilder::ChatPrompt(
    const nlohmann::ordered_json& messages, bool add_generation_prompt,
    const nlohmann::ordered_json& kwargs, bool continue_final_message) const {
  absl::StatusOr<std::string> text =
      RenderChat(messages, add_generation_prompt, kwargs, continue_final_message);
  if (!text.ok()) return text.status();
  const bool has_bos = !bos_text_.empty() && absl::StartsWith(*text, bos_text_);
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(*text, !has_bos);
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("messages: ", ids.status().message()));
  if (ids->empty()) return absl::InvalidArgumentError("messages: render to no tokens");
  return ids;
}

}  // namespace moe::server::http
