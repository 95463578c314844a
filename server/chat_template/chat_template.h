// Renders Hugging Face chat templates (the `chat_template` Jinja string of a
// model's tokenizer_config.json) exactly as transformers'
// `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`
// does: same Jinja subset, same environment (trim_blocks, lstrip_blocks,
// no trailing newline), same Python value semantics, `tojson` as
// json.dumps(ensure_ascii=False), `raise_exception(msg)`.
//
// Usage:
//   auto tmpl = ChatTemplate::Parse(config["chat_template"]);
//   auto prompt = tmpl->Render(messages, /*add_generation_prompt=*/true,
//                              {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
//
// Key order: Python dicts keep insertion order and `tojson`/`items()` show
// it. nlohmann::json sorts object keys, so callers that parse request
// bodies should use nlohmann::ordered_json and the ordered_json overload.
//
// Safety: templates are untrusted input. Parse rejects over-deep nesting;
// Render stops runaway loops, huge strings and deep macro recursion with an
// error (see RenderLimits) and never hangs or crashes.
//
// Thread safety: a ChatTemplate is immutable after Parse; Render is const
// and may be called concurrently from any number of threads.
#ifndef MOE_SERVER_CHAT_TEMPLATE_CHAT_TEMPLATE_H_
#define MOE_SERVER_CHAT_TEMPLATE_CHAT_TEMPLATE_H_

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/chat_template/ast.h"
#include "server/chat_template/evaluator.h"

namespace moe::server {

class ChatTemplate {
 public:
  // Parses `source`. Syntax errors are InvalidArgument naming line and
  // column ("template syntax error at line 3, column 7: ...").
  static absl::StatusOr<ChatTemplate> Parse(absl::string_view source,
                                            chat_template::RenderLimits limits = {});

  // Renders the conversation. `messages` must be an array of objects.
  // `extra_context` (an object, or null) adds template variables such as
  // bos_token, eos_token, tools, documents, enable_thinking; like
  // transformers, `tools` and `documents` default to None. Messages carrying
  // reasoning under "reasoning_content", "thinking" or "reasoning" get it
  // copied to the other names, as transformers does.
  //
  // Errors are InvalidArgument: for raise_exception(msg) the message is
  // exactly msg; otherwise "template error at line N: ...".
  absl::StatusOr<std::string> Render(const nlohmann::json& messages, bool add_generation_prompt,
                                     const nlohmann::json& extra_context = nullptr) const;
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt,
                                     const nlohmann::ordered_json& extra_context = nullptr) const;

 private:
  ChatTemplate(std::shared_ptr<const chat_template::StmtList> body,
               chat_template::RenderLimits limits)
      : body_(std::move(body)), limits_(limits) {}

  absl::StatusOr<std::string> RenderValues(chat_template::Value messages,
                                           bool add_generation_prompt,
                                           chat_template::Value extra) const;

  std::shared_ptr<const chat_template::StmtList> body_;
  chat_template::RenderLimits limits_;
};

}  // namespace moe::server

#endif  // MOE_SERVER_CHAT_TEMPLATE_CHAT_TEMPLATE_H_
