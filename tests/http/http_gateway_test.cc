// End-to-end tests of the HTTP gateway over a real Scheduler and the CPU backend.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include <httplib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "tests/http/http_test_client.h"
#include "tests/http/test_env.h"

namespace moe::testing {
namespace {

using Json = nlohmann::ordered_json;

HttpTestEnv& Env() {
  static std::unique_ptr<HttpTestEnv> env = [] {
    HttpTestEnvOptions o;
    o.chat_template_file = "tests/data/chat_templates/qwen2_5_instruct.jinja";
    auto e = StartHttpTestEnv(o);
    if (!e.ok()) {
      FAIL(e.status().ToString());
    }
    return *std::move(e);
  }();
  return *env;
}

// Greedy tokens from the scheduler alone, for comparison.
std::vector<int32_t> SchedulerGreedy(const std::vector<int32_t>& prompt, int max_tokens) {
  scheduler::GenerateRequest r;
  r.prompt = prompt;
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  r.ignore_eos = true;
  auto h = Env().scheduler->Submit(r);
  REQUIRE(h.ok());
  std::vector<int32_t> ids;
  scheduler::StreamEvent ev;
  while ((*h)->Next(&ev, absl::Seconds(30))) {
    if (ev.kind == scheduler::StreamEvent::Kind::kTokens) {
      ids.insert(ids.end(), ev.token_ids.begin(), ev.token_ids.end());
    }
  }
  return ids;
}

std::vector<int32_t> Ids(const Json& j) { return j.get<std::vector<int32_t>>(); }

TEST_CASE("completions, streaming and not, give the scheduler's greedy tokens") {
  const int port = Env().gateway->port();
  const std::string prompt = "The quick brown fox";
  auto enc = Env().model.tokenizer->Encode(prompt, true);
  REQUIRE(enc.ok());
  const std::vector<int32_t> expected = SchedulerGreedy(*enc, 12);
  REQUIRE(expected.size() == 12);

  Json req = {{"model", "tiny-qwen3-moe"}, {"prompt", prompt}, {"max_tokens", 12},
              {"temperature", 0}, {"ignore_eos", true}, {"return_token_ids", true}};
  Reply r = Post(port, "/v1/completions", req.dump());
  REQUIRE(r.status == 200);
  const Json& c = r.json["choices"][0];
  CHECK(r.json["object"] == "text_completion");
  CHECK(Ids(c["token_ids"]) == expected);
  CHECK(Ids(c["prompt_token_ids"]) == *enc);
  CHECK(c["finish_reason"] == "length");
  CHECK(c["text"] == *Env().model.tokenizer->Decode(expected, true));
  CHECK(r.json["usage"]["prompt_tokens"] == enc->size());
  CHECK(r.json["usage"]["completion_tokens"] == 12);
  CHECK(r.json["usage"]["total_tokens"] == enc->size() + 12);

  req["stream"] = true;
  Reply s = Post(port, "/v1/completions", req.dump());
  REQUIRE(s.status == 200);
  std::string text;
  std::vector<int32_t> ids;
  std::string finish;
  for (const Json& chunk : SseChunks(s.body)) {
    REQUIRE(chunk["choices"].size() == 1);
    const Json& ch = chunk["choices"][0];
    text += ch["text"].get<std::string>();
    auto t = Ids(ch["token_ids"]);
    ids.insert(ids.end(), t.begin(), t.end());
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  CHECK(ids == expected);
  CHECK(text == c["text"]);
  CHECK(finish == "length");
}

TEST_CASE("chat completions render the template once, stream the same content") {
  const int port = Env().gateway->port();
  Json req = {{"messages", Json::array({{{"role", "system"}, {"content", "Be brief."}},
                                        {{"role", "user"}, {"content", "Hi there"}}})},
              {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true},
              {"return_token_ids", true}};
  Reply r = Post(port, "/v1/chat/completions", req.dump());
  REQUIRE(r.status == 200);
  CHECK(r.json["object"] == "chat.completion");
  const Json& msg = r.json["choices"][0]["message"];
  CHECK(msg["role"] == "assistant");
  const std::vector<int32_t> prompt_ids = Ids(r.json["prompt_token_ids"]);
  const std::string rendered = *Env().model.tokenizer->Decode(prompt_ids, false);
  CHECK(absl::StartsWith(rendered, "<|im_start|>system\nBe brief.<|im_end|>\n"));
  CHECK(absl::EndsWith(rendered, "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"));
  CHECK(r.json["usage"]["prompt_tokens"] == prompt_ids.size());
  CHECK(Ids(r.json["choices"][0]["token_ids"]) == SchedulerGreedy(prompt_ids, 8));

  // /tokenize renders the same conversation to the same ids.
  Reply t = Post(port, "/tokenize", Json{{"messages", req["messages"]}}.dump());
  REQUIRE(t.status == 200);
  CHECK(Ids(t.json["tokens"]) == prompt_ids);

  req["stream"] = true;
  Reply s = Post(port, "/v1/chat/completions", req.dump());
  REQUIRE(s.status == 200);
  auto chunks = SseChunks(s.body);
  REQUIRE(chunks.size() >= 2);
  CHECK(chunks[0]["object"] == "chat.completion.chunk");
  CHECK(chunks[0]["choices"][0]["delta"]["role"] == "assistant");
  std::string content;
  for (const Json& ch : chunks) {
    const Json& d = ch["choices"][0]["delta"];
    if (d.contains("content")) content += d["content"].get<std::string>();
  }
  CHECK(content == msg["content"]);
  CHECK(chunks.back()["choices"][0]["finish_reason"] == "length");
}

TEST_CASE("n=2 with a seed: two choices, reproducible, distinct seeds") {
  const int port = Env().gateway->port();
  Json req = {{"prompt", "Once upon a time"}, {"max_tokens", 16}, {"n", 2},
              {"temperature", 1.0}, {"seed", 1234}, {"ignore_eos", true}};
  Reply a = Post(port, "/v1/completions", req.dump());
  Reply b = Post(port, "/v1/completions", req.dump());
  REQUIRE(a.status == 200);
  REQUIRE(a.json["choices"].size() == 2);
  CHECK(a.json["choices"][0]["index"] == 0);
  CHECK(a.json["choices"][1]["index"] == 1);
  CHECK(a.json["choices"][0]["text"] == b.json["choices"][0]["text"]);
  CHECK(a.json["choices"][1]["text"] == b.json["choices"][1]["text"]);
  // Different seeds per choice: 16 sampled tokens at temperature 1 over 1000 ids.
  CHECK(a.json["choices"][0]["text"] != a.json["choices"][1]["text"]);
  CHECK(a.json["usage"]["completion_tokens"] == 32);
}

TEST_CASE("stop strings end the text before the match, streamed or not") {
  const int port = Env().gateway->port();
  Json req = {{"prompt", "Hello"}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}};
  Reply full = Post(port, "/v1/completions", req.dump());
  REQUIRE(full.status == 200);
  const std::string text = full.json["choices"][0]["text"];
  // A two-character ASCII stop string from the middle of the greedy text.
  std::string stop;
  for (size_t i = text.size() / 3; i + 1 < text.size(); ++i) {
    if (std::isalnum(static_cast<unsigned char>(text[i])) &&
        std::isalnum(static_cast<unsigned char>(text[i + 1]))) {
      stop = text.substr(i, 2);
      break;
    }
  }
  REQUIRE(!stop.empty());
  const std::string expected = text.substr(0, text.find(stop));
  req["stop"] = Json::array({"\x01never", stop});
  Reply r = Post(port, "/v1/completions", req.dump());
  REQUIRE(r.status == 200);
  CHECK(r.json["choices"][0]["text"] == expected);
  CHECK(r.json["choices"][0]["finish_reason"] == "stop");
  CHECK(r.json["choices"][0]["stop_reason"] == stop);

  req["stream"] = true;
  Reply s = Post(port, "/v1/completions", req.dump());
  std::string streamed;
  for (const Json& c : SseChunks(s.body)) streamed += c["choices"][0]["text"].get<std::string>();
  CHECK(streamed == expected);
}

TEST_CASE("logprobs in both APIs' shapes") {
  const int port = Env().gateway->port();
  Json req = {{"prompt", "Hello"}, {"max_tokens", 5}, {"temperature", 0}, {"logprobs", 2},
              {"ignore_eos", true}};
  Reply r = Post(port, "/v1/completions", req.dump());
  REQUIRE(r.status == 200);
  const Json& lp = r.json["choices"][0]["logprobs"];
  REQUIRE(lp["tokens"].size() == 5);
  REQUIRE(lp["token_logprobs"].size() == 5);
  REQUIRE(lp["top_logprobs"].size() == 5);
  REQUIRE(lp["text_offset"].size() == 5);
  std::string joined;
  for (int i = 0; i < 5; ++i) {
    CHECK(lp["text_offset"][i] == joined.size());
    joined += lp["tokens"][i].get<std::string>();
    const double chosen = lp["token_logprobs"][i];
    CHECK(chosen <= 0.0);
    const Json& top = lp["top_logprobs"][i];
    CHECK(top.size() >= 1);
    CHECK(top.size() <= 3);
    for (const auto& [tok, v] : top.items()) CHECK(v.get<double>() <= chosen + 1e-6);  // greedy
  }

  Json chat = {{"messages", Json::array({{{"role", "user"}, {"content", "Hi"}}})},
               {"max_tokens", 4}, {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 3},
               {"ignore_eos", true}};
  Reply c = Post(port, "/v1/chat/completions", chat.dump());
  REQUIRE(c.status == 200);
  const Json& content = c.json["choices"][0]["logprobs"]["content"];
  REQUIRE(content.size() == 4);
  for (const Json& e : content) {
    CHECK(e["token"].is_string());
    CHECK(e["logprob"].get<double>() <= 0.0);
    CHECK(e["bytes"].size() == e["token"].get<std::string>().size());
    REQUIRE(e["top_logprobs"].size() == 3);
    CHECK(e["top_logprobs"][0]["logprob"] == e["logprob"]);  // greedy picks the top one
  }
}

TEST_CASE("stream_options.include_usage ends with a usage chunk") {
  const int port = Env().gateway->port();
  Json req = {{"prompt", "Hello"}, {"max_tokens", 6}, {"stream", true}, {"ignore_eos", true},
              {"stream_options", {{"include_usage", true}}}};
  Reply s = Post(port, "/v1/completions", req.dump());
  auto chunks = SseChunks(s.body);
  REQUIRE(chunks.size() >= 2);
  const Json& last = chunks.back();
  CHECK(last["choices"].empty());
  CHECK(last["usage"]["completion_tokens"] == 6);
  CHECK(last["usage"]["total_tokens"] ==
        last["usage"]["prompt_tokens"].get<int>() + 6);
  for (size_t i = 0; i + 1 < chunks.size(); ++i) CHECK(chunks[i]["usage"].is_null());
}

TEST_CASE("logit_bias +100 makes greedy emit that token every step, in both APIs") {
  const int port = Env().gateway->port();
  Json req = {{"prompt", "The quick brown fox"}, {"max_tokens", 10}, {"temperature", 0},
              {"ignore_eos", true}, {"return_token_ids", true},
              {"logit_bias", {{"123", 100}}}};
  Reply r = Post(port, "/v1/completions", req.dump());
  REQUIRE(r.status == 200);
  CHECK(Ids(r.json["choices"][0]["token_ids"]) == std::vector<int32_t>(10, 123));
  // Sampling at temperature 1 with a seed is forced too.
  req["temperature"] = 1.0;
  req["seed"] = 5;
  r = Post(port, "/v1/completions", req.dump());
  REQUIRE(r.status == 200);
  CHECK(Ids(r.json["choices"][0]["token_ids"]) == std::vector<int32_t>(10, 123));

  Json chat = {{"messages", Json::array({{{"role", "user"}, {"content", "Hi"}}})},
               {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true},
               {"return_token_ids", true}, {"logit_bias", {{"456", 100}}}};
  Reply c = Post(port, "/v1/chat/completions", chat.dump());
  REQUIRE(c.status == 200);
  CHECK(Ids(c.json["choices"][0]["token_ids"]) == std::vector<int32_t>(6, 456));
}

TEST_CASE("a large frequency_penalty stops greedy repeating tokens") {
  const int port = Env().gateway->port();
  auto has_repeat = [](const std::vector<int32_t>& ids) {
    return std::set<int32_t>(ids.begin(), ids.end()).size() < ids.size();
  };
  Json req = {{"prompt", "Hello"}, {"max_tokens", 32}, {"temperature", 0},
              {"ignore_eos", true}, {"return_token_ids", true}};
  Reply plain = Post(port, "/v1/completions", req.dump());
  REQUIRE(plain.status == 200);
  const std::vector<int32_t> base = Ids(plain.json["choices"][0]["token_ids"]);
  REQUIRE(base.size() == 32);
  REQUIRE(has_repeat(base));  // otherwise the penalty has nothing to prevent

  req["frequency_penalty"] = 2.0;
  req["presence_penalty"] = 2.0;
  Reply pen = Post(port, "/v1/completions", req.dump());
  REQUIRE(pen.status == 200);
  const std::vector<int32_t> ids = Ids(pen.json["choices"][0]["token_ids"]);
  REQUIRE(ids.size() == 32);
  CHECK_FALSE(has_repeat(ids));
  // The first token has no history to penalise: it is the unpenalised one.
  CHECK(ids[0] == base[0]);

  // repetition_penalty counts the prompt: a prompt made of the unpenalised greedy
  // continuation's first tokens changes the continuation.
  Json rep = {{"prompt", base}, {"max_tokens", 8}, {"temperature", 0}, {"ignore_eos", true},
              {"return_token_ids", true}};
  Reply a = Post(port, "/v1/completions", rep.dump());
  rep["repetition_penalty"] = 100.0;
  Reply b = Post(port, "/v1/completions", rep.dump());
  REQUIRE(a.status == 200);
  REQUIRE(b.status == 200);
  const std::vector<int32_t> with_rep = Ids(b.json["choices"][0]["token_ids"]);
  for (int32_t t : with_rep) {
    INFO(t);
    CHECK(std::find(base.begin(), base.end(), t) == base.end());  // no prompt token reused
  }
}

TEST_CASE("echo puts the prompt text first, streamed as the first chunk") {
  const int port = Env().gateway->port();
  const std::string prompt = "The quick brown fox";
  Json req = {{"prompt", prompt}, {"max_tokens", 6}, {"temperature", 0}, {"ignore_eos", true}};
  Reply plain = Post(port, "/v1/completions", req.dump());
  REQUIRE(plain.status == 200);
  const std::string generated = plain.json["choices"][0]["text"];
  req["echo"] = true;
  Reply r = Post(port, "/v1/completions", req.dump());
  REQUIRE(r.status == 200);
  CHECK(r.json["choices"][0]["text"] == prompt + generated);
  CHECK(r.json["usage"]["completion_tokens"] == 6);

  req["stream"] = true;
  Reply s = Post(port, "/v1/completions", req.dump());
  REQUIRE(s.status == 200);
  auto chunks = SseChunks(s.body);
  REQUIRE(chunks.size() >= 2);
  CHECK(chunks[0]["choices"][0]["text"] == prompt);
  std::string text;
  for (const Json& c : chunks) text += c["choices"][0]["text"].get<std::string>();
  CHECK(text == prompt + generated);

  // Token-id prompts echo their decoded text.
  auto enc = Env().model.tokenizer->Encode(prompt, false);
  REQUIRE(enc.ok());
  Json ids_req = {{"prompt", *enc}, {"max_tokens", 2}, {"echo", true}, {"ignore_eos", true}};
  Reply ids = Post(port, "/v1/completions", ids_req.dump());
  REQUIRE(ids.status == 200);
  CHECK(absl::StartsWith(ids.json["choices"][0]["text"].get<std::string>(), prompt));
}

TEST_CASE("bad penalties and unsupported OpenAI fields are 400s naming the field") {
  const int port = Env().gateway->port();
  const std::pair<std::string, std::string> cases[] = {
      {R"({"prompt": "x", "frequency_penalty": 3})", "frequency_penalty"},
      {R"({"prompt": "x", "presence_penalty": -2.5})", "presence_penalty"},
      {R"({"prompt": "x", "repetition_penalty": 0})", "repetition_penalty"},
      {R"({"prompt": "x", "min_p": 2})", "min_p"},
      {R"({"prompt": "x", "logit_bias": {"x": 1}})", "logit_bias"},
      {R"({"prompt": "x", "logit_bias": {"5000": 1}})", "logit_bias"},  // vocab 1000
      {R"({"prompt": "x", "suffix": "tail"})", "suffix"},
      {R"({"prompt": "x", "best_of": 4})", "best_of"},
      {R"({"prompt": "x", "echo": true, "logprobs": 2})", "echo"},
  };
  for (const auto& [body, param] : cases) {
    INFO(body);
    Reply r = Post(port, "/v1/completions", body);
    CHECK(r.status == 400);
    CHECK(r.json["error"]["type"] == "invalid_request_error");
    CHECK(r.json["error"]["param"] == param);
  }
  const std::string msgs = R"("messages": [{"role": "user", "content": "x"}])";
  const std::pair<std::string, std::string> chat_cases[] = {
      {R"("response_format": {"type": "json_schema"})", "response_format"},
      {R"("tools": [{"type": "function", "function": {"name": "f"}}])", "tools"},
      {R"("tool_choice": "required")", "tool_choice"},
      {R"("frequency_penalty": -3)", "frequency_penalty"},
  };
  for (const auto& [fields, param] : chat_cases) {
    const std::string body = "{" + msgs + ", " + fields + "}";
    INFO(body);
    Reply r = Post(port, "/v1/chat/completions", body);
    CHECK(r.status == 400);
    CHECK(r.json["error"]["param"] == param);
  }
  Reply ok = Post(port, "/v1/chat/completions",
                  "{" + msgs + R"(, "max_tokens": 2, "response_format": {"type": "text"},
                  "tools": [], "tool_choice": "none"})");
  CHECK(ok.status == 200);
}

TEST_CASE("bad requests are 400s naming the field, in OpenAI's error shape") {
  const int port = Env().gateway->port();
  const std::pair<std::string, std::string> cases[] = {
      {R"({"prompt": "x", "max_tokens": "many"})", "max_tokens"},
      {R"({"prompt": "x", "temperature": []})", "temperature"},
      {R"({"prompt": {"a": 1}})", "prompt"},
      {R"({"prompt": [99999]})", "prompt"},  // outside the vocabulary (scheduler)
      {R"({"prompt": "x", "max_tokens": 5000})", "max_tokens"},  // over the context
      {R"({"prompt": "x", "n": "2"})", "n"},
      {R"({"prompt": "x", "stop": {"s": 1}})", "stop"},
      {R"({"prompt": "x", "logprobs": "yes"})", "logprobs"},
      {R"({"prompt": "x", "stream": 1})", "stream"},
      {R"({"prompt": "x)", "body"},
  };
  for (const auto& [body, param] : cases) {
    INFO(body);
    Reply r = Post(port, "/v1/completions", body);
    CHECK(r.status == 400);
    CHECK(r.json["error"]["type"] == "invalid_request_error");
    CHECK(r.json["error"]["param"] == param);
    CHECK(absl::StrContains(r.json["error"]["message"].get<std::string>(), param));
    CHECK(r.json["error"]["code"].is_null());
  }
  Reply chat = Post(port, "/v1/chat/completions", R"({"messages": [{"role": 1}]})");
  CHECK(chat.status == 400);
  CHECK(chat.json["error"]["param"] == "messages[0].role");

  Reply model = Post(port, "/v1/completions", R"({"prompt": "x", "model": "gpt-9"})");
  CHECK(model.status == 404);
  CHECK(model.json["error"]["code"] == "model_not_found");
  Reply route = Get(port, "/v1/nothing");
  CHECK(route.status == 404);
  CHECK(route.json["error"]["type"] == "not_found_error");

  Reply big = Post(port, "/v1/completions",
                   R"({"prompt": ")" + std::string(2 << 20, 'a') + R"("})");
  CHECK(big.status == 413);
  CHECK(big.json["error"]["param"] == "body");
}

TEST_CASE("/health and model routes answer 503 until ready") {
  HttpTestEnvOptions o;
  o.set_ready = false;
  auto env = StartHttpTestEnv(o);
  REQUIRE(env.ok());
  const int port = (*env)->gateway->port();
  CHECK(Get(port, "/health").status == 503);
  Reply r = Post(port, "/v1/completions", R"({"prompt": "x"})");
  CHECK(r.status == 503);
  CHECK(r.json["error"]["type"] == "service_unavailable");
  (*env)->SetReady();
  Reply h = Get(port, "/health");
  CHECK(h.status == 200);
  CHECK(h.json == Json{{"status", "ok"}});
  Reply m = Get(port, "/v1/models");
  CHECK(m.json["data"][0]["id"] == "tiny-qwen3-moe");
  (*env)->gateway->StopAccepting();
  CHECK(Get(port, "/health").status == 503);
}

TEST_CASE("an API key guards every route but /health and /metrics") {
  HttpTestEnvOptions o;
  o.api_key = "sekret";
  auto env = StartHttpTestEnv(o);
  REQUIRE(env.ok());
  const int port = (*env)->gateway->port();
  Reply no = Post(port, "/v1/completions", R"({"prompt": "x", "max_tokens": 1})");
  CHECK(no.status == 401);
  CHECK(no.json["error"]["code"] == "invalid_api_key");
  Reply yes = Post(port, "/v1/completions", R"({"prompt": "x", "max_tokens": 1})",
                   {{"Authorization", "Bearer sekret"}});
  CHECK(yes.status == 200);
  CHECK(Get(port, "/health").status == 200);
}

double MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      return std::stod(std::string(line.substr(series.size() + 1)));
    }
  }
  return -1;
}

