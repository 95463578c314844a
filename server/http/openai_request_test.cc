#include "server/http/openai_request.h"

#include <catch2/catch.hpp>

#include "server/http/api_error.h"

namespace moe::server::http {
namespace {

// The HTTP error a body produces, as the gateway would send it.
ApiError CompletionError(const std::string& body) {
  auto r = ParseCompletionRequest(body);
  REQUIRE_FALSE(r.ok());
  return ApiErrorFromStatus(r.status());
}

TEST_CASE("completion prompts in all four shapes") {
  auto a = ParseCompletionRequest(R"({"prompt": "hi", "max_tokens": 3, "unknown": {"x": 1}})");
  REQUIRE(a.ok());
  CHECK(a->prompt_texts == std::vector<std::string>{"hi"});
  CHECK(a->max_tokens == 3);
  auto b = ParseCompletionRequest(R"({"prompt": ["a", "b"]})");
  REQUIRE(b.ok());
  CHECK(b->prompt_texts.size() == 2);
  auto c = ParseCompletionRequest(R"({"prompt": [1, 2, 3]})");
  REQUIRE(c.ok());
  CHECK(c->prompt_ids == std::vector<std::vector<int32_t>>{{1, 2, 3}});
  auto d = ParseCompletionRequest(R"({"prompt": [[1], [2, 3]], "n": 2, "seed": 7})");
  REQUIRE(d.ok());
  CHECK(d->prompt_ids.size() == 2);
  CHECK(d->n == 2);
  CHECK(d->seed == 7);
}

TEST_CASE("wrong types and ranges are 400s naming the field") {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({"prompt": 5})", "prompt"},
      {R"({"prompt": ["a", 1]})", "prompt"},
      {R"({"prompt": [1, -2]})", "prompt"},
      {R"({"prompt": []})", "prompt"},
      {R"({})", "prompt"},
      {R"({"prompt": "x", "max_tokens": "3"})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
      {R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens"},
      {R"({"prompt": "x", "temperature": "hot"})", "temperature"},
      {R"({"prompt": "x", "temperature": -1})", "temperature"},
      {R"({"prompt": "x", "top_p": 0})", "top_p"},
      {R"({"prompt": "x", "top_k": -2})", "top_k"},
      {R"({"prompt": "x", "n": 0})", "n"},
      {R"({"prompt": "x", "seed": "1"})", "seed"},
      {R"({"prompt": "x", "stop": 3})", "stop"},
      {R"({"prompt": "x", "stop": ["a", 3]})", "stop"},
      {R"({"prompt": "x", "stream": "yes"})", "stream"},
      {R"({"prompt": "x", "stream_options": {"include_usage": 1}})",
       "stream_options.include_usage"},
      {R"({"prompt": "x", "logprobs": true})", "logprobs"},
      {R"({"prompt": "x", "logprobs": 21})", "logprobs"},
      {R"({"prompt": "x", "ignore_eos": 1})", "ignore_eos"},
      {R"({"prompt": "x", "return_token_ids": "true"})", "return_token_ids"},
      {R"({"prompt": "x", "model": 3})", "model"},
      {R"(not json)", "body"},
      {R"([1, 2])", "body"},
  };
  for (const Case& c : cases) {
    INFO(c.body);
    const ApiError e = CompletionError(c.body);
    CHECK(e.http_status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.param == c.param);
  }
}

TEST_CASE("chat messages: content parts flattened, bad shapes named") {
  auto r = ParseChatRequest(
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
          {"type": "text", "text": "b"}]}], "logprobs": true, "top_logprobs": 2,
          "max_completion_tokens": 5, "max_tokens": 9})");
  REQUIRE(r.ok());
  CHECK(r->messages[0]["content"] == "a\nb");
  CHECK(r->logprobs);
  CHECK(r->top_logprobs == 2);
  CHECK(r->max_tokens == 5);

  auto bad = [](const char* body) {
    auto x = ParseChatRequest(body);
    REQUIRE_FALSE(x.ok());
    return ApiErrorFromStatus(x.status()).param;
  };
  CHECK(bad(R"({"messages": "hi"})") == "messages");
  CHECK(bad(R"({"messages": [{"content": "x"}]})") == "messages[0].role");
  CHECK(bad(R"({"messages": [{"role": "user", "content": 3}]})") == "messages[0].content");
  CHECK(bad(R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})") ==
        "top_logprobs");
  CHECK(bad(R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 1})") ==
        "logprobs");
}

