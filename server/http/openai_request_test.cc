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