TEST_CASE("/metrics exposes the vLLM names and counts finished requests") {
  const int port = Env().gateway->port();
  const std::string before = Get(port, "/metrics").body;
  for (const char* name :
       {"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
        "vllm:num_preemptions_total", "vllm:time_to_first_token_seconds",
        "vllm:time_per_output_token_seconds", "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds"}) {
    CHECK(absl::StrContains(before, absl::StrCat("# TYPE ", name, " ")));
  }
  const std::string lbl = "{model_name=\"tiny-qwen3-moe\"}";
  const std::string success = "vllm:request_success_total{model_name=\"tiny-qwen3-moe\","
                              "finished_reason=\"length\"}";
  const double gen0 = std::max(0.0, MetricValue(before, "vllm:generation_tokens_total" + lbl));
  const double ok0 = std::max(0.0, MetricValue(before, success));
  const double ttft0 =
      std::max(0.0, MetricValue(before, "vllm:time_to_first_token_seconds_count" + lbl));
  Reply r = Post(port, "/v1/completions",
                 R"({"prompt": "metrics", "max_tokens": 7, "ignore_eos": true})");
  REQUIRE(r.status == 200);
  // The running gauge is published after the step that finished the request.
  REQUIRE(Env().scheduler->WaitUntilIdle(absl::Seconds(5)));
  const std::string after = Get(port, "/metrics").body;
  CHECK(MetricValue(after, "vllm:generation_tokens_total" + lbl) == gen0 + 7);
  CHECK(MetricValue(after, success) == ok0 + 1);
  CHECK(MetricValue(after, "vllm:time_to_first_token_seconds_count" + lbl) == ttft0 + 1);
  CHECK(MetricValue(after, "vllm:num_requests_running" + lbl) == 0);
}

