#include "server/http/handlers.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/http/connection_watch.h"
#include "server/http/generation.h"
#include "server/http/response_builder.h"
#include "server/http/sse_stream.h"

namespace moe::server::http {
namespace {

// The requested model must be the served one (an absent model means it).
bool CheckModel(const ServingState& s, const std::string& model, httplib::Response& res) {
  if (model.empty() || model == s.model_name) return true;
  ApiError e = MakeApiError(404, "invalid_request_error",
                            absl::StrCat("model: the model `", model,
                                         "` does not exist; this server serves `",
                                         s.model_name, "`"),
                            "model");
  e.code = "model_not_found";
  SendError(res, e);
  return false;
}

int64_t UnixNow() { return absl::ToUnixSeconds(absl::Now()); }

// How often a non-streaming request checks that its client is still connected.
constexpr absl::Duration kDisconnectPoll = absl::Milliseconds(100);

// The chat template's extra variables: the request's chat_template_kwargs plus `tools`
// (rendered even with tool_choice "none", as vLLM does).
Json TemplateKwargs(const Json& kwargs, const Json& tools) {
  if (tools.is_null()) return kwargs;
  Json out = kwargs.is_object() ? kwargs : Json::object();
  out["tools"] = tools;
  return out;
}

}  // namespace

void SendJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void SendError(httplib::Response& res, const ApiError& e) {
  SendJson(res, e.http_status, ApiErrorJson(e));
}

void HandleGenerate(const ServingState& s, ApiKind kind, const httplib::Request& http_req,
                    httplib::Response& res) {
  absl::StatusOr<OpenAiRequest> parsed = kind == ApiKind::kChat
                                             ? ParseChatRequest(http_req.body)
                                             : ParseCompletionRequest(http_req.body);
  if (!parsed.ok()) return SendError(res, ApiErrorFromStatus(parsed.status()));
  OpenAiRequest req = *std::move(parsed);
  if (!CheckModel(s, req.model, res)) return;

  // A forced call (tool_choice "required" or a named function) is parsed without the
  // flag, as vLLM does for named functions: the constraint guarantees the format.
  if (kind == ApiKind::kChat && !req.tools.is_null() && req.forced_tool_call()) {
    req.parse_tool_calls = true;
  }
  if (kind == ApiKind::kChat && !req.tools.is_null() && req.tool_choice == "auto") {
    if (!s.enable_auto_tool_choice) {
      return SendError(res, MakeApiError(400, "invalid_request_error",
                                         "tools: \"auto\" tool choice requires "
                                         "--enable-auto-tool-choice and --tool-call-parser to "
                                         "be set",
                                         "tools"));
    }
    req.parse_tool_calls = true;
  }

  std::vector<std::vector<int32_t>> prompts;
  if (kind == ApiKind::kChat) {
    absl::StatusOr<std::vector<int32_t>> ids = s.prompts->ChatPrompt(
        req.messages, req.add_generation_prompt,
        TemplateKwargs(req.chat_template_kwargs, req.tools), req.continue_final_message);
    if (!ids.ok()) return SendError(res, ApiErrorFromStatus(ids.status()));
    prompts.push_back(*std::move(ids));
  } else {
    absl::StatusOr<std::vector<std::vector<int32_t>>> p = s.prompts->CompletionPrompts(req);
    if (!p.ok()) return SendError(res, ApiErrorFromStatus(p.status()));
    prompts = *std::move(p);
  }

  // A prompt that fills the context leaves no room for even one token: name the prompt,
  // not max_tokens (which the client may not even have set).
  const int context = s.scheduler->max_model_len();
  for (const auto& p : prompts) {
    if (static_cast<int>(p.size()) >= context) {
      const std::string field = kind == ApiKind::kChat ? "messages" : "prompt";
      return SendError(res, MakeApiError(400, "invalid_request_error",
                                         absl::StrCat(field, ": the prompt is ", p.size(),
                                                      " tokens; the model's context is ",
                                                      context,
                                                      " tokens, leaving no room for a "
                                                      "completion: shorten the prompt"),
                                         field));
    }
  }
  if (s.max_prompt_tokens > 0) {
    for (const auto& p : prompts) {
      if (static_cast<int>(p.size()) > s.max_prompt_tokens) {
        // 413, as for an oversized body: the request is too large, not malformed.
        const std::string field = kind == ApiKind::kChat ? "messages" : "prompt";
        return SendError(res, MakeApiError(413, "invalid_request_error",
                                           absl::StrCat(field, ": the prompt (", p.size(),
                                                        " tokens) exceeds the server's "
                                                        "max_prompt_tokens ",
                                                        s.max_prompt_tokens),
                                           field));
      }
    }
  }

  ResponseMeta meta;
  meta.id = absl::StrFormat("%s-%016x", kind == ApiKind::kChat ? "chatcmpl" : "cmpl",
                            RandomU64());
  meta.created = UnixNow();
  meta.model = s.model_name;

  // Constrained output (JSON mode, forced tool calls) ends on the model's stop ids (the
  // scheduler's), else the tokenizer's eos.
  std::vector<int32_t> eos_ids(s.config->eos_token_ids.begin(), s.config->eos_token_ids.end());
  if (eos_ids.empty() && s.tokenizer->eos_id().has_value()) eos_ids.push_back(*s.tokenizer->eos_id());
  absl::StatusOr<std::shared_ptr<const engine::LogitConstraintFactory>> constraint =
      req.forced_tool_call()
          ? ToolChoiceConstraint(req, s.token_tries.get(), std::move(eos_ids))
          : ResponseFormatConstraint(req, s.token_tries.get(), std::move(eos_ids));
  if (!constraint.ok()) return SendError(res, ApiErrorFromStatus(constraint.status()));
  absl::StatusOr<std::unique_ptr<Generation>> gen = Generation::Submit(
      s.scheduler, req, prompts, meta.id, s.max_stream_buffer_tokens, *std::move(constraint));
  if (!gen.ok()) return SendError(res, ApiErrorFromStatus(gen.status()));

  if (req.stream) {
    return StreamResponse(res, *std::move(gen), std::move(req), std::move(meta),
                          std::move(prompts), s.tokenizer);
  }

  std::vector<ChoiceResult> choices((*gen)->num_choices());
  for (size_t i = 0; i < choices.size(); ++i) choices[i].index = static_cast<int>(i);
  int index = 0;
  scheduler::StreamEvent ev;
  // A client that hangs up stops its choices (as vLLM aborts them), not only streams.
  const ConnectionWatch watch(http_req);
  absl::Time next_check = absl::Now() + kDisconnectPoll;
  while (!(*gen)->all_finished()) {
    if (absl::Now() >= next_check) {
      next_check = absl::Now() + kDisconnectPoll;
      if (watch.ClientGone()) {
        (*gen)->CancelAll();  // ~Generation collects the aborts for the metrics
        return SendError(res, MakeApiError(499, "invalid_request_error",
                                           "the client closed the connection"));
      }
    }
    if (!(*gen)->Next(&index, &ev, kDisconnectPoll)) continue;
    ChoiceResult& c = choices[index];
    switch (ev.kind) {
      case scheduler::StreamEvent::Kind::kTokens:
        c.Add(ev);
        break;
      case scheduler::StreamEvent::Kind::kComplete:
        c.finished = true;
        c.finish_reason = ev.finish_reason;
        c.stop_reason = ev.stop_reason;
        c.prompt_tokens = ev.prompt_tokens;
        c.completion_tokens = ev.completion_tokens;
        break;
      case scheduler::StreamEvent::Kind::kError:
        (*gen)->CancelAll();
        return SendError(res, ApiErrorFromStatus(ev.error));
    }
  }
  const Json body = kind == ApiKind::kChat
                        ? ChatResponse(meta, req, *s.tokenizer, prompts[0], choices)
                        : CompletionResponse(meta, req, *s.tokenizer, prompts, choices);
  SendJson(res, 200, Dump(body));
}

void HandleTokenize(const ServingState& s, const httplib::Request& http_req,
                    httplib::Response& res) {
  absl::StatusOr<TokenizeRequest> req = ParseTokenizeRequest(http_req.body);
  if (!req.ok()) return SendError(res, ApiErrorFromStatus(req.status()));
  if (!CheckModel(s, req->model, res)) return;
  absl::StatusOr<std::vector<int32_t>> ids;
  if (req->prompt.has_value()) {
    ids = s.tokenizer->Encode(*req->prompt, req->add_special_tokens);
    if (!ids.ok()) {
      ids = absl::InvalidArgumentError(absl::StrCat("prompt: ", ids.status().message()));
    }
  } else {
    absl::StatusOr<std::string> text =
        s.prompts->RenderChat(req->messages, req->add_generation_prompt,
                              TemplateKwargs(nullptr, req->tools));
    if (!text.ok()) return SendError(res, ApiErrorFromStatus(text.status()));
    ids = s.tokenizer->Encode(*text, req->add_special_tokens);
  }
  if (!ids.ok()) return SendError(res, ApiErrorFromStatus(ids.status()));
  Json out;
  out["count"] = ids->size();
  out["max_model_len"] = s.scheduler->max_model_len();
  out["tokens"] = *ids;
  if (req->return_token_strs) {
    Json strs = Json::array();
    for (int32_t id : *ids) strs.push_back(s.tokenizer->IdToToken(id));
    out["token_strs"] = std::move(strs);
  }
  SendJson(res, 200, Dump(out));
}

void HandleDetokenize(const ServingState& s, const httplib::Request& http_req,
                      httplib::Response& res) {
  absl::StatusOr<DetokenizeRequest> req = ParseDetokenizeRequest(http_req.body);
  if (!req.ok()) return SendError(res, ApiErrorFromStatus(req.status()));
  if (!CheckModel(s, req->model, res)) return;
  absl::StatusOr<std::string> text = s.tokenizer->Decode(req->tokens, false);
  if (!text.ok()) {
    return SendError(res, ApiErrorFromStatus(absl::InvalidArgumentError(
                              absl::StrCat("tokens: ", text.status().message()))));
  }
  Json out;
  out["prompt"] = *text;
  SendJson(res, 200, Dump(out));
}

namespace {
Json ModelJson(const ServingState& s) {
  Json m;
  m["id"] = s.model_name;
  m["object"] = "model";
  m["created"] = UnixNow();
  m["owned_by"] = "moe-serve";
  m["root"] = s.model_name;
  m["parent"] = nullptr;
  m["max_model_len"] = s.scheduler->max_model_len();
  return m;
}
}  // namespace

void HandleModels(const ServingState& s, httplib::Response& res) {
  Json out;
  out["object"] = "list";
  out["data"] = Json::array({ModelJson(s)});
  SendJson(res, 200, Dump(out));
}

void HandleModel(const ServingState& s, const std::string& id, httplib::Response& res) {
  if (id != s.model_name) {
    CheckModel(s, id, res);  // sends the 404
    return;
  }
  SendJson(res, 200, Dump(ModelJson(s)));
}

}  // namespace moe::server::http
