// End-to-end tool calling on /v1/chat/completions (Hermes format, as vLLM's
// --enable-auto-tool-choice --tool-call-parser hermes). The tiny model cannot be steered
// into writing a tool-call block, so the scripted env replaces its text with a fixed
// script, split at awkward points (inside "<tool_call>" and "</tool_call>"): the
// scheduler, stop-string matching, the gateway's parser, response and SSE writers all
// run as in production on that text. Forced calls (tool_choice "required" or a named
// function) run the real tiny model under the tool-call constraint instead.
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "tests/http/http_test_client.h"
#include "tests/http/test_env.h"

namespace moe::testing {
namespace {

using Json = nlohmann::ordered_json;

// What the "model" writes: text, a call split inside both tags, a second call, then the
// stop string the requests name.
const std::vector<std::string>& Script() {
  static const std::vector<std::string> s = {
      "Let me check",
      " the weather.\n<tool",
      "_call>\n{\"name\": \"get_weather\", ",
      "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
      "\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_",
      "call>",
      "END",
  };
  return s;
}
constexpr int kScriptTokensToStop = 7;  // the stop string arrives with the 7th token

HttpTestEnv& ScriptedEnv() {
  static std::unique_ptr<HttpTestEnv> env = [] {
    HttpTestEnvOptions o;
    o.chat_template_file = "tests/data/chat_templates/qwen3.jinja";
    o.enable_auto_tool_choice = true;
    o.scripted_text = Script();
    auto e = StartHttpTestEnv(o);
    if (!e.ok()) FAIL(e.status().ToString());
    return *std::move(e);
  }();
  return *env;
}

// No --enable-auto-tool-choice, the real model's text, the Qwen2.5 template.
HttpTestEnv& PlainEnv() {
  static std::unique_ptr<HttpTestEnv> env = [] {
    HttpTestEnvOptions o;
    o.chat_template_file = "tests/data/chat_templates/qwen2_5_instruct.jinja";
    auto e = StartHttpTestEnv(o);
    if (!e.ok()) FAIL(e.status().ToString());
    return *std::move(e);
  }();
  return *env;
}

const Json& Tools() {
  static const Json t = Json::parse(R"([
    {"type": "function", "function": {"name": "get_weather",
      "description": "Current weather of a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
  ])");
  return t;
}

Json ChatBody(Json extra = Json::object()) {
  Json b = {{"messages", Json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}})},
            {"tools", Tools()},
            {"max_tokens", 16},
            {"temperature", 0},
            {"ignore_eos", true},
            {"stop", Json::array({"END"})}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

void CheckCalls(const Json& calls) {
  REQUIRE(calls.is_array());
  REQUIRE(calls.size() == 2);
  CHECK(calls[0]["type"] == "function");
  CHECK(calls[0]["function"]["name"] == "get_weather");
  CHECK(Json::parse(calls[0]["function"]["arguments"].get<std::string>()) ==
        Json{{"city", "Paris"}});
  CHECK(calls[1]["function"]["name"] == "get_time");
  CHECK(calls[1]["function"]["arguments"] == "{}");
  for (const Json& c : calls) {
    const std::string id = c["id"].get<std::string>();
    CHECK(id.size() == 29);
    CHECK(absl::StartsWith(id, "call_"));
  }
  CHECK(calls[0]["id"] != calls[1]["id"]);
}

TEST_CASE("non-streamed: tool_calls parsed from the completion, finish_reason tool_calls") {
  const int port = ScriptedEnv().gateway->port();
  Reply r = Post(port, "/v1/chat/completions", ChatBody().dump());
  REQUIRE(r.status == 200);
  const Json& choice = r.json["choices"][0];
  CHECK(choice["message"]["role"] == "assistant");
  // Content is all the text outside the blocks: the newline between the calls too.
  CHECK(choice["message"]["content"] == "Let me check the weather.\n\n");
  CheckCalls(choice["message"]["tool_calls"]);
  CHECK(choice["finish_reason"] == "tool_calls");
  CHECK(r.json["usage"]["completion_tokens"] == kScriptTokensToStop);
}

TEST_CASE("non-streamed: n=2 parses each choice, with its own ids") {
  const int port = ScriptedEnv().gateway->port();
  Reply r = Post(port, "/v1/chat/completions", ChatBody({{"n", 2}, {"seed", 3}}).dump());
  REQUIRE(r.status == 200);
  REQUIRE(r.json["choices"].size() == 2);
  std::set<std::string> ids;
  for (const Json& choice : r.json["choices"]) {
    CheckCalls(choice["message"]["tool_calls"]);
    CHECK(choice["finish_reason"] == "tool_calls");
    for (const Json& c : choice["message"]["tool_calls"]) ids.insert(c["id"].get<std::string>());
  }
  CHECK(ids.size() == 4);
}

TEST_CASE("non-streamed: a cut-off block stays content; length is not tool_calls") {
  const int port = ScriptedEnv().gateway->port();
  // Three tokens: the first block is still open and incomplete.
  Reply cut = Post(port, "/v1/chat/completions", ChatBody({{"max_tokens", 3}}).dump());
  REQUIRE(cut.status == 200);
  const Json& c = cut.json["choices"][0];
  CHECK(c["message"]["content"] ==
        "Let me check the weather.\n<tool_call>\n{\"name\": \"get_weather\", ");
  CHECK_FALSE(c["message"].contains("tool_calls"));
  CHECK(c["finish_reason"] == "length");
  // Four tokens: one complete call, but the generation ran out of tokens.
  Reply one = Post(port, "/v1/chat/completions", ChatBody({{"max_tokens", 4}}).dump());
  REQUIRE(one.status == 200);
  CHECK(one.json["choices"][0]["message"]["tool_calls"].size() == 1);
  CHECK(one.json["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("tool_choice none: tools rendered, the text is returned as it is") {
  const int port = ScriptedEnv().gateway->port();
  Reply r = Post(port, "/v1/chat/completions", ChatBody({{"tool_choice", "none"}}).dump());
  REQUIRE(r.status == 200);
  const Json& c = r.json["choices"][0];
  std::string all;
  for (int i = 0; i + 1 < kScriptTokensToStop; ++i) all += Script()[i];
  CHECK(c["message"]["content"] == all);
  CHECK_FALSE(c["message"].contains("tool_calls"));
  CHECK(c["finish_reason"] == "stop");
}

struct Streamed {
  std::string content;
  std::vector<Json> calls;  // the tool_calls entries, in order
  std::string finish_reason;
  int logprob_entries = 0;
};

Streamed Stream(int port, const Json& body, int choice_index = 0, bool parsed = true) {
  Reply r = Post(port, "/v1/chat/completions", body.dump());
  REQUIRE(r.status == 200);
  Streamed s;
  for (const Json& chunk : SseChunks(r.body)) {
    if (chunk["choices"].empty()) continue;
    const Json& ch = chunk["choices"][0];
    if (ch["index"] != choice_index) continue;
    const Json& delta = ch["delta"];
    if (delta.contains("content") && delta["content"].is_string()) {
      const std::string piece = delta["content"].get<std::string>();
      if (parsed) CHECK_FALSE(absl::StrContains(piece, "<tool"));  // no tag leaks
      s.content += piece;
    }
    if (delta.contains("tool_calls")) {
      REQUIRE(delta["tool_calls"].size() == 1);
      s.calls.push_back(delta["tool_calls"][0]);
    }
    if (ch.contains("logprobs") && ch["logprobs"].is_object()) {
      s.logprob_entries += static_cast<int>(ch["logprobs"]["content"].size());
    }
    if (!ch["finish_reason"].is_null()) s.finish_reason = ch["finish_reason"];
  }
  return s;
}

TEST_CASE("streamed: content deltas, one delta per complete call, finish_reason tool_calls") {
  const int port = ScriptedEnv().gateway->port();
  Streamed s = Stream(port, ChatBody({{"stream", true}, {"logprobs", true}}));
  CHECK(s.content == "Let me check the weather.\n\n");  // as non-streamed
  CheckCalls(Json(s.calls));
  REQUIRE(s.calls.size() == 2);
  CHECK(s.calls[0]["index"] == 0);
  CHECK(s.calls[1]["index"] == 1);
  CHECK(s.finish_reason == "tool_calls");
  // Every generated token's logprob still reaches the client.
  CHECK(s.logprob_entries == kScriptTokensToStop);

  Streamed n2 = Stream(port, ChatBody({{"stream", true}, {"n", 2}}), /*choice_index=*/1);
  CheckCalls(Json(n2.calls));
  CHECK(n2.finish_reason == "tool_calls");

  Streamed none = Stream(port, ChatBody({{"stream", true}, {"tool_choice", "none"}}), 0,
                         /*parsed=*/false);
  CHECK(none.calls.empty());
  CHECK(absl::StrContains(none.content, "<tool_call>\n{\"name\": \"get_weather\""));
  CHECK(none.finish_reason == "stop");
}

TEST_CASE("tools without --enable-auto-tool-choice: 400 as from vLLM; none still works") {
  const int port = PlainEnv().gateway->port();
  Json body = ChatBody();
  body["max_tokens"] = 2;
  Reply r = Post(port, "/v1/chat/completions", body.dump());
  CHECK(r.status == 400);
  CHECK(r.json["error"]["param"] == "tools");
  CHECK(r.json["error"]["message"] ==
        "tools: \"auto\" tool choice requires --enable-auto-tool-choice and "
        "--tool-call-parser to be set");
  body["tool_choice"] = "none";
  Reply ok = Post(port, "/v1/chat/completions", body.dump());
  CHECK(ok.status == 200);
  CHECK(ok.json["choices"][0]["message"]["content"].is_string());
  CHECK_FALSE(ok.json["choices"][0]["message"].contains("tool_calls"));
}

TEST_CASE("the gateway refuses to start with an unknown or missing tool call parser") {
  server::http::HttpGatewayOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.tool_call_parser = "mistral";
  auto unknown = server::http::HttpGateway::Start(o, nullptr);
  REQUIRE_FALSE(unknown.ok());
  CHECK(absl::StartsWith(unknown.status().message(), "tool_call_parser: "));
  CHECK(absl::StrContains(unknown.status().message(), "mistral"));
  o.tool_call_parser = "";
  o.enable_auto_tool_choice = true;
  auto missing = server::http::HttpGateway::Start(o, nullptr);
  REQUIRE_FALSE(missing.ok());
  CHECK(absl::StartsWith(missing.status().message(), "tool_call_parser: "));
  o.tool_call_parser = "hermes";
  auto ok = server::http::HttpGateway::Start(o, nullptr);
  REQUIRE(ok.ok());
  // It serves ("loading" until SetReady). Waiting for that answer matters: a Stop() at
  // once after Start() was seen to hang (the listener thread not yet listening).
  CHECK(Get((*ok)->port(), "/health").status == 503);
}

// The prompt the template renders, via /tokenize then /detokenize.
std::string Rendered(int port, const Json& tokenize_body) {
  Reply t = Post(port, "/tokenize", tokenize_body.dump());
  REQUIRE(t.status == 200);
  Reply d = Post(port, "/detokenize", Json{{"tokens", t.json["tokens"]}}.dump());
  REQUIRE(d.status == 200);
  return d.json["prompt"].get<std::string>();
}

TEST_CASE("the chat template renders tools, tool calls and tool results") {
  const Json user = {{"role", "user"}, {"content", "Weather in Paris?"}};
  const Json history = Json::array(
      {user,
       {{"role", "assistant"},
        {"content", nullptr},
        {"tool_calls",
         Json::array({{{"id", "call_1"},
                       {"type", "function"},
                       {"function",
                        {{"name", "get_weather"}, {"arguments", "{\"city\": \"Paris\"}"}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny, 21 C"}}});
  for (HttpTestEnv* env : {&ScriptedEnv(), &PlainEnv()}) {
    const int port = env->gateway->port();
    const std::string with = Rendered(port, {{"messages", Json::array({user})}, {"tools", Tools()}});
    INFO(with);
    CHECK(absl::StrContains(with, "<tools>"));
    CHECK(absl::StrContains(with, "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""));
    const std::string without = Rendered(port, {{"messages", Json::array({user})}});
    CHECK_FALSE(absl::StrContains(without, "<tools>"));

    // Arguments sent as a JSON string render as the object (both templates).
    const std::string turn = Rendered(port, {{"messages", history}, {"tools", Tools()}});
    INFO(turn);
    CHECK(absl::StrContains(
        turn, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
              "</tool_call>"));
    CHECK(absl::StrContains(turn, "<tool_response>\nsunny, 21 C\n</tool_response>"));
  }
  // And the chat route accepts that history (the scripted model answers with calls).
  Reply r = Post(ScriptedEnv().gateway->port(), "/v1/chat/completions",
                 ChatBody({{"messages", history}}).dump());
  CHECK(r.status == 200);
}

// Forced tool calls: the tiny random-weight Qwen3-MoE, the Qwen3 template, and no
// --enable-auto-tool-choice (vLLM serves named functions without it, and so do we, for
// "required" too). The model's text is noise, so a well-formed call comes only from the
// constraint. The functions' arguments are bounded by their schemas (enums, booleans,
// no additional keys), so every choice must close its object within the token budget:
// no logit_bias is needed. (No free integer: the parser re-serialises an integer past
// 64 bits, which the noise writes, as a float.)
HttpTestEnv& ForcedEnv() {
  static std::unique_ptr<HttpTestEnv> env = [] {
    HttpTestEnvOptions o;
    o.chat_template_file = "tests/data/chat_templates/qwen3.jinja";
    auto e = StartHttpTestEnv(o);
    if (!e.ok()) FAIL(e.status().ToString());
    return *std::move(e);
  }();
  return *env;
}

const Json& ForcedTools() {
  static const Json t = Json::parse(R"([
    {"type": "function", "function": {"name": "get_weather",
      "parameters": {"type": "object", "properties": {
          "city": {"enum": ["Paris", "Oslo", "Lima"]}, "days": {"enum": [1, 3, 7]}},
        "required": ["city", "days"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "set_alarm",
      "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}},
        "required": ["on"], "additionalProperties": false}}}
  ])");
  return t;
}

Json ForcedBody(const Json& tool_choice, Json extra = Json::object()) {
  Json b = {{"messages", Json::array({{{"role", "user"}, {"content", "Weather in Paris?"}}})},
            {"tools", ForcedTools()},
            {"tool_choice", tool_choice},
            {"max_tokens", 300},
            {"temperature", 1},
            {"n", 3}};
  for (auto& [k, v] : extra.items()) b[k] = v;
  return b;
}

Json Named(const std::string& name) {
  return {{"type", "function"}, {"function", {{"name", name}}}};
}

// The call's arguments validate against ForcedTools()' schema of its name.
void CheckForcedCall(const Json& call, const std::set<std::string>& names) {
  CHECK(call["type"] == "function");
  const std::string name = call["function"]["name"];
  INFO(name << " " << call["function"]["arguments"]);
  REQUIRE(names.count(name) == 1);
  const std::string text = call["function"]["arguments"];
  REQUIRE(Json::accept(text));
  const Json args = Json::parse(text);
  REQUIRE(args.is_object());
  if (name == "get_weather") {
    CHECK(args.size() == 2);
    CHECK(std::set<std::string>{"Paris", "Oslo", "Lima"}.count(args.value("city", "")) == 1);
    CHECK(std::set<int>{1, 3, 7}.count(args.value("days", 0)) == 1);
  } else {
    CHECK(args.size() == 1);
    CHECK(args["on"].is_boolean());
  }
}

TEST_CASE("named tool_choice: every stopped choice is one call of that function") {
  const int port = ForcedEnv().gateway->port();
  int stopped = 0;
  for (const std::string name : {"get_weather", "set_alarm"}) {
    for (int seed : {1, 2}) {
      Reply r = Post(port, "/v1/chat/completions",
                     ForcedBody(Named(name), {{"seed", seed}}).dump());
      REQUIRE(r.status == 200);
      REQUIRE(r.json["choices"].size() == 3);
      for (const Json& c : r.json["choices"]) {
        INFO(c.dump());
        if (c["finish_reason"] == "length") continue;
        ++stopped;
        CHECK(c["finish_reason"] == "tool_calls");
        CHECK(c["message"]["content"].is_null());
        REQUIRE(c["message"]["tool_calls"].size() == 1);
        CheckForcedCall(c["message"]["tool_calls"][0], {name});
      }
    }
  }
  // The budget is ample for these bounded arguments: (nearly) every choice ends.
  CHECK(stopped >= 10);
}

TEST_CASE("tool_choice required: one call of some tool, arguments of that tool") {
  const int port = ForcedEnv().gateway->port();
  int stopped = 0;
  for (int seed : {3, 4}) {
    Reply r = Post(port, "/v1/chat/completions", ForcedBody("required", {{"seed", seed}}).dump());
    REQUIRE(r.status == 200);
    for (const Json& c : r.json["choices"]) {
      INFO(c.dump());
      if (c["finish_reason"] == "length") continue;
      ++stopped;
      CHECK(c["finish_reason"] == "tool_calls");
      REQUIRE(c["message"]["tool_calls"].size() == 1);
      CheckForcedCall(c["message"]["tool_calls"][0], {"get_weather", "set_alarm"});
    }
  }
  CHECK(stopped >= 4);
}

TEST_CASE("named tool_choice streamed: the call arrives as one tool_calls delta") {
  const int port = ForcedEnv().gateway->port();
  Json body = ForcedBody(Named("get_weather"), {{"stream", true}, {"n", 1}, {"seed", 5}});
  Streamed s = Stream(port, body);
  INFO(s.content);
  if (s.finish_reason == "length") return;  // noise that ran out of tokens proves nothing
  CHECK(s.finish_reason == "tool_calls");
  REQUIRE(s.calls.size() == 1);
  CHECK(s.calls[0]["index"] == 0);
  CheckForcedCall(s.calls[0], {"get_weather"});
  CHECK(absl::StripAsciiWhitespace(s.content).empty());
}

TEST_CASE("forced tool_choice errors name the field at fault") {
  const int port = ForcedEnv().gateway->port();
  Reply unknown = Post(port, "/v1/chat/completions", ForcedBody(Named("get_time")).dump());
  CHECK(unknown.status == 400);
  CHECK(unknown.json["error"]["param"] == "tool_choice");

  Json tools = ForcedTools();
  tools[1]["function"]["parameters"]["properties"]["on"] = {{"type", "string"},
                                                             {"pattern", "^y"}};
  Reply bad = Post(port, "/v1/chat/completions",
                   ForcedBody("required", {{"tools", tools}}).dump());
  CHECK(bad.status == 400);
  CHECK(bad.json["error"]["param"] == "tools[1].function.parameters");
  CHECK(absl::StrContains(bad.json["error"]["message"].get<std::string>(), "pattern"));
  // Naming the other function does not compile the unsupported one.
  Reply other = Post(port, "/v1/chat/completions",
                     ForcedBody(Named("get_weather"), {{"tools", tools}, {"max_tokens", 1},
                                                       {"n", 1}}).dump());
  CHECK(other.status == 200);
}

}  // namespace
}  // namespace moe::testing
