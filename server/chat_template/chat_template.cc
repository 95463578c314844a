#include "server/chat_template/chat_template.h"

#include <utility>

#include "server/chat_template/parser.h"

namespace moe::server {

using chat_template::Value;
using chat_template::ValueDict;
using chat_template::ValueList;

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(absl::string_view source,
                                                 chat_template::RenderLimits limits) {
  auto body = chat_template::ParseTemplate(source);
  if (!body.ok()) return body.status();
  return ChatTemplate(std::make_shared<const chat_template::StmtList>(std::move(*body)), limits);
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::json& messages,
                                                 bool add_generation_prompt,
                                                 const nlohmann::json& extra_context) const {
  return RenderValues(Value::FromJson(messages), add_generation_prompt,
                      Value::FromJson(extra_context));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                                 bool add_generation_prompt,
                                                 const nlohmann::ordered_json& extra_context) const {
  return RenderValues(Value::FromJson(messages), add_generation_prompt,
                      Value::FromJson(extra_context));
}

namespace {

// transformers copies reasoning found under any of its names to "thinking"
// (first) and "reasoning_content" (last).
Value AliasReasoning(const Value& message) {
  static const char* const kFields[] = {"reasoning_content", "thinking", "reasoning"};
  const Value* reasoning = nullptr;
  for (const char* f : kFields) {
    const Value* v = message.Find(f);
    if (v != nullptr && !v->is_none()) {
      reasoning = v;
      break;
    }
  }
  if (reasoning == nullptr) return message;
  ValueDict out = {{"thinking", *reasoning}};
  for (const auto& kv : message.dict()) {
    if (kv.first == "thinking" || kv.first == "reasoning_content") continue;
    out.push_back(kv);
  }
  // {"thinking": r, **message, "reasoning_content": r}: an existing
  // "thinking" key keeps its first position but takes the message's value.
  if (const Value* t = message.Find("thinking")) out[0].second = *t;
  out.emplace_back("reasoning_content", *reasoning);
  return Value::Dict(std::move(out));
}

}  // namespace

absl::StatusOr<std::string> ChatTemplate::RenderValues(Value messages, bool add_generation_prompt,
                                                       Value extra) const {
  if (!messages.is_list()) {
    return absl::InvalidArgumentError("chat template: messages must be an array");
  }
  ValueList aliased;
  for (const Value& m : messages.list()) {
    if (!m.is_dict()) {
      return absl::InvalidArgumentError("chat template: every message must be an object");
    }
    aliased.push_back(AliasReasoning(m));
  }
  if (!extra.is_none() && !extra.is_dict()) {
    return absl::InvalidArgumentError("chat template: extra_context must be an object");
  }
  ValueDict globals = {
      {"messages", Value::List(std::move(aliased))},
      {"tools", Value::None()},
      {"documents", Value::None()},
      {"add_generation_prompt", Value::Bool(add_generation_prompt)},
  };
  if (extra.is_dict()) {
    for (const auto& [k, v] : extra.dict()) {
      bool replaced = false;
      for (auto& g : globals) {
        if (g.first == k) {
          g.second = v;
          replaced = true;
        }
      }
      if (!replaced) globals.emplace_back(k, v);
    }
  }
  chat_template::Evaluator evaluator(limits_);
  return evaluator.Render(*body_, std::move(globals));
}

}  // namespace moe::server
