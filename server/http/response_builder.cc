#include "server/http/response_builder.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/numbers.h"

namespace moe::server::http {
namespace {

// JSON has no -inf: report impossible tokens as -9999, as vLLM does.
double FiniteLogprob(float lp) { return std::isfinite(lp) ? lp : -9999.0; }

Json Bytes(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

Json IdsJson(const std::vector<int32_t>& ids) {
  Json a = Json::array();
  for (int32_t id : ids) a.push_back(id);
  return a;
}

int PromptTokens(const std::vector<std::vector<int32_t>>& prompts) {
  int n = 0;
  for (const auto& p : prompts) n += static_cast<int>(p.size());
  return n;
}

int CompletionTokens(const std::vector<ChoiceResult>& choices) {
  int n = 0;
  for (const auto& c : choices) n += c.completion_tokens;
  return n;
}

}  // namespace

void ChoiceResult::Add(const scheduler::StreamEvent& ev) {
  text += ev.text;
  token_ids.insert(token_ids.end(), ev.token_ids.begin(), ev.token_ids.end());
  logprobs.insert(logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
}

std::string FinishReasonString(scheduler::FinishReason r) {
  return scheduler::FinishReasonName(r);
}

std::string ChatFinishReason(scheduler::FinishReason r, bool made_tool_calls) {
  if (made_tool_calls && r == scheduler::FinishReason::kStop) return "tool_calls";
  return FinishReasonString(r);
}

Json ToolCallJson(const ToolCall& call) {
  Json fn;
  fn["name"] = call.name;
  fn["arguments"] = call.arguments;
  Json out;
  out["id"] = call.id;
  out["type"] = "function";
  out["function"] = std::move(fn);
  return out;
}

Json ToolCallDeltaJson(const ToolCall& call, int index) {
  Json c;
  c["index"] = index;
  const Json body = ToolCallJson(call);
  for (auto it = body.begin(); it != body.end(); ++it) c[it.key()] = it.value();
  Json delta;
  delta["tool_calls"] = Json::array({std::move(c)});
  return delta;
}

Json StopReasonJson(const OpenAiRequest& req, scheduler::FinishReason r,
                    const std::string& stop_reason) {
  if (r != scheduler::FinishReason::kStop || stop_reason.empty()) return nullptr;
  if (std::find(req.stop.begin(), req.stop.end(), stop_reason) != req.stop.end()) {
    return stop_reason;
  }
  int32_t id = 0;
  if (absl::SimpleAtoi(stop_reason, &id) &&
      std::find(req.stop_token_ids.begin(), req.stop_token_ids.end(), id) !=
          req.stop_token_ids.end()) {
    return id;
  }
  return nullptr;  // end of sequence
}

Json UsageJson(int prompt_tokens, int completion_tokens) {
  Json u;
  u["prompt_tokens"] = prompt_tokens;
  u["total_tokens"] = prompt_tokens + completion_tokens;
  u["completion_tokens"] = completion_tokens;
  return u;
}

std::string TokenText(const engine::Tokenizer& tok, int32_t id) {
  const int32_t one[1] = {id};
  absl::StatusOr<std::string> s = tok.Decode(absl::MakeConstSpan(one, 1), false);
  return s.ok() ? *s : tok.IdToToken(id);
}

Json CompletionLogprobsJson(const engine::Tokenizer& tok,
                            const std::vector<engine::SampledToken>& lps, int top_n,
                            size_t* text_offset) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(),
       offsets = Json::array();
  for (const engine::SampledToken& st : lps) {
    const std::string text = TokenText(tok, st.token);
    tokens.push_back(text);
    token_logprobs.push_back(FiniteLogprob(st.logprob));
    // The top alternatives plus the sampled token, as vLLM reports them.
    Json alts = Json::object();
    for (int k = 0; k < top_n && k < static_cast<int>(st.top_logprobs.size()); ++k) {
      alts[TokenText(tok, st.top_logprobs[k].first)] = FiniteLogprob(st.top_logprobs[k].second);
    }
    if (top_n > 0) alts[text] = FiniteLogprob(st.logprob);
    top.push_back(top_n > 0 ? alts : Json(nullptr));
    offsets.push_back(*text_offset);
    *text_offset += text.size();
  }
  Json out;
  out["text_offset"] = std::move(offsets);
  out["token_logprobs"] = std::move(token_logprobs);
  out["tokens"] = std::move(tokens);
  out["top_logprobs"] = std::move(top);
  return out;
}

Json ChatLogprobsContent(const engine::Tokenizer& tok,
                         const std::vector<engine::SampledToken>& lps, int top_n) {
  Json content = Json::array();
  for (const engine::SampledToken& st : lps) {
    const std::string text = TokenText(tok, st.token);
    Json e;
    e["token"] = text;
    e["logprob"] = FiniteLogprob(st.logprob);
    e["bytes"] = Bytes(text);
    Json top = Json::array();
    for (int k = 0; k < top_n && k < static_cast<int>(st.top_logprobs.size()); ++k) {
      const std::string alt = TokenText(tok, st.top_logprobs[k].first);
      Json a;
      a["token"] = alt;
      a["logprob"] = FiniteLogprob(st.top_logprobs[k].second);
      a["bytes"] = Bytes(alt);
      top.push_back(std::move(a));
    }
    e["top_logprobs"] = std::move(top);
    content.push_back(std::move(e));
  }
  return content;
}

std::string EchoText(const OpenAiRequest& req, const engine::Tokenizer& tok,
                     const std::vector<std::vector<int32_t>>& prompts, size_t prompt_index) {
  if (prompt_index < req.prompt_texts.size()) return req.prompt_texts[prompt_index];
  if (prompt_index >= prompts.size()) return "";
  absl::StatusOr<std::string> s = tok.Decode(prompts[prompt_index], false);
  return s.ok() ? *s : "";
}

Json CompletionResponse(const ResponseMeta& meta, const OpenAiRequest& req,
                        const engine::Tokenizer& tok,
                        const std::vector<std::vector<int32_t>>& prompts,
                        const std::vector<ChoiceResult>& choices) {
  Json out;
  out["id"] = meta.id;
  out["object"] = "text_completion";
  out["created"] = meta.created;
  out["model"] = meta.model;
  Json arr = Json::array();
  for (const ChoiceResult& c : choices) {
    Json ch;
    ch["index"] = c.index;
    ch["text"] = req.echo ? EchoText(req, tok, prompts, c.index / req.n) + c.text : c.text;
    if (req.logprobs) {
      size_t offset = 0;
      ch["logprobs"] = CompletionLogprobsJson(tok, c.logprobs, req.top_logprobs, &offset);
    } else {
      ch["logprobs"] = nullptr;
    }
    ch["finish_reason"] = FinishReasonString(c.finish_reason);
    ch["stop_reason"] = StopReasonJson(req, c.finish_reason, c.stop_reason);
    if (req.return_token_ids) {
      ch["prompt_token_ids"] = IdsJson(prompts[c.index / req.n]);
      ch["token_ids"] = IdsJson(c.token_ids);
    }
    arr.push_back(std::move(ch));
  }
  out["choices"] = std::move(arr);
  out["usage"] = UsageJson(PromptTokens(prompts), CompletionTokens(choices));
  return out;
}

Json ChatResponse(const ResponseMeta& meta, const OpenAiRequest& req,
                  const engine::Tokenizer& tok, const std::vector<int32_t>& prompt,
                  const std::vector<ChoiceResult>& choices) {
  Json out;
  out["id"] = meta.id;
  out["object"] = "chat.completion";
  out["created"] = meta.created;
  out["model"] = meta.model;
  Json arr = Json::array();
  for (const ChoiceResult& c : choices) {
    Json ch;
    ch["index"] = c.index;
    Json msg;
    msg["role"] = "assistant";
    msg["content"] = c.text;
    bool made_calls = false;
    if (req.parse_tool_calls) {
      ToolCallIdGenerator ids;
      ParsedToolCalls parsed = ParseToolCalls(c.text, &ids);
      made_calls = !parsed.calls.empty();
      if (made_calls) {
        msg["content"] = parsed.content.has_value() ? Json(*parsed.content) : Json(nullptr);
        Json calls = Json::array();
        for (const ToolCall& call : parsed.calls) calls.push_back(ToolCallJson(call));
        msg["tool_calls"] = std::move(calls);
      }
    }
    ch["message"] = std::move(msg);
    if (req.logprobs) {
      Json lp;
      lp["content"] = ChatLogprobsContent(tok, c.logprobs, req.top_logprobs);
      ch["logprobs"] = std::move(lp);
    } else {
      ch["logprobs"] = nullptr;
    }
    ch["finish_reason"] = ChatFinishReason(c.finish_reason, made_calls);
    ch["stop_reason"] = StopReasonJson(req, c.finish_reason, c.stop_reason);
    if (req.return_token_ids) ch["token_ids"] = IdsJson(c.token_ids);
    arr.push_back(std::move(ch));
  }
  out["choices"] = std::move(arr);
  out["usage"] = UsageJson(static_cast<int>(prompt.size()), CompletionTokens(choices));
  if (req.return_token_ids) out["prompt_token_ids"] = IdsJson(prompt);
  return out;
}

namespace {
Json ChunkBase(const ResponseMeta& meta, const char* object) {
  Json out;
  out["id"] = meta.id;
  out["object"] = object;
  out["created"] = meta.created;
  out["model"] = meta.model;
  return out;
}
}  // namespace

Json CompletionChunk(const ResponseMeta& meta, const OpenAiRequest& req, Json choice) {
  Json out = ChunkBase(meta, "text_completion");
  out["choices"] = Json::array({std::move(choice)});
  if (req.include_usage) out["usage"] = nullptr;
  return out;
}

Json ChatChunk(const ResponseMeta& meta, const OpenAiRequest& req, Json choice) {
  Json out = ChunkBase(meta, "chat.completion.chunk");
  out["choices"] = Json::array({std::move(choice)});
  if (req.include_usage) out["usage"] = nullptr;
  return out;
}

Json UsageChunk(const ResponseMeta& meta, ApiKind kind, int prompt_tokens,
                int completion_tokens) {
  Json out = ChunkBase(meta, kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion");
  out["choices"] = Json::array();
  out["usage"] = UsageJson(prompt_tokens, completion_tokens);
  return out;
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace moe::server::http