TEST_CASE("penalties, min_p and logit_bias parse for both endpoints") {
  const std::string fields =
      R"("presence_penalty": 0.5, "frequency_penalty": -1.25, "repetition_penalty": 1.3,
         "min_p": 0.05, "logit_bias": {"7": 100, "12": -3.5})";
  auto c = ParseCompletionRequest(R"({"prompt": "x", )" + fields + "}");
  auto chat = ParseChatRequest(R"({"messages": [{"role": "user", "content": "x"}], )" +
                               fields + "}");
  for (const auto* r : {&c, &chat}) {
    REQUIRE(r->ok());
    CHECK((*r)->presence_penalty == 0.5f);
    CHECK((*r)->frequency_penalty == -1.25f);
    CHECK((*r)->repetition_penalty == Approx(1.3f));
    CHECK((*r)->min_p == Approx(0.05f));
    CHECK((*r)->logit_bias == std::vector<std::pair<int32_t, float>>{{7, 100.f}, {12, -3.5f}});
  }
  // Defaults change nothing; null counts as absent.
  auto d = ParseCompletionRequest(
      R"({"prompt": "x", "frequency_penalty": null, "logit_bias": null, "echo": null})");
  REQUIRE(d.ok());
  CHECK(d->presence_penalty == 0.f);
  CHECK(d->frequency_penalty == 0.f);
  CHECK(d->repetition_penalty == 1.f);
  CHECK(d->min_p == 0.f);
  CHECK(d->logit_bias.empty());
  CHECK_FALSE(d->echo);
}

TEST_CASE("penalty ranges and logit_bias shapes are 400s naming the field") {
  struct Case {
    const char* fields;
    const char* param;
    const char* message;  // the start of the error message
  };
  const Case cases[] = {
      {R"("frequency_penalty": 2.5)", "frequency_penalty",
       "frequency_penalty: must be in [-2, 2]"},
      {R"("frequency_penalty": "high")", "frequency_penalty", "frequency_penalty: must be a number"},
      {R"("presence_penalty": -2.01)", "presence_penalty", "presence_penalty: must be in [-2, 2]"},
      {R"("repetition_penalty": 0)", "repetition_penalty", "repetition_penalty: must be > 0"},
      {R"("repetition_penalty": -1)", "repetition_penalty", "repetition_penalty: must be > 0"},
      {R"("min_p": 1.5)", "min_p", "min_p: must be in [0, 1]"},
      {R"("min_p": -0.1)", "min_p", "min_p: must be in [0, 1]"},
      {R"("logit_bias": [1, 2])", "logit_bias", "logit_bias: must be an object"},
      {R"("logit_bias": {"abc": 1})", "logit_bias", "logit_bias: key \"abc\""},
      {R"("logit_bias": {"-4": 1})", "logit_bias", "logit_bias: key \"-4\""},
      {R"("logit_bias": {"1.5": 1})", "logit_bias", "logit_bias: key"},
      {R"("logit_bias": {"3": "up"})", "logit_bias", "logit_bias: the bias of token 3"},
      {R"("logit_bias": {"3": 101})", "logit_bias", "logit_bias: the bias of token 3"},
  };
  for (const Case& c : cases) {
    for (bool chat : {false, true}) {
      const std::string body =
          chat ? std::string(R"({"messages": [{"role": "user", "content": "x"}], )") + c.fields +
                     "}"
               : std::string(R"({"prompt": "x", )") + c.fields + "}";
      INFO(body);
      auto r = chat ? ParseChatRequest(body) : ParseCompletionRequest(body);
      REQUIRE_FALSE(r.ok());
      const ApiError e = ApiErrorFromStatus(r.status());
      CHECK(e.http_status == 400);
      CHECK(e.param == c.param);
      CHECK(e.message.rfind(c.message, 0) == 0);
    }
  }
}

