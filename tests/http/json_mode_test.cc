// JSON mode end to end (response_format {"type": "json_object"}) through the HTTP gateway,
// the scheduler and the host sampler, on the tiny random-weight Qwen3-MoE: its text is
// noise, so anything JSON about the output comes from the constraint. A mild logit_bias
// towards '"' and '}' keeps strings and objects short enough to close within the
// context; the same request without response_format is shown not to give JSON. The
// same bias serves json_schema (structured outputs): the schema cannot shorten a free
// string, and the tiny model's noise would otherwise rarely close one.
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

// Sampled completions (temperature 1, n = 3 per seed: every choice keeps its own
// constraint state) with `format` in the body: every choice that stops must satisfy
// `valid`, every other one ends by length. Returns {choices, choices that stopped}.
template <typename Valid>
std::pair<int, int> SampledChoices(int port, const std::string& format,
                                   std::initializer_list<int> seeds, Valid valid) {
  int stopped = 0, total = 0;
  for (int seed : seeds) {
    Reply r = Post(port, "/v1/completions",
                   CompletionBody(format + R"(, "temperature": 1, "n": 3, "seed": )" +
                                  std::to_string(seed)));
    REQUIRE(r.status == 200);
    for (const auto& c : r.json["choices"]) {
      const std::string text = c["text"];
      INFO("seed " << seed << ": " << text);
      ++total;
      if (c["finish_reason"] == "stop") {
        ++stopped;
        CHECK(valid(text));
      } else {
        CHECK(c["finish_reason"] == "length");
      }
    }
  }
  return {total, stopped};
}

TEST_CASE("json_object with sampling: every choice that stops is an object") {
  const auto [total, stopped] =
      SampledChoices(Env().gateway->port(), kJsonMode, {1, 2, 3}, IsJsonObject);
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

// Structured outputs. The schema's documents are checked by hand: exactly the keys
// "name" (a string of at most 8 code points) and "age" (an integer).
const char kPersonFormat[] = R"("response_format": {"type": "json_schema", "json_schema": {
    "name": "person", "strict": true, "schema": {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
    "required": ["name", "age"], "additionalProperties": false}}})";

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsPerson(const std::string& text) {
  if (!nlohmann::json::accept(text)) return false;
  const nlohmann::json j = nlohmann::json::parse(text);
  return j.is_object() && j.size() == 2 && j.contains("name") && j["name"].is_string() &&
         CodePoints(j["name"].get<std::string>()) <= 8 && j.contains("age") &&
         j["age"].is_number_integer();
}

TEST_CASE("json_schema: every choice that stops validates against the schema") {
  const int port = Env().gateway->port();
  const auto [total, stopped] = SampledChoices(port, kPersonFormat, {1, 2}, IsPerson);
  CHECK(total == 6);
  // The schema bounds the document (two keys, a short name); only a very long integer
  // could run to max_tokens.
  CHECK(stopped >= 4);

  // Greedy, on chat: the same request without the constraint is not such a document.
  const std::string chat =
      R"({"messages": [{"role": "user", "content": "Give me JSON."}], "max_tokens": 600,
          "temperature": 0, )" + std::string(kBias);
  Reply constrained = Post(port, "/v1/chat/completions", chat + ", " + kPersonFormat + "}");
  REQUIRE(constrained.status == 200);
  const std::string text = constrained.json["choices"][0]["message"]["content"];
  INFO(text);
  CHECK(constrained.json["choices"][0]["finish_reason"] == "stop");
  CHECK(IsPerson(text));
  Reply plain = Post(port, "/v1/chat/completions", chat + "}");
  REQUIRE(plain.status == 200);
  CHECK_FALSE(IsPerson(plain.json["choices"][0]["message"]["content"]));
}

TEST_CASE("json_schema: unsupported keywords are a 400 naming them") {
  const int port = Env().gateway->port();
  Reply r = Post(port, "/v1/completions",
                 R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {
                     "name": "d", "schema": {"type": "object", "properties": {
                     "day": {"type": "string", "format": "date"}}}}}})");
  CHECK(r.status == 400);
  CHECK(r.json["error"]["param"] == "response_format");
  CHECK(r.json["error"]["message"] ==
        "response_format: json_schema keyword 'format' is not supported (at "
        "#/properties/day)");
  Reply wrapper = Post(port, "/v1/completions",
                       R"({"prompt": "x", "response_format": {"type": "json_schema", "json_schema": {}}})");
  CHECK(wrapper.status == 400);
  CHECK(wrapper.json["error"]["param"] == "response_format");
}

}  // namespace
}  // namespace moe::testing
