// JSON bodies of OpenAI responses: whole completions and chat completions, streaming
// chunks, usage, and the logprobs objects of both APIs. Choices are accumulated from
// scheduler events by ChoiceResult.
//
// Thread safety: pure functions; the tokenizer is only read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampling/sampler.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/request_handle.h"
#include "server/http/openai_request.h"
#include "server/http/tool_call_parser.h"

namespace moe::server::http {

using Json = nlohmann::ordered_json;

// Everything one choice produced, for non-streaming responses.
struct ChoiceResult {
  int index = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  std::vector<engine::SampledToken> logprobs;
  bool finished = false;
  scheduler::FinishReason finish_reason = scheduler::FinishReason::kStop;
  std::string stop_reason;
  int prompt_tokens = 0;
  int completion_tokens = 0;

  void Add(const scheduler::StreamEvent& tokens_event);
};

// Identity fields shared by every body of one response.
struct ResponseMeta {
  std::string id;  // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;
  std::string model;
};

// "stop" | "length" | "abort".
std::string FinishReasonString(scheduler::FinishReason r);
// A choice's finish_reason: "tool_calls" when it made calls and ended by eos / a stop
// rule (not by length), else FinishReasonString.
std::string ChatFinishReason(scheduler::FinishReason r, bool made_tool_calls);

// {"id", "type": "function", "function": {"name", "arguments"}}.
Json ToolCallJson(const ToolCall& call);
// A streamed delta carrying one complete call: {"tool_calls": [{"index", ...}]}.
Json ToolCallDeltaJson(const ToolCall& call, int index);
// vLLM's stop_reason: the stop string, a stop token id (an integer), or null.
Json StopReasonJson(const OpenAiRequest& req, scheduler::FinishReason r,
                    const std::string& stop_reason);
Json UsageJson(int prompt_tokens, int completion_tokens);

// The text a token id shows as in logprobs (special tokens included).
std::string TokenText(const engine::Tokenizer& tok, int32_t id);

// Completions logprobs: {tokens, token_logprobs, top_logprobs, text_offset}; offsets start
// at `*text_offset`, which is advanced past these tokens.
Json CompletionLogprobsJson(const engine::Tokenizer& tok,
                            const std::vector<engine::SampledToken>& lps, int top_n,
                            size_t* text_offset);
// Chat logprobs content entries: [{token, logprob, bytes, top_logprobs}].
Json ChatLogprobsContent(const engine::Tokenizer& tok,
                         const std::vector<engine::SampledToken>& lps, int top_n);

// The text `echo` puts before prompt `prompt_index`'s completion: the prompt as sent
// when it was text, else its token ids decoded (special tokens kept).
std::string EchoText(const OpenAiRequest& req, const engine::Tokenizer& tok,
                     const std::vector<std::vector<int32_t>>& prompts, size_t prompt_index);

// Whole (non-streaming) responses. With `echo`, completion texts start with EchoText. `prompts` holds each prompt's ids (choice i used
// prompt i / n).
Json CompletionResponse(const ResponseMeta& meta, const OpenAiRequest& req,
                        const engine::Tokenizer& tok,
                        const std::vector<std::vector<int32_t>>& prompts,
                        const std::vector<ChoiceResult>& choices);
// Chat: with req.parse_tool_calls each choice's text is parsed (tool_call_parser.h); a
// choice with calls gets message.tool_calls, content null when nothing else was said, and
// ChatFinishReason.
Json ChatResponse(const ResponseMeta& meta, const OpenAiRequest& req,
                  const engine::Tokenizer& tok, const std::vector<int32_t>& prompt,
                  const std::vector<ChoiceResult>& choices);

// Streaming chunks: one choice each, or the final usage chunk (empty choices).
// `choice` is the choice object ({index, text|delta, logprobs, finish_reason, ...}).
Json CompletionChunk(const ResponseMeta& meta, const OpenAiRequest& req, Json choice);
Json ChatChunk(const ResponseMeta& meta, const OpenAiRequest& req, Json choice);
Json UsageChunk(const ResponseMeta& meta, ApiKind kind, int prompt_tokens,
                int completion_tokens);

// Serialises for the wire (invalid UTF-8 replaced, never throws).
std::string Dump(const Json& j);

}  // namespace moe::server::http
