// What a client written for OpenAI or vLLM does that the basic gateway tests do not:
// HTTP details (methods, trailing slashes, keep-alive, chunked and gzip bodies), chat
// messages in the shapes real clients send, and prompts at the edge of the context.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/http/http_test_client.h"
#include "tests/http/test_env.h"

namespace moe::testing {
namespace {

using Json = nlohmann::ordered_json;

constexpr size_t kBodyLimit = 1 << 20;  // HttpTestEnvOptions' default max_body_bytes
constexpr int kContext = 1024;          // tiny qwen3_moe's max_position_embeddings

HttpTestEnv& Env() {
  static std::unique_ptr<HttpTestEnv> env = [] {
    HttpTestEnvOptions o;
    o.chat_template_file = "tests/data/chat_templates/qwen2_5_instruct.jinja";
    auto e = StartHttpTestEnv(o);
    if (!e.ok()) FAIL(e.status().ToString());
    return *std::move(e);
  }();
  return *env;
}

int Port() { return Env().gateway->port(); }

std::vector<int32_t> Ids(const Json& j) { return j.get<std::vector<int32_t>>(); }

std::string Decode(const std::vector<int32_t>& ids) {
  auto s = Env().model.tokenizer->Decode(ids, false);
  REQUIRE(s.ok());
  return *s;
}

std::string Gzip(const std::string& in) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Chunked(const std::string& body, size_t piece) {
  std::string out;
  for (size_t i = 0; i < body.size(); i += piece) {
    const std::string p = body.substr(i, piece);
    absl::StrAppend(&out, absl::Hex(p.size()), "\r\n", p, "\r\n");
  }
  return out + "0\r\n\r\n";
}

const char kSmall[] = R"({"prompt": "Hi", "max_tokens": 2})";

TEST_CASE("chunked and gzip bodies are capped by the body limit after decoding") {
  const std::string big = R"({"prompt": ")" + std::string(2 * kBodyLimit, 'a') + R"("})";
  {
    RawConnection c(Port());
    REQUIRE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   Chunked(big, 65536)));
    Reply r = c.ReadResponse();
    CHECK(r.status == 413);
    CHECK(r.json["error"]["param"] == "body");
  }
  {
    // 2 MiB that compresses to a few KiB: the decoded size is what counts.
    const std::string gz = Gzip(big);
    REQUIRE(gz.size() < kBodyLimit / 8);
    RawConnection c(Port());
    REQUIRE(c.Send(PostRequest("/v1/completions", gz, "Content-Encoding: gzip\r\n")));
    Reply r = c.ReadResponse();
    CHECK(r.status == 413);
    CHECK(r.json["error"]["param"] == "body");
    // Most of the compressed body is unread: the client is told not to reuse the
    // connection (which would otherwise parse the leftovers as a request).
    auto conn = r.headers.find("Connection");
    REQUIRE(conn != r.headers.end());
    CHECK(conn->second == "close");
  }
  // Within the limit both encodings are served.
  {
    RawConnection c(Port());
    REQUIRE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
                   Chunked(kSmall, 7)));
    Reply r = c.ReadResponse();
    CHECK(r.status == 200);
    CHECK(r.json["usage"]["completion_tokens"] == 2);
    REQUIRE(c.Send(PostRequest("/v1/completions", Gzip(kSmall), "Content-Encoding: gzip\r\n")));
    r = c.ReadResponse();
    CHECK(r.status == 200);
    CHECK(r.json["usage"]["completion_tokens"] == 2);
  }
}

TEST_CASE("an oversized Expect: 100-continue body is refused before it is sent") {
  RawConnection c(Port());
  REQUIRE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nExpect: 100-continue\r\nContent-Length: " +
                 std::to_string(2 * kBodyLimit) + "\r\n\r\n"));
  Reply r = c.ReadResponse(10);
  CHECK(r.status == 413);
  CHECK(r.json["error"]["param"] == "body");
}

TEST_CASE("an unknown Content-Encoding is 415, not a JSON error") {
  RawConnection c(Port());
  REQUIRE(c.Send(PostRequest("/v1/completions", kSmall, "Content-Encoding: zstd\r\n")));
  Reply r = c.ReadResponse();
  CHECK(r.status == 415);
  CHECK(absl::StrContains(r.json["error"]["message"].get<std::string>(), "zstd"));
}

