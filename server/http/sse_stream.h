// Streams a Generation to the client as Server-Sent Events in OpenAI's framing:
// `data: {chunk}\n\n` per delta, an optional usage chunk, then `data: [DONE]\n\n`.
// Completions with `echo` send each choice's prompt text as its first chunk.
// Text arrives already held back by the scheduler's stop-string matcher, so no byte of
// a stop string is ever sent.
// With tool parsing (OpenAiRequest::parse_tool_calls) each chat choice's text goes
// through a ToolCallStreamParser: content deltas as they are certain, each complete call
// as one {"tool_calls": [...]} delta, and finish_reason "tool_calls" (ChatFinishReason).
//
// A client that disconnects makes a write fail: the generation's requests are cancelled
// at once (their KV blocks are freed within one engine step). While no event arrives an
// SSE comment is sent every few seconds, so a vanished client is noticed even then.
//
// Thread safety: the provider runs on the HTTP worker thread serving the request.
#pragma once

#include <memory>
#include <vector>

#include <httplib.h>

#include "engine/tokenizer/tokenizer.h"
#include "server/http/generation.h"
#include "server/http/openai_request.h"
#include "server/http/response_builder.h"

namespace moe::server::http {

// Makes `res` an SSE stream of `gen`. `prompts` as for CompletionResponse (one entry for
// chat). The tokenizer must outlive the response.
void StreamResponse(httplib::Response& res, std::unique_ptr<Generation> gen, OpenAiRequest req,
                    ResponseMeta meta, std::vector<std::vector<int32_t>> prompts,
                    const engine::Tokenizer* tokenizer);

}  // namespace moe::server::http
