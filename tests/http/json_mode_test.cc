// JSON mode end to end (response_format {"type": "json_object"}) through the HTTP gateway,
// the scheduler and the host sampler, on the tiny random-weight Qwen3-MoE: its text is
// noise, so anything JSON about the output comes from the constraint. A mild logit_bias
// towards '"' and '}' keeps strings and objects short enough to close within the
// context; the same request without response_format is shown not to give JSON.
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/http/http_test_client.h"
#include "tests/http/test_env.h"

namespace moe::testing {
namespace {

using Json = nlohmann::ordered_json;

HttpTestEnv& Env() {
  static std::unique_ptr<HttpTestEnv> env = [] {
    HttpTestEnvOptions o;
    o.chat_template_file = "tests/data/chat_templates/qwen3.jinja";
    auto e = StartHttpTestEnv(o);
    if (!e.ok()) FAIL(e.status().ToString());
    return *std::move(e);
  }();
  return *env;
}

// Qwen3-MoE test vocabulary: '"' 1, ' "' 405, '",' 625, '".' 844, '}' 92.
const char kBias[] = R"("logit_bias": {"1": 4, "405": 4, "625": 4, "844": 4, "92": 3})";
const char kJsonMode[] = R"("response_format": {"type": "json_object"})";

bool IsJsonObject(const std::string& text) {
  return nlohmann::json::accept(text) && nlohmann::json::parse(text).is_object();
}

std::string CompletionBody(const std::string& extra) {
  return R"({"prompt": "Reply with a JSON object:", "max_tokens": 600, )" + std::string(kBias) +
         (extra.empty() ? "" : ", " + extra) + "}";
}

TEST_CASE("json_object completions parse as an object and end by stop") {
  const int port = Env().gateway->port();
  Reply r = Post(port, "/v1/completions",
                 CompletionBody(std::string(kJsonMode) + R"(, "temperature": 0)"));
  REQUIRE(r.status == 200);
  const std::string text = r.json["choices"][0]["text"];
  INFO(text);
  CHECK(r.json["choices"][0]["finish_reason"] == "stop");
  CHECK(IsJsonObject(text));

  // The same request without response_format: the model's text is not JSON.
  Reply plain = Post(port, "/v1/completions", CompletionBody(R"("temperature": 0)"));
  REQUIRE(plain.status == 200);
  const std::string plain_text = plain.json["choices"][0]["text"];
  INFO(plain_text);
  CHECK_FALSE(IsJsonObject(plain_text));
  CHECK(plain_text != text);
}

TEST_CASE("json_object with sampling: every choice that stops is an object") {
  const int port = Env().gateway->port();
  int stopped = 0, total = 0;
  for (int seed : {1, 2, 3}) {
    // n = 3: every choice keeps its own constraint state.
    Reply r = Post(port, "/v1/completions",
                   CompletionBody(std::string(kJsonMode) + R"(, "temperature": 1, "n": 3, "seed": )" +
                                  std::to_string(seed)));
    REQUIRE(r.status == 200);
    for (const auto& c : r.json["choices"]) {
      const std::string text = c["text"];
      INFO("seed " << seed << ": " << text);
      ++total;
      if (c["finish_reason"] == "stop") {
        ++stopped;
        CHECK(IsJsonObject(text));
      } else {
        CHECK(c["finish_reason"] == "length");
      }
    }
  }
  CHECK(total == 9);
  CHECK(stopped >= 6);
}

TEST_CASE("json_object on chat, streamed: the deltas join into an object") {
  const int port = Env().gateway->port();
  const std::string body =
      R"({"messages": [{"role": "user", "content": "Give me JSON."}], "max_tokens": 600,
          "stream": true, "temperature": 0, )" +
      std::string(kBias) + ", " + kJsonMode + "}";
  Reply r = Post(port, "/v1/chat/completions", body);
  REQUIRE(r.status == 200);
  std::string text;
  std::string finish;
  for (const Json& chunk : SseChunks(r.body)) {
    if (chunk["choices"].empty()) continue;
    const Json& choice = chunk["choices"][0];
    if (choice.contains("delta") && choice["delta"].contains("content") &&
        choice["delta"]["content"].is_string()) {
      text += choice["delta"]["content"].get<std::string>();
    }
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
      finish = choice["finish_reason"];
    }
  }
  INFO(text);
  CHECK(finish == "stop");
  CHECK(IsJsonObject(text));
}

TEST_CASE("json_schema is refused, naming response_format") {
  const int port = Env().gateway->port();
  Reply r = Post(port, "/v1/completions",
                 R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {}}})");
  CHECK(r.status == 400);
  CHECK(r.json["error"]["param"] == "response_format");
}

}  // namespace
}  // namespace moe::testing