TEST_CASE("a client that disconnects mid-stream cancels its request") {
  const int port = Env().gateway->port();
  const int64_t aborted0 = Env().scheduler->GetStats().num_aborted;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  const std::string body =
      R"({"prompt": "Long story", "max_tokens": 1000, "stream": true, "ignore_eos": true})";
  const std::string http = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           "application/json\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(send(fd, http.data(), http.size(), 0) == static_cast<ssize_t>(http.size()));
  std::string got;
  char buf[4096];
  while (got.find("data: {") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    REQUIRE(n > 0);
    got.append(buf, n);
  }
  close(fd);
  // The request ends as aborted well before its 1000 tokens, and frees its blocks.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  scheduler::SchedulerStats st;
  do {
    absl::SleepFor(absl::Milliseconds(20));
    st = Env().scheduler->GetStats();
  } while (st.num_aborted == aborted0 && absl::Now() < deadline);
  CHECK(st.num_aborted == aborted0 + 1);
  CHECK(Env().scheduler->WaitUntilIdle(absl::Seconds(5)));
  st = Env().scheduler->GetStats();
  CHECK(st.num_free_kv_blocks == st.num_kv_blocks);
}

TEST_CASE("tokenize / detokenize round trip") {
  const int port = Env().gateway->port();
  Reply t = Post(port, "/tokenize", R"({"prompt": "Hello world", "return_token_strs": true})");
  REQUIRE(t.status == 200);
  CHECK(t.json["count"] == t.json["tokens"].size());
  CHECK(t.json["token_strs"].size() == t.json["tokens"].size());
  CHECK(t.json["max_model_len"] == 1024);
  Reply d = Post(port, "/detokenize", Json{{"tokens", t.json["tokens"]}}.dump());
  REQUIRE(d.status == 200);
  CHECK(absl::EndsWith(d.json["prompt"].get<std::string>(), "Hello world"));
  Reply bad = Post(port, "/detokenize", R"({"tokens": [1, "a"]})");
  CHECK(bad.status == 400);
  CHECK(bad.json["error"]["param"] == "tokens");
}

}  // namespace
}  // namespace moe::testing