TEST_CASE("one keep-alive connection serves many requests, errors included") {
  RawConnection c(Port());
  for (int i = 0; i < 12; ++i) {
    INFO(i);
    const bool bad = i % 4 == 3;
    REQUIRE(c.Send(PostRequest("/v1/completions", bad ? "{oops" : kSmall)));
    Reply r = c.ReadResponse();
    CHECK(r.status == (bad ? 400 : 200));
    auto conn = r.headers.find("Connection");
    CHECK((conn == r.headers.end() || conn->second != "close"));
  }
}

TEST_CASE("a wrong method on a known route is 405 naming the allowed one; OPTIONS is 204") {
  Reply r = Get(Port(), "/v1/completions");
  CHECK(r.status == 405);
  CHECK(r.json["error"]["type"] == "invalid_request_error");
  CHECK(absl::StrContains(r.json["error"]["message"].get<std::string>(), "POST"));
  REQUIRE(r.headers.count("Allow") == 1);
  CHECK(r.headers.find("Allow")->second == "POST, OPTIONS");

  httplib::Client cli("127.0.0.1", Port());
  auto m = cli.Post("/v1/models", "{}", "application/json");
  REQUIRE(m);
  CHECK(m->status == 405);
  CHECK(m->get_header_value("Allow") == "GET, HEAD, OPTIONS");

  auto o = cli.Options("/v1/chat/completions");
  REQUIRE(o);
  CHECK(o->status == 204);
  CHECK(o->get_header_value("Allow") == "POST, OPTIONS");
  CHECK(Get(Port(), "/v1/nothing").status == 404);
  auto none = cli.Options("/v1/nothing");
  REQUIRE(none);
  CHECK(none->status == 404);
}

TEST_CASE("with an API key, OPTIONS (a CORS preflight) needs none; POST still does") {
  HttpTestEnvOptions o;
  o.api_key = "sekret";
  auto env = StartHttpTestEnv(o);
  REQUIRE(env.ok());
  httplib::Client cli("127.0.0.1", (*env)->gateway->port());
  auto pre = cli.Options("/v1/chat/completions");
  REQUIRE(pre);
  CHECK(pre->status == 204);
  auto post = cli.Post("/v1/chat/completions", "{}", "application/json");
  REQUIRE(post);
  CHECK(post->status == 401);
}

TEST_CASE("CORS: an allowed Origin gets Access-Control-Allow-Origin, preflights too; others none") {
  HttpTestEnvOptions o;
  o.api_key = "sekret";
  o.allowed_origins = "http://ui.example, http://other.example";
  auto env = StartHttpTestEnv(o);
  REQUIRE(env.ok());
  httplib::Client cli("127.0.0.1", (*env)->gateway->port());
  const httplib::Headers pre_h = {{"Origin", "http://ui.example"},
                                  {"Access-Control-Request-Method", "POST"},
                                  {"Access-Control-Request-Headers", "authorization, content-type"}};
  auto pre = cli.Options("/v1/chat/completions", pre_h);
  REQUIRE(pre);
  CHECK(pre->status == 204);
  CHECK(pre->get_header_value("Access-Control-Allow-Origin") == "http://ui.example");
  CHECK(absl::StrContains(pre->get_header_value("Access-Control-Allow-Methods"), "POST"));
  CHECK(pre->get_header_value("Access-Control-Allow-Headers") == "authorization, content-type");
  // The actual request carries the header too, also when it is refused (401), so the page
  // can read the error.
  auto denied = cli.Post("/v1/completions", {{"Origin", "http://ui.example"}}, kSmall, "application/json");
  REQUIRE(denied);
  CHECK(denied->status == 401);
  CHECK(denied->get_header_value("Access-Control-Allow-Origin") == "http://ui.example");
  auto ok = cli.Post("/v1/completions", {{"Origin", "http://other.example"}, {"Authorization", "Bearer sekret"}},
                     kSmall, "application/json");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->get_header_value("Access-Control-Allow-Origin") == "http://other.example");
  // An origin not listed gets no CORS headers; without --allowed-origins nobody does.
  auto evil = cli.Options("/v1/chat/completions", {{"Origin", "http://evil.example"}});
  REQUIRE(evil);
  CHECK_FALSE(evil->has_header("Access-Control-Allow-Origin"));
  auto plain = httplib::Client("127.0.0.1", Port()).Options("/v1/chat/completions", {{"Origin", "http://ui.example"}});
  REQUIRE(plain);
  CHECK_FALSE(plain->has_header("Access-Control-Allow-Origin"));
}

