// Request handlers of the OpenAI-compatible routes, given a loaded model. Each parses the
// body (openai_request.h), builds prompts, submits to the scheduler and answers with a
// JSON body or an SSE stream; every failure is an OpenAI-shaped error (api_error.h).
// A prompt that fills the model's context is a 400 naming the prompt ("prompt" or
// "messages"). A non-streaming request whose client hangs up is cancelled within
// ~100 ms (connection_watch.h), as a stream's is on its next write.
//
// Thread safety: handlers run on HTTP worker threads concurrently; ServingState is
// immutable while shared (the scheduler, tokenizer and metrics are thread-safe).
#pragma once

#include <memory>
#include <string>

#include <httplib.h>

#include "engine/loader/model_config.h"
#include "engine/sampling/token_trie_cache.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/scheduler.h"
#include "server/http/api_error.h"
#include "server/http/openai_request.h"
#include "server/http/prompt_builder.h"
#include "server/metrics/metrics.h"

namespace moe::server::http {

struct ServingState {
  scheduler::Scheduler* scheduler = nullptr;
  const engine::Tokenizer* tokenizer = nullptr;
  const engine::ModelConfig* config = nullptr;
  std::unique_ptr<PromptBuilder> prompts;
  std::string model_name;
  Metrics* metrics = nullptr;  // may be null
  int max_stream_buffer_tokens = 0;  // per choice; 0 = unbounded
  int max_prompt_tokens = 0;         // 0 = the context is the only limit
  // --enable-auto-tool-choice (with the hermes parser): chat requests with tools and
  // tool_choice "auto" get their completions parsed for tool calls; without it they get
  // 400, as from vLLM. Forced calls (tool_choice "required" or a named function) need no
  // flag: their output is constrained to one Hermes block, which is always parsed.
  bool enable_auto_tool_choice = false;
  // The tokenizer's token trie for the constrained modes (response_format json_object /
  // json_schema, forced tool calls), built on first use.
  std::shared_ptr<engine::sampling::TokenTrieCache> token_tries;
};

void SendJson(httplib::Response& res, int status, const std::string& body);
void SendError(httplib::Response& res, const ApiError& e);

// POST /v1/completions (kCompletion) and /v1/chat/completions (kChat).
void HandleGenerate(const ServingState& s, ApiKind kind, const httplib::Request& req,
                    httplib::Response& res);
// POST /tokenize, POST /detokenize (vLLM shapes).
void HandleTokenize(const ServingState& s, const httplib::Request& req, httplib::Response& res);
void HandleDetokenize(const ServingState& s, const httplib::Request& req,
                      httplib::Response& res);
// GET /v1/models.
void HandleModels(const ServingState& s, httplib::Response& res);
// GET /v1/models/{id}: the model object, or 404 model_not_found for another id.
void HandleModel(const ServingState& s, const std::string& id, httplib::Response& res);

}  // namespace moe::server::http