TEST_CASE("unimplemented OpenAI fields are refused, harmless values accepted") {
  const char* chat_prefix = R"({"messages": [{"role": "user", "content": "x"}], )";
  auto chat_ok = [&](const std::string& fields) {
    INFO(fields);
    return ParseChatRequest(chat_prefix + fields + "}").ok();
  };
  auto chat_param = [&](const std::string& fields) {
    auto r = ParseChatRequest(chat_prefix + fields + "}");
    REQUIRE_FALSE(r.ok());
    return ApiErrorFromStatus(r.status()).param;
  };
  CHECK(chat_ok(R"("response_format": {"type": "text"})"));
  CHECK(chat_ok(R"("response_format": null)"));
  CHECK(chat_ok(R"("tools": [], "functions": null, "tool_choice": "none")"));
  CHECK(chat_ok(R"("best_of": 2, "n": 2)"));
  CHECK(chat_param(R"("response_format": "text")") == "response_format");
  CHECK(chat_param(R"("response_format": {"type": "yaml"})") == "response_format");
  auto json_mode = ParseChatRequest(chat_prefix + std::string(R"("response_format": {"type": "json_object"}})"));
  REQUIRE(json_mode.ok());
  CHECK(json_mode->json_object);
  auto text_mode = ParseChatRequest(chat_prefix + std::string(R"("response_format": {"type": "text"}})"));
  REQUIRE(text_mode.ok());
  CHECK_FALSE(text_mode->json_object);
  auto completion_json = ParseCompletionRequest(R"({"prompt": "x", "response_format": {"type": "json_object"}})");
  REQUIRE(completion_json.ok());
  CHECK(completion_json->json_object);
  // Tools parse (whether they may be used is the gateway's call: --enable-auto-tool-choice).
  CHECK(chat_ok(R"("tools": [{"type": "function", "function": {"name": "f"}}])"));
  CHECK(chat_param(R"("tool_choice": "required")") == "tool_choice");  // without tools
  CHECK(chat_param(R"("functions": [{"name": "f"}])") == "functions");
  CHECK(chat_param(R"("tool_choice": "auto")") == "tool_choice");
  CHECK(chat_param(R"("best_of": 3)") == "best_of");
  auto rf = ParseChatRequest(chat_prefix + std::string(R"("response_format": {"type": "yaml"}})"));
  CHECK(std::string(rf.status().message()) ==
        R"(response_format: only {"type": "text"}, {"type": "json_object"} and {"type": "json_schema"} are supported)");
  // json_schema: the wrapper's shape is checked here, the schema when compiled.
  auto schema = ParseChatRequest(chat_prefix + std::string(
      R"("response_format": {"type": "json_schema", "json_schema": {"name": "p", "strict": true,
          "schema": {"type": "object"}}}})"));
  REQUIRE(schema.ok());
  CHECK_FALSE(schema->json_object);
  CHECK(schema->json_schema == nlohmann::ordered_json::parse(R"({"type": "object"})"));
  CHECK(schema->json_schema_strict);
  auto lax = ParseCompletionRequest(
      R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})");
  REQUIRE(lax.ok());
  CHECK(lax->json_schema.is_object());
  CHECK_FALSE(lax->json_schema_strict);
  CHECK(text_mode->json_schema.is_null());
  for (const char* bad : {R"({"type": "json_schema"})",
                          R"({"type": "json_schema", "json_schema": {"name": "p"}})",
                          R"({"type": "json_schema", "json_schema": {"schema": []}})",
                          R"({"type": "json_schema", "json_schema": {"schema": {}, "strict": 1}})",
                          R"({"type": "json_schema", "json_schema": {"schema": {}, "name": 3}})"}) {
    INFO(bad);
    CHECK(chat_param(std::string(R"("response_format": )") + bad) == "response_format");
  }

  CHECK(ParseCompletionRequest(R"({"prompt": "x", "suffix": ""})").ok());
  CHECK(CompletionError(R"({"prompt": "x", "suffix": "end"})").param == "suffix");
  CHECK(CompletionError(R"({"prompt": "x", "best_of": 2})").param == "best_of");
  CHECK(CompletionError(R"({"prompt": "x", "tools": [{}]})").param == "tools");
  auto echo = ParseCompletionRequest(R"({"prompt": "x", "echo": true})");
  REQUIRE(echo.ok());
  CHECK(echo->echo);
  CHECK(CompletionError(R"({"prompt": "x", "echo": 1})").param == "echo");
  CHECK(CompletionError(R"({"prompt": "x", "echo": true, "logprobs": 1})").param == "echo");
}

TEST_CASE("deeply nested bodies are refused without recursion") {
  std::string deep = R"({"prompt": "x", "junk": )" + std::string(100000, '[') +
                     std::string(100000, ']') + "}";
  CHECK(CompletionError(deep).param == "body");
  // Brackets inside strings do not count.
  auto ok = ParseCompletionRequest(R"({"prompt": ")" + std::string(1000, '[') + R"("})");
  CHECK(ok.ok());
}

