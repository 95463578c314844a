#include "server/http/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/http/json_fields.h"

namespace moe::server::http {
namespace {

using Json = nlohmann::ordered_json;
using json_fields::FieldError;
using json_fields::Get;
using json_fields::GetBool;
using json_fields::GetFloat;
using json_fields::GetFloatIn;
using json_fields::GetInt64;
using json_fields::GetIntIn;
using json_fields::GetString;
using json_fields::ParseBody;

// A token id list: every element an integer in [0, 2^31).
bool ToIds(const Json& arr, std::vector<int32_t>* out) {
  out->clear();
  for (const Json& e : arr) {
    if (!e.is_number_integer()) return false;
    const int64_t v = e.is_number_unsigned() && e.get<uint64_t>() > INT32_MAX
                          ? -1
                          : e.get<int64_t>();
    if (v < 0 || v > INT32_MAX) return false;
    out->push_back(static_cast<int32_t>(v));
  }
  return true;
}

absl::Status ParsePrompt(const Json& body, OpenAiRequest* r) {
  const Json* p = Get(body, "prompt");
  constexpr char kShape[] =
      "must be a string, a list of strings, a list of token ids or a list of lists of token "
      "ids";
  if (p == nullptr) return FieldError("prompt", "is required");
  if (p->is_string()) {
    r->prompt_texts.push_back(p->get<std::string>());
    return absl::OkStatus();
  }
  if (!p->is_array()) return FieldError("prompt", kShape);
  if (p->empty()) return FieldError("prompt", "must not be empty");
  const Json& first = (*p)[0];
  if (first.is_string()) {
    for (const Json& e : *p) {
      if (!e.is_string()) return FieldError("prompt", kShape);
      r->prompt_texts.push_back(e.get<std::string>());
    }
  } else if (first.is_number()) {
    std::vector<int32_t> ids;
    if (!ToIds(*p, &ids)) return FieldError("prompt", "token ids must be integers >= 0");
    r->prompt_ids.push_back(std::move(ids));
  } else if (first.is_array()) {
    for (const Json& e : *p) {
      std::vector<int32_t> ids;
      if (!e.is_array()) return FieldError("prompt", kShape);
      if (e.empty()) return FieldError("prompt", "a token id list must not be empty");
      if (!ToIds(e, &ids)) return FieldError("prompt", "token ids must be integers >= 0");
      r->prompt_ids.push_back(std::move(ids));
    }
  } else {
    return FieldError("prompt", kShape);
  }
  return absl::OkStatus();
}

// An assistant message's `tool_calls` (as the API returns them): each needs
// function.name; `arguments` JSON strings become objects, as vLLM hands them to chat
// templates (some render them with `tojson`).
absl::Status ParseMessageToolCalls(const std::string& where, Json* msg) {
  auto calls = msg->find("tool_calls");
  if (calls == msg->end() || calls->is_null()) return absl::OkStatus();
  if (!calls->is_array()) return FieldError(where + ".tool_calls", "must be a list");
  for (size_t k = 0; k < calls->size(); ++k) {
    Json& call = (*calls)[k];
    const std::string at = absl::StrCat(where, ".tool_calls[", k, "]");
    auto fn = call.is_object() ? call.find("function") : call.end();
    if (fn == call.end() || !fn->is_object()) {
      return FieldError(at + ".function", "must be an object with a name");
    }
    auto name = fn->find("name");
    if (name == fn->end() || !name->is_string()) {
      return FieldError(at + ".function.name", "must be a string");
    }
    auto args = fn->find("arguments");
    if (args != fn->end() && args->is_string()) {
      const std::string& text = args->get_ref<const std::string&>();
      Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!parsed.is_discarded() && parsed.is_object()) *args = std::move(parsed);
    }
  }
  return absl::OkStatus();
}

absl::Status ParseMessages(const Json& body, Json* out) {
  const Json* m = Get(body, "messages");
  if (m == nullptr) return FieldError("messages", "is required");
  if (!m->is_array()) return FieldError("messages", "must be a list of message objects");
  if (m->empty()) return FieldError("messages", "must not be empty");
  *out = Json::array();
  for (size_t i = 0; i < m->size(); ++i) {
    const Json& msg = (*m)[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!msg.is_object()) return FieldError(where, "must be an object");
    auto role = msg.find("role");
    if (role == msg.end() || !role->is_string()) {
      return FieldError(where + ".role", "must be a string");
    }
    Json copy = msg;
    auto content = msg.find("content");
    if (content != msg.end() && content->is_array()) {
      // Text parts joined by newlines, as vLLM flattens them for text-only models.
      std::string text;
      for (size_t k = 0; k < content->size(); ++k) {
        const Json& part = (*content)[k];
        auto type = part.is_object() ? part.find("type") : part.end();
        auto t = part.is_object() ? part.find("text") : part.end();
        if (!part.is_object() || type == part.end() || *type != "text" || t == part.end() ||
            !t->is_string()) {
          return FieldError(where + ".content",
                            "only parts of the form {\"type\": \"text\", \"text\": ...} are "
                            "supported");
        }
        if (k > 0) text += "\n";
        text += t->get<std::string>();
      }
      copy["content"] = text;
    } else if (content == msg.end() || content->is_null()) {
      // vLLM renders absent content (an assistant turn that only calls tools) as "".
      copy["content"] = "";
    } else if (!content->is_string()) {
      return FieldError(where + ".content", "must be a string, a list of parts or null");
    }
    if (absl::Status s = ParseMessageToolCalls(where, &copy); !s.ok()) return s;
    out->push_back(std::move(copy));
  }
  return absl::OkStatus();
}

absl::Status ParseStop(const Json& body, OpenAiRequest* r) {
  const Json* s = Get(body, "stop");
  if (s != nullptr) {
    if (s->is_string()) {
      if (!s->get<std::string>().empty()) r->stop.push_back(s->get<std::string>());
    } else if (s->is_array()) {
      for (const Json& e : *s) {
        if (!e.is_string()) return FieldError("stop", "must be a string or a list of strings");
        if (!e.get<std::string>().empty()) r->stop.push_back(e.get<std::string>());
      }
    } else {
      return FieldError("stop", "must be a string or a list of strings");
    }
  }
  const Json* ids = Get(body, "stop_token_ids");
  if (ids != nullptr && (!ids->is_array() || !ToIds(*ids, &r->stop_token_ids))) {
    return FieldError("stop_token_ids", "must be a list of token ids (integers >= 0)");
  }
  return absl::OkStatus();
}

// OpenAI's logit_bias: {"<token id>": bias, ...}.
absl::Status ParseLogitBias(const Json& body, OpenAiRequest* r) {
  const Json* lb = Get(body, "logit_bias");
  if (lb == nullptr) return absl::OkStatus();
  if (!lb->is_object()) {
    return FieldError("logit_bias", "must be an object mapping token ids to biases");
  }
  for (auto it = lb->begin(); it != lb->end(); ++it) {
    int32_t id = -1;
    if (!absl::SimpleAtoi(it.key(), &id) || id < 0) {
      return FieldError("logit_bias", absl::StrCat("key \"", it.key(),
                                                   "\" is not a token id (an integer >= 0)"));
    }
    if (!it.value().is_number()) {
      return FieldError("logit_bias", absl::StrCat("the bias of token ", id, " must be a number"));
    }
    const double b = it.value().get<double>();
    if (!(b >= -100.0 && b <= 100.0)) {
      return FieldError("logit_bias",
                        absl::StrCat("the bias of token ", id, " must be in [-100, 100]"));
    }
    r->logit_bias.emplace_back(id, static_cast<float>(b));
  }
  return absl::OkStatus();
}

// OpenAI fields whose meaning is not implemented: accepted only where they ask for
// nothing beyond what we do.
absl::Status RejectUnsupported(const Json& body, const OpenAiRequest& r) {
  if (const Json* rf = Get(body, "response_format"); rf != nullptr) {
    const bool known = rf->is_object() && rf->contains("type") &&
                       ((*rf)["type"] == "text" || (*rf)["type"] == "json_object" ||
                        (*rf)["type"] == "json_schema");
    if (!known) {
      return FieldError("response_format",
                        "only {\"type\": \"text\"}, {\"type\": \"json_object\"} and "
                        "{\"type\": \"json_schema\"} are supported");
    }
    if ((*rf)["type"] == "json_schema") {
      // The schema's keywords are checked when it is compiled (generation.h).
      const Json* js = Get(*rf, "json_schema");
      if (js == nullptr || !js->is_object()) {
        return FieldError("response_format", "json_schema must be an object");
      }
      if (const Json* name = Get(*js, "name"); name != nullptr && !name->is_string()) {
        return FieldError("response_format", "json_schema.name must be a string");
      }
      if (const Json* strict = Get(*js, "strict"); strict != nullptr && !strict->is_boolean()) {
        return FieldError("response_format", "json_schema.strict must be a boolean");
      }
      const Json* schema = Get(*js, "schema");
      if (schema == nullptr || !schema->is_object()) {
        return FieldError("response_format", "json_schema.schema must be an object");
      }
    }
  }
  if (const Json* f = Get(body, "functions"); f != nullptr && !(f->is_array() && f->empty())) {
    return FieldError("functions",
                      "the legacy function calling API is not supported; use tools");
  }
  if (const Json* fc = Get(body, "function_call"); fc != nullptr && *fc != "none") {
    return FieldError("function_call",
                      "the legacy function calling API is not supported; use tool_choice");
  }
  if (r.kind == ApiKind::kCompletion) {
    const Json* t = Get(body, "tools");
    if (t != nullptr && !(t->is_array() && t->empty())) {
      return FieldError("tools", "tool calling is only supported on /v1/chat/completions");
    }
    if (const Json* tc = Get(body, "tool_choice"); tc != nullptr && *tc != "none") {
      return FieldError("tool_choice", "tool calling is only supported on /v1/chat/completions");
    }
  }
  std::optional<int64_t> best_of;
  if (absl::Status s = GetInt64(body, "best_of", &best_of); !s.ok()) return s;
  if (best_of.has_value() && *best_of != r.n) {
    return FieldError("best_of", "only best_of equal to n is supported");
  }
  return absl::OkStatus();
}

// Chat `tools`: [{"type": "function", "function": {name, description?, parameters?}}].
absl::Status ParseTools(const Json& body, Json* out) {
  const Json* t = Get(body, "tools");
  *out = nullptr;
  if (t == nullptr) return absl::OkStatus();
  if (!t->is_array()) return FieldError("tools", "must be a list of tool objects");
  for (size_t i = 0; i < t->size(); ++i) {
    const Json& tool = (*t)[i];
    const std::string at = absl::StrCat("tools[", i, "]");
    if (!tool.is_object()) return FieldError(at, "must be an object");
    if (const Json* type = Get(tool, "type"); type != nullptr && *type != "function") {
      return FieldError(at + ".type", "must be \"function\"");
    }
    const Json* fn = Get(tool, "function");
    if (fn == nullptr || !fn->is_object()) {
      return FieldError(at + ".function", "must be an object with a name");
    }
    const Json* name = Get(*fn, "name");
    if (name == nullptr || !name->is_string() || name->get_ref<const std::string&>().empty()) {
      return FieldError(at + ".function.name", "must be a non-empty string");
    }
    if (const Json* d = Get(*fn, "description"); d != nullptr && !d->is_string()) {
      return FieldError(at + ".function.description", "must be a string");
    }
    if (const Json* p = Get(*fn, "parameters"); p != nullptr && !p->is_object()) {
      return FieldError(at + ".function.parameters", "must be an object (a JSON Schema)");
    }
  }
  if (!t->empty()) *out = *t;
  return absl::OkStatus();
}

// tool_choice: "auto" (the default with tools), "none" (the default without),
// "required", or {"type": "function", "function": {"name": X}} naming one of the tools.
absl::Status ParseToolChoice(const Json& body, OpenAiRequest* r) {
  const Json* tc = Get(body, "tool_choice");
  if (tc == nullptr) {
    r->tool_choice = r->tools.is_null() ? "none" : "auto";
    return absl::OkStatus();
  }
  if (tc->is_object()) {
    const Json* type = Get(*tc, "type");
    const Json* fn = Get(*tc, "function");
    const Json* name = fn != nullptr && fn->is_object() ? Get(*fn, "name") : nullptr;
    if (type == nullptr || *type != "function" || name == nullptr || !name->is_string()) {
      return FieldError("tool_choice",
                        "must be \"auto\", \"none\", \"required\" or {\"type\": "
                        "\"function\", \"function\": {\"name\": ...}}");
    }
    r->tool_choice = "function";
    r->tool_choice_name = name->get<std::string>();
  } else if (tc->is_string() &&
             (*tc == "auto" || *tc == "none" || *tc == "required")) {
    r->tool_choice = tc->get<std::string>();
  } else {
    return FieldError("tool_choice",
                      "must be \"auto\", \"none\", \"required\" or {\"type\": "
                      "\"function\", \"function\": {\"name\": ...}}");
  }
  if (r->tool_choice != "none" && r->tools.is_null()) {
    return FieldError("tool_choice", absl::StrCat(r->tool_choice == "function"
                                                      ? "a named function"
                                                      : "\"" + r->tool_choice + "\"",
                                                  " requires tools"));
  }
  if (r->tool_choice == "function") {
    bool found = false;
    for (const Json& t : r->tools) found = found || t["function"]["name"] == r->tool_choice_name;
    if (!found) {
      return FieldError("tool_choice", absl::StrCat("the function `", r->tool_choice_name,
                                                    "` is not among tools"));
    }
  }
  if (r->forced_tool_call() && (r->json_object || !r->json_schema.is_null())) {
    return FieldError("tool_choice",
                      "a forced tool call cannot be combined with a JSON response_format");
  }
  return absl::OkStatus();
}

// Fields common to both endpoints.
absl::Status ParseCommon(const Json& body, OpenAiRequest* r) {
#define MOE_RETURN_IF_ERROR(expr)         \
  do {                                    \
    absl::Status _s = (expr);             \
    if (!_s.ok()) return _s;              \
  } while (0)
  MOE_RETURN_IF_ERROR(GetString(body, "model", &r->model));
  std::optional<int> max_tokens, max_completion_tokens, n, top_k;
  MOE_RETURN_IF_ERROR(GetIntIn(body, "max_tokens", 1, INT32_MAX, &max_tokens));
  if (r->kind == ApiKind::kChat) {
    MOE_RETURN_IF_ERROR(
        GetIntIn(body, "max_completion_tokens", 1, INT32_MAX, &max_completion_tokens));
  }
  r->max_tokens = max_completion_tokens.has_value() ? max_completion_tokens : max_tokens;
  MOE_RETURN_IF_ERROR(GetFloat(body, "temperature", &r->temperature));
  if (r->temperature < 0) return FieldError("temperature", "must be >= 0");
  MOE_RETURN_IF_ERROR(GetFloat(body, "top_p", &r->top_p));
  if (!(r->top_p > 0 && r->top_p <= 1)) return FieldError("top_p", "must be in (0, 1]");
  MOE_RETURN_IF_ERROR(GetIntIn(body, "top_k", -1, INT32_MAX, &top_k));
  if (top_k.has_value()) r->top_k = *top_k;
  MOE_RETURN_IF_ERROR(GetInt64(body, "seed", &r->seed));
  MOE_RETURN_IF_ERROR(GetIntIn(body, "n", 1, kMaxN, &n));
  if (n.has_value()) r->n = *n;
  MOE_RETURN_IF_ERROR(GetBool(body, "stream", &r->stream));
  if (const Json* so = Get(body, "stream_options"); so != nullptr) {
    if (!so->is_object()) return FieldError("stream_options", "must be an object");
    const Json* iu = Get(*so, "include_usage");
    if (iu != nullptr && !iu->is_boolean()) {
      return FieldError("stream_options.include_usage", "must be a boolean");
    }
    r->include_usage = iu != nullptr && iu->get<bool>();
  }
  MOE_RETURN_IF_ERROR(ParseStop(body, r));
  MOE_RETURN_IF_ERROR(GetBool(body, "ignore_eos", &r->ignore_eos));
  MOE_RETURN_IF_ERROR(GetBool(body, "return_token_ids", &r->return_token_ids));
  MOE_RETURN_IF_ERROR(GetFloatIn(body, "presence_penalty", -2.f, 2.f, &r->presence_penalty));
  MOE_RETURN_IF_ERROR(GetFloatIn(body, "frequency_penalty", -2.f, 2.f, &r->frequency_penalty));
  MOE_RETURN_IF_ERROR(GetFloat(body, "repetition_penalty", &r->repetition_penalty));
  if (!(r->repetition_penalty > 0)) return FieldError("repetition_penalty", "must be > 0");
  MOE_RETURN_IF_ERROR(GetFloatIn(body, "min_p", 0.f, 1.f, &r->min_p));
  MOE_RETURN_IF_ERROR(ParseLogitBias(body, r));
  std::optional<int> priority;
  MOE_RETURN_IF_ERROR(GetIntIn(body, "priority", INT32_MIN, INT32_MAX, &priority));
  if (priority.has_value()) r->priority = *priority;
  MOE_RETURN_IF_ERROR(RejectUnsupported(body, *r));
  if (const Json* rf = Get(body, "response_format"); rf != nullptr) {
    r->json_object = (*rf)["type"] == "json_object";  // checked by RejectUnsupported
    if ((*rf)["type"] == "json_schema") {
      const Json& js = (*rf)["json_schema"];
      r->json_schema = js["schema"];
      const Json* strict = Get(js, "strict");
      r->json_schema_strict = strict != nullptr && strict->get<bool>();
    }
  }
#undef MOE_RETURN_IF_ERROR
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OpenAiRequest> ParseCompletionRequest(absl::string_view body) {
  absl::StatusOr<Json> j = ParseBody(body);
  if (!j.ok()) return j.status();
  OpenAiRequest r;
  r.kind = ApiKind::kCompletion;
  if (absl::Status s = ParsePrompt(*j, &r); !s.ok()) return s;
  if (absl::Status s = ParseCommon(*j, &r); !s.ok()) return s;
  std::optional<int> logprobs;
  if (absl::Status s = GetIntIn(*j, "logprobs", 0, kMaxTopLogprobs, &logprobs); !s.ok()) {
    return s;
  }
  if (logprobs.has_value()) {
    r.logprobs = true;
    r.top_logprobs = *logprobs;
  }
  if (const Json* sfx = Get(*j, "suffix"); sfx != nullptr) {
    if (!sfx->is_string()) return FieldError("suffix", "must be a string");
    if (!sfx->get<std::string>().empty()) return FieldError("suffix", "is not supported");
  }
  if (absl::Status s = GetBool(*j, "echo", &r.echo); !s.ok()) return s;
  if (r.echo && r.logprobs) {
    return FieldError("echo", "echo together with logprobs (prompt logprobs) is not supported");
  }
  return r;
}

absl::StatusOr<OpenAiRequest> ParseChatRequest(absl::string_view body) {
  absl::StatusOr<Json> j = ParseBody(body);
  if (!j.ok()) return j.status();
  OpenAiRequest r;
  r.kind = ApiKind::kChat;
  if (absl::Status s = ParseMessages(*j, &r.messages); !s.ok()) return s;
  if (absl::Status s = ParseCommon(*j, &r); !s.ok()) return s;
  if (absl::Status s = ParseTools(*j, &r.tools); !s.ok()) return s;
  if (absl::Status s = ParseToolChoice(*j, &r); !s.ok()) return s;
  if (absl::Status s = GetBool(*j, "logprobs", &r.logprobs); !s.ok()) return s;
  std::optional<int> top;
  if (absl::Status s = GetIntIn(*j, "top_logprobs", 0, kMaxTopLogprobs, &top); !s.ok()) {
    return s;
  }
  if (top.has_value()) {
    if (!r.logprobs) return FieldError("top_logprobs", "requires logprobs to be true");
    r.top_logprobs = *top;
  }
  if (absl::Status s = GetBool(*j, "add_generation_prompt", &r.add_generation_prompt);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = GetBool(*j, "continue_final_message", &r.continue_final_message);
      !s.ok()) {
    return s;
  }
  if (r.continue_final_message && r.add_generation_prompt) {
    return FieldError("continue_final_message",
                      "cannot be true together with add_generation_prompt (which defaults to "
                      "true): set add_generation_prompt to false");
  }
  if (const Json* kw = Get(*j, "chat_template_kwargs"); kw != nullptr) {
    if (!kw->is_object()) return FieldError("chat_template_kwargs", "must be an object");
    r.chat_template_kwargs = *kw;
  }
  return r;
}

absl::StatusOr<TokenizeRequest> ParseTokenizeRequest(absl::string_view body) {
  absl::StatusOr<Json> j = ParseBody(body);
  if (!j.ok()) return j.status();
  TokenizeRequest r;
  if (absl::Status s = GetString(*j, "model", &r.model); !s.ok()) return s;
  if (Get(*j, "messages") != nullptr) {
    if (absl::Status s = ParseMessages(*j, &r.messages); !s.ok()) return s;
    if (absl::Status s = ParseTools(*j, &r.tools); !s.ok()) return s;
    r.add_special_tokens = false;
  } else {
    std::string prompt;
    if (Get(*j, "prompt") == nullptr) return FieldError("prompt", "is required");
    if (absl::Status s = GetString(*j, "prompt", &prompt); !s.ok()) return s;
    r.prompt = std::move(prompt);
  }
  for (auto [key, out] : {std::pair<const char*, bool*>{"add_special_tokens",
                                                        &r.add_special_tokens},
                          {"add_generation_prompt", &r.add_generation_prompt},
                          {"return_token_strs", &r.return_token_strs}}) {
    if (absl::Status s = GetBool(*j, key, out); !s.ok()) return s;
  }
  return r;
}

absl::StatusOr<DetokenizeRequest> ParseDetokenizeRequest(absl::string_view body) {
  absl::StatusOr<Json> j = ParseBody(body);
  if (!j.ok()) return j.status();
  DetokenizeRequest r;
  if (absl::Status s = GetString(*j, "model", &r.model); !s.ok()) return s;
  const Json* t = Get(*j, "tokens");
  if (t == nullptr) return FieldError("tokens", "is required");
  if (!t->is_array() || !ToIds(*t, &r.tokens)) {
    return FieldError("tokens", "must be a list of token ids (integers >= 0)");
  }
  return r;
}

}  // namespace moe::server::http
