// Turns parsed requests into prompt token ids: completion prompts are encoded (or taken
// as given when they are ids); chat messages are rendered with the chat template (the
// tokenizer's, or an override such as vLLM's --chat-template) with bos_token,
// eos_token and add_generation_prompt, then encoded. When the rendered text already
// begins with the BOS token's text it is encoded without special tokens, so BOS is
// never doubled.
//
// Thread safety: immutable after Create; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/chat_template/chat_template.h"
#include "server/http/openai_request.h"

namespace moe::server::http {

class PromptBuilder {
 public:
  // `tokenizer` must outlive the builder. `chat_template_override` (template source; ""
  // = the tokenizer's) that fails to parse is an INVALID_ARGUMENT naming
  // "chat_template".
  static absl::StatusOr<std::unique_ptr<PromptBuilder>> Create(
      const engine::Tokenizer* tokenizer, const std::string& chat_template_override);

  // One id list per prompt of a completion request.
  absl::StatusOr<std::vector<std::vector<int32_t>>> CompletionPrompts(
      const OpenAiRequest& req) const;

  // The rendered conversation; errors name "messages" (template errors included).
  // `continue_final_message` (vLLM's, after Hugging Face's): the text is cut right after
  // the last message's content, so the model continues that message; INVALID_ARGUMENT
  // naming "messages" when that content is empty or absent from the rendered text.
  absl::StatusOr<std::string> RenderChat(const nlohmann::ordered_json& messages,
                                         bool add_generation_prompt,
                                         const nlohmann::ordered_json& kwargs,
                                         bool continue_final_message = false) const;
  // RenderChat, then encoded (see the header comment about BOS).
  absl::StatusOr<std::vector<int32_t>> ChatPrompt(const nlohmann::ordered_json& messages,
                                                  bool add_generation_prompt,
                                                  const nlohmann::ordered_json& kwargs,
                                                  bool continue_final_message = false) const;

  const engine::Tokenizer& tokenizer() const { return *tokenizer_; }
  bool has_chat_template() const { return chat_template_ != nullptr; }

 private:
  PromptBuilder() = default;

  const engine::Tokenizer* tokenizer_ = nullptr;
  std::shared_ptr<const ChatTemplate> chat_template_;
  std::string bos_text_;
  std::string eos_text_;
};

}  // namespace moe::server::http