TEST_CASE("tokenize and detokenize bodies") {
  auto t = ParseTokenizeRequest(R"({"prompt": "hello", "add_special_tokens": false})");
  REQUIRE(t.ok());
  CHECK(*t->prompt == "hello");
  CHECK_FALSE(t->add_special_tokens);
  auto d = ParseDetokenizeRequest(R"({"tokens": [1, 2]})");
  REQUIRE(d.ok());
  CHECK(d->tokens == std::vector<int32_t>{1, 2});
  CHECK(ApiErrorFromStatus(ParseDetokenizeRequest(R"({"tokens": "x"})").status()).param ==
        "tokens");
}

}  // namespace
}  // namespace moe::server::http

namespace moe::server::http {
namespace {

TEST_CASE("integral floats are integers (as vLLM's pydantic reads them); others are not") {
  auto r = ParseCompletionRequest(
      R"({"prompt": "x", "max_tokens": 3.0, "n": 2.0, "seed": -4.0, "logprobs": 1e1})");
  REQUIRE(r.ok());
  CHECK(r->max_tokens == 3);
  CHECK(r->n == 2);
  CHECK(r->seed == -4);
  CHECK(r->top_logprobs == 10);
  // 2^64 parses as a float: out of range, not "must be an integer".
  ApiError e = CompletionError(R"({"prompt": "x", "seed": 18446744073709551616})");
  CHECK(e.param == "seed");
  CHECK(e.message.find("out of range") != std::string::npos);
  CHECK(CompletionError(R"({"prompt": "x", "max_tokens": 2.5})").param == "max_tokens");
  CHECK(CompletionError(R"({"prompt": "x", "n": 1e300})").param == "n");
}

TEST_CASE("null or missing message content becomes empty text; continue_final_message") {
  auto r = ParseChatRequest(
      R"({"messages": [{"role": "user", "content": null}, {"role": "assistant"}]})");
  REQUIRE(r.ok());
  CHECK(r->messages[0]["content"] == "");
  CHECK(r->messages[1]["content"] == "");
  CHECK_FALSE(r->continue_final_message);

  auto c = ParseChatRequest(R"({"messages": [{"role": "assistant", "content": "I"}],
                                "add_generation_prompt": false, "continue_final_message": true})");
  REQUIRE(c.ok());
  CHECK(c->continue_final_message);
  CHECK_FALSE(c->add_generation_prompt);
  auto both = ParseChatRequest(R"({"messages": [{"role": "assistant", "content": "I"}],
                                   "continue_final_message": true})");
  REQUIRE_FALSE(both.ok());
  CHECK(ApiErrorFromStatus(both.status()).param == "continue_final_message");
}

}  // namespace
}  // namespace moe::server::http

namespace moe::server::http {
namespace {

const char kToolMsgs[] = R"("messages": [{"role": "user", "content": "weather?"}])";

absl::StatusOr<OpenAiRequest> ChatWith(const std::string& fields) {
  return ParseChatRequest(std::string("{") + kToolMsgs + ", " + fields + "}");
}

TEST_CASE("tools: kept as sent, tool_choice defaults to auto with tools, none without") {
  auto r = ChatWith(R"("tools": [{"type": "function", "function": {"name": "get_weather",
      "description": "Weather of a city", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}}}}}, {"function": {"name": "g"}}])");
  REQUIRE(r.ok());
  REQUIRE(r->tools.is_array());
  REQUIRE(r->tools.size() == 2);
  CHECK(r->tools[0]["function"]["name"] == "get_weather");
  CHECK(r->tools[0]["function"]["parameters"]["properties"]["city"]["type"] == "string");
  CHECK(r->tool_choice == "auto");
  CHECK_FALSE(r->parse_tool_calls);  // the gateway decides

  auto none = ChatWith(R"("tools": [{"type": "function", "function": {"name": "f"}}],
                           "tool_choice": "none")");
  REQUIRE(none.ok());
  CHECK(none->tool_choice == "none");
  CHECK(none->tools.size() == 1);  // still rendered, as vLLM does

  auto plain = ParseChatRequest(std::string("{") + kToolMsgs + "}");
  REQUIRE(plain.ok());
  CHECK(plain->tools.is_null());
  CHECK(plain->tool_choice == "none");
  auto empty = ChatWith(R"("tools": [])");
  REQUIRE(empty.ok());
  CHECK(empty->tools.is_null());
  CHECK(empty->tool_choice == "none");
}

