// Parsing of OpenAI-style request bodies (/v1/completions, /v1/chat/completions,
// /tokenize, /detokenize) into plain structs. Checks JSON types and value ranges only;
// tokenization, templates and model limits come later (prompt_builder.h, Submit).
//
// Errors are INVALID_ARGUMENT whose message starts with the field at fault and a colon
// ("max_tokens: must be an integer"), so api_error.h can report it as `param`. Unknown
// fields are ignored; a null field counts as absent. Integer fields accept integral
// floats (3.0), as vLLM does. A message's null or absent content is the empty string.
// Known OpenAI fields whose meaning is
// not implemented are refused rather than ignored, since a client would notice:
// response_format other than {"type": "text"} / {"type": "json_object"} /
// {"type": "json_schema"} (whose schema keywords are checked when it is compiled,
// engine/sampling/json_schema.h), non-empty legacy `functions`,
// `function_call` other than "none", `tools` or a tool_choice other than "none" on
// completions, a chat tool_choice naming a function not among tools or forcing a call
// together with a JSON response_format, a non-empty completions `suffix`, best_of other than n, and completions
// `echo` together with `logprobs`. Chat `tools` are checked for shape (errors name e.g.
// "tools[1].function.name"); whether tool calls are parsed is the gateway's decision
// (--enable-auto-tool-choice, or a forced call); the parameters' schemas are checked
// when compiled for a forced call (generation.h).
//
// Thread safety: pure functions of their input, no shared state. They never throw and
// accept any bytes (they are fuzzed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::server::http {

inline constexpr int kMaxN = 64;
inline constexpr int kMaxTopLogprobs = 20;

enum class ApiKind { kCompletion, kChat };

struct OpenAiRequest {
  ApiKind kind = ApiKind::kCompletion;
  std::string model;  // "" when absent

  // Completions: either texts or token-id prompts (one per prompt, in order).
  std::vector<std::string> prompt_texts;
  std::vector<std::vector<int32_t>> prompt_ids;

  // Chat: the messages, content lists of text parts flattened to strings.
  nlohmann::ordered_json messages;
  bool add_generation_prompt = true;
  // vLLM's continue_final_message: the prompt ends inside the last message (its text not
  // closed by the template), so the model continues it. Needs add_generation_prompt off.
  bool continue_final_message = false;
  nlohmann::ordered_json chat_template_kwargs;  // object or null
  // Chat tools, as sent ([{"type": "function", "function": {name, description,
  // parameters}}]; null when absent or empty), rendered by the chat template.
  nlohmann::ordered_json tools;
  // "auto" (the default when tools are given), "none" (the default otherwise),
  // "required" (some tool must be called), or "function" (sent as {"type": "function",
  // "function": {"name": X}}: X, one of the tools, in tool_choice_name, must be called).
  std::string tool_choice = "none";
  std::string tool_choice_name;
  // "required" / "function": the output is forced into one tool call
  // (engine/sampling/tool_call_constraint.h).
  bool forced_tool_call() const { return tool_choice == "required" || tool_choice == "function"; }
  // Set by the gateway, not from the body: parse the completion for tool calls
  // (tool_call_parser.h). True with tools and either a forced tool call, or tool_choice
  // "auto" and the server's --enable-auto-tool-choice.
  bool parse_tool_calls = false;

  std::optional<int> max_tokens;  // max_completion_tokens wins over max_tokens
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = -1;
  std::optional<int64_t> seed;
  std::vector<std::string> stop;  // empty strings dropped
  std::vector<int32_t> stop_token_ids;
  int n = 1;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // Completions `logprobs: k` or chat `logprobs: true`: per-token logprobs with the top
  // `top_logprobs` alternatives.
  bool logprobs = false;
  int top_logprobs = 0;
  bool ignore_eos = false;
  bool return_token_ids = false;
  // Penalties and filters with vLLM's semantics (engine/sampling/sampler.h); ranges are
  // checked here, logit_bias ids against the vocabulary by the scheduler.
  float presence_penalty = 0.0f;    // [-2, 2]
  float frequency_penalty = 0.0f;   // [-2, 2]
  float repetition_penalty = 1.0f;  // > 0
  float min_p = 0.0f;               // [0, 1]
  // OpenAI's {"token id": bias} object, in the body's key order; bias in [-100, 100].
  std::vector<std::pair<int32_t, float>> logit_bias;
  // Completions: the returned text starts with the prompt's text.
  bool echo = false;
  // response_format {"type": "json_object"}: the output is constrained to a JSON object
  // (engine/sampling/json_constraint.h).
  bool json_object = false;
  // response_format {"type": "json_schema", "json_schema": {"schema": {...}, "strict":
  // bool}}: the schema as sent (null otherwise); the output is constrained to documents
  // that validate against it (engine/sampling/json_schema_constraint.h).
  nlohmann::ordered_json json_schema;
  bool json_schema_strict = false;
  // vLLM's `priority` (both endpoints): lower is served first under
  // --scheduling-policy priority; must be 0 otherwise (the scheduler refuses it).
  int priority = 0;
};

absl::StatusOr<OpenAiRequest> ParseCompletionRequest(absl::string_view body);
absl::StatusOr<OpenAiRequest> ParseChatRequest(absl::string_view body);

// POST /tokenize (vLLM): {"prompt": "..."} or {"messages": [...]}.
struct TokenizeRequest {
  std::string model;
  std::optional<std::string> prompt;
  nlohmann::ordered_json messages;  // null unless given
  nlohmann::ordered_json tools;     // with messages: as OpenAiRequest::tools
  bool add_special_tokens = true;   // for prompt; chat default false
  bool add_generation_prompt = true;
  bool return_token_strs = false;
};
absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(absl::string_view body);

// POST /detokenize (vLLM): {"tokens": [ids]}.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};
absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(absl::string_view body);

}  // namespace moe::server::http