TEST_CASE("routes answer with a trailing slash; GET /v1/models/{id} retrieves the model") {
  Reply r = Post(Port(), "/v1/completions/", kSmall);
  CHECK(r.status == 200);
  CHECK(r.json["usage"]["completion_tokens"] == 2);
  Reply list = Get(Port(), "/v1/models/");
  CHECK(list.status == 200);
  CHECK(list.json["object"] == "list");

  Reply one = Get(Port(), "/v1/models/tiny-qwen3-moe");
  CHECK(one.status == 200);
  CHECK(one.json["id"] == "tiny-qwen3-moe");
  CHECK(one.json["object"] == "model");
  CHECK(one.json == list.json["data"][0]);
  Reply missing = Get(Port(), "/v1/models/gpt-4o");
  CHECK(missing.status == 404);
  CHECK(missing.json["error"]["code"] == "model_not_found");
}

// Far more than kContext tokens.
std::string LongText() {
  std::string s;
  for (int i = 0; i < 2000; ++i) absl::StrAppend(&s, " word", i);
  return s;
}

TEST_CASE("a client that disconnects from a non-streaming request aborts its choices") {
  const int64_t aborted0 = Env().scheduler->GetStats().num_aborted;
  {
    RawConnection c(Port());
    REQUIRE(c.Send(PostRequest(
        "/v1/completions",
        R"({"prompt": "Long story", "max_tokens": 1000, "n": 8, "ignore_eos": true})")));
    // Wait until the choices run, then hang up before any answer.
    const absl::Time start = absl::Now();
    while (Env().scheduler->GetStats().num_running < 8 &&
           absl::Now() - start < absl::Seconds(10)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  scheduler::SchedulerStats st;
  do {
    absl::SleepFor(absl::Milliseconds(20));
    st = Env().scheduler->GetStats();
  } while (st.num_aborted < aborted0 + 8 && absl::Now() < deadline);
  CHECK(st.num_aborted == aborted0 + 8);
  CHECK(Env().scheduler->WaitUntilIdle(absl::Seconds(5)));
  // The server keeps serving.
  CHECK(Post(Port(), "/v1/completions", kSmall).status == 200);
}

Json ChatBody(Json messages) {
  return {{"messages", std::move(messages)}, {"max_tokens", 2}, {"temperature", 0},
          {"return_token_ids", true}};
}

TEST_CASE("null or missing message content renders as empty text, as vLLM does") {
  const Json empty = ChatBody(Json::array({{{"role", "user"}, {"content", ""}}}));
  Reply base = Post(Port(), "/v1/chat/completions", empty.dump());
  REQUIRE(base.status == 200);
  for (const Json& msg : {Json{{"role", "user"}, {"content", nullptr}}, Json{{"role", "user"}}}) {
    INFO(msg.dump());
    Reply r = Post(Port(), "/v1/chat/completions", ChatBody(Json::array({msg})).dump());
    CHECK(r.status == 200);
    CHECK(r.json["prompt_token_ids"] == base.json["prompt_token_ids"]);
  }
  // An assistant turn that only called a tool has content null.
  Json tool_turn = ChatBody(Json::array(
      {{{"role", "user"}, {"content", "What is 6*7?"}},
       {{"role", "assistant"},
        {"content", nullptr},
        {"tool_calls", Json::array({{{"id", "c1"},
                                     {"type", "function"},
                                     {"function", {{"name", "mul"}, {"arguments", "{}"}}}}})}},
       {{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "42"}}}));
  CHECK(Post(Port(), "/v1/chat/completions", tool_turn.dump()).status == 200);
}

TEST_CASE("continue_final_message continues the last assistant message") {
  Json body = ChatBody(Json::array({{{"role", "user"}, {"content", "Hi"}},
                                    {{"role", "assistant"}, {"content", "Hello, I am"}}}));
  body["add_generation_prompt"] = false;
  body["continue_final_message"] = true;
  Reply r = Post(Port(), "/v1/chat/completions", body.dump());
  REQUIRE(r.status == 200);
  const std::string prompt = Decode(Ids(r.json["prompt_token_ids"]));
  CHECK(absl::EndsWith(prompt, "<|im_start|>assistant\nHello, I am"));

  // Without it the last message is closed, as before.
  body.erase("continue_final_message");
  Reply closed = Post(Port(), "/v1/chat/completions", body.dump());
  REQUIRE(closed.status == 200);
  CHECK(absl::EndsWith(Decode(Ids(closed.json["prompt_token_ids"])), "Hello, I am<|im_end|>\n"));

  body["continue_final_message"] = true;
  body["add_generation_prompt"] = true;
  Reply both = Post(Port(), "/v1/chat/completions", body.dump());
  CHECK(both.status == 400);
  CHECK(both.json["error"]["param"] == "continue_final_message");
}

TEST_CASE("a prompt that fills the context is a 400 naming the prompt, not max_tokens") {
  Json c = {{"prompt", std::vector<int32_t>(kContext, 5)}, {"max_tokens", 1}};
  Reply r = Post(Port(), "/v1/completions", c.dump());
  CHECK(r.status == 400);
  CHECK(r.json["error"]["param"] == "prompt");
  CHECK(absl::StrContains(r.json["error"]["message"].get<std::string>(), "1024"));

  Json chat = ChatBody(Json::array({{{"role", "user"}, {"content", LongText()}}}));
  Reply rc = Post(Port(), "/v1/chat/completions", chat.dump());
  CHECK(rc.status == 400);
  CHECK(rc.json["error"]["param"] == "messages");

  // An explicit max_tokens past the room left still names max_tokens.
  Json over = {{"prompt", std::vector<int32_t>(kContext - 4, 5)}, {"max_tokens", 8}};
  Reply ro = Post(Port(), "/v1/completions", over.dump());
  CHECK(ro.status == 400);
  CHECK(ro.json["error"]["param"] == "max_tokens");
}

TEST_CASE("a request with more sequences than the queue holds is a 400, not a 429 to retry") {
  // The scheduler's default max_queue is 256: 5 prompts x n 64 = 320 sequences.
  Json many = {{"prompt", std::vector<std::string>(5, "Hello")}, {"n", 64}, {"max_tokens", 1}};
  Reply r = Post(Port(), "/v1/completions", many.dump());
  CHECK(r.status == 400);
  CHECK(r.json["error"]["param"] == "n");
  CHECK(absl::StrContains(r.json["error"]["message"].get<std::string>(), "320"));
  Json prompts = {{"prompt", std::vector<std::string>(300, "Hi")}, {"max_tokens", 1}};
  Reply rp = Post(Port(), "/v1/completions", prompts.dump());
  CHECK(rp.status == 400);
  CHECK(rp.json["error"]["param"] == "prompt");
  // One below the bound still runs.
  Json fits = {{"prompt", std::vector<std::string>(4, "Hello")}, {"n", 64}, {"max_tokens", 1}};
  CHECK(Post(Port(), "/v1/completions", fits.dump()).status == 200);
}

TEST_CASE("completions without max_tokens near the context get the room left") {
  Json c = {{"prompt", std::vector<int32_t>(kContext - 3, 5)}, {"ignore_eos", true}};
  Reply r = Post(Port(), "/v1/completions", c.dump());
  REQUIRE(r.status == 200);
  CHECK(r.json["usage"]["completion_tokens"] == 3);
  CHECK(r.json["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("priority: a non-zero value needs --scheduling-policy priority (400 naming it)") {
  // The test scheduler runs the default fcfs policy, as `vllm serve` does.
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    Json body = {{"max_tokens", 2}, {"priority", 1}};
    if (std::string(path) == "/v1/completions") {
      body["prompt"] = "Hi";
    } else {
      body["messages"] = Json::array({{{"role", "user"}, {"content", "Hi"}}});
    }
    INFO(path);
    Reply r = Post(Port(), path, body.dump());
    CHECK(r.status == 400);
    CHECK(r.json["error"]["param"] == "priority");
    CHECK(absl::StrContains(r.json["error"]["message"].get<std::string>(),
                            "--scheduling-policy priority"));
    body["priority"] = "high";  // not an integer: refused by the parser, whatever the policy
    Reply typed = Post(Port(), path, body.dump());
    CHECK(typed.status == 400);
    CHECK(typed.json["error"]["param"] == "priority");
    body["priority"] = 0;  // the default is accepted
    CHECK(Post(Port(), path, body.dump()).status == 200);
  }
}

}  // namespace
}  // namespace moe::testing