TEST_CASE("tools: shape errors name the field at fault") {
  const std::pair<std::string, std::string> cases[] = {
      {R"("tools": {"name": "f"})", "tools"},
      {R"("tools": ["f"])", "tools[0]"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}}, {"type": "retrieval",
          "function": {"name": "g"}}])", "tools[1].type"},
      {R"("tools": [{"type": "function"}])", "tools[0].function"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}},
                    {"type": "function", "function": {"description": "no name"}}])",
       "tools[1].function.name"},
      {R"("tools": [{"type": "function", "function": {"name": ""}}])", "tools[0].function.name"},
      {R"("tools": [{"type": "function", "function": {"name": 7}}])", "tools[0].function.name"},
      {R"("tools": [{"type": "function", "function": {"name": "f", "description": 1}}])",
       "tools[0].function.description"},
      {R"("tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}])",
       "tools[0].function.parameters"},
      {R"("tools": [{"function": {"name": "f"}}], "tool_choice": "any")", "tool_choice"},
      {R"("tools": [{"function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "g"}})", "tool_choice"},
      {R"("tools": [{"function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {}})", "tool_choice"},
      {R"("tools": [{"function": {"name": "f"}}], "tool_choice": {"name": "f"})", "tool_choice"},
      {R"("tools": [{"function": {"name": "f"}}], "tool_choice": "required",
          "response_format": {"type": "json_object"})", "tool_choice"},
      {R"("tool_choice": "auto")", "tool_choice"},
      {R"("functions": [{"name": "f"}])", "functions"},
      {R"("function_call": "auto")", "function_call"},
  };
  for (const auto& [fields, param] : cases) {
    INFO(fields);
    auto r = ChatWith(fields);
    REQUIRE_FALSE(r.ok());
    const ApiError e = ApiErrorFromStatus(r.status());
    CHECK(e.http_status == 400);
    CHECK(e.param == param);
  }
  auto unknown = ChatWith(R"("tools": [{"function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}})");
  CHECK(std::string(unknown.status().message()) ==
        "tool_choice: the function `g` is not among tools");
}

TEST_CASE("tool_choice required and named functions force a call") {
  auto required = ChatWith(R"("tools": [{"function": {"name": "f"}}], "tool_choice": "required")");
  REQUIRE(required.ok());
  CHECK(required->tool_choice == "required");
  CHECK(required->forced_tool_call());
  auto named = ChatWith(R"("tools": [{"function": {"name": "f"}}, {"function": {"name": "g"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}})");
  REQUIRE(named.ok());
  CHECK(named->tool_choice == "function");
  CHECK(named->tool_choice_name == "g");
  CHECK(named->forced_tool_call());
  auto none = ChatWith(R"("tools": [{"function": {"name": "f"}}], "tool_choice": "none")");
  REQUIRE(none.ok());
  CHECK_FALSE(none->forced_tool_call());
}

TEST_CASE("assistant tool_calls: null content accepted, JSON-string arguments become objects") {
  auto r = ParseChatRequest(R"({"messages": [
      {"role": "user", "content": "weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
          "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
          {"id": "call_2", "type": "function",
          "function": {"name": "g", "arguments": "not json"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]})");
  REQUIRE(r.ok());
  const auto& calls = r->messages[1]["tool_calls"];
  CHECK(calls[0]["function"]["arguments"]["city"] == "Paris");
  CHECK(calls[1]["function"]["arguments"] == "not json");  // kept as sent
  CHECK(r->messages[2]["tool_call_id"] == "call_1");

  auto bad = ParseChatRequest(R"({"messages": [{"role": "assistant",
      "tool_calls": [{"function": {"arguments": "{}"}}]}]})");
  REQUIRE_FALSE(bad.ok());
  CHECK(ApiErrorFromStatus(bad.status()).param == "messages[0].tool_calls[0].function.name");
  auto not_list = ParseChatRequest(R"({"messages": [{"role": "assistant", "tool_calls": 3}]})");
  CHECK(ApiErrorFromStatus(not_list.status()).param == "messages[0].tool_calls");
}

TEST_CASE("tokenize takes tools with messages") {
  auto t = ParseTokenizeRequest(R"({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {"name": "f"}}]})");
  REQUIRE(t.ok());
  CHECK(t->tools.size() == 1);
  auto bad = ParseTokenizeRequest(R"({"messages": [{"role": "user", "content": "x"}],
      "tools": [{"type": "function", "function": {}}]})");
  CHECK(ApiErrorFromStatus(bad.status()).param == "tools[0].function.name");
}

}  // namespace
}  // namespace moe::server::http
