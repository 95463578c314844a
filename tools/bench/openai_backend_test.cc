// The OpenAI backend against a fake OpenAI-compatible server on 127.0.0.1 (port 0),
// driven through the runner as the benchmark drives it.
#include "tools/bench/openai_backend.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>

#include "nlohmann/json.hpp"
#include "tools/bench/metrics.h"
#include "tools/bench/runner.h"

namespace moe::bench {
namespace {

constexpr int kFakePromptTokens = 7;  // what the fake's usage reports, whatever the prompt

std::string Event(const nlohmann::json& j) { return "data: " + j.dump() + "\n\n"; }

nlohmann::json TextChunk(const std::string& text) {
  return {{"id", "cmpl-1"},
          {"object", "text_completion"},
          {"choices", {{{"index", 0}, {"text", text}, {"finish_reason", nullptr}}}},
          {"usage", nullptr}};
}

// Behaviour by prompt: "fail" -> HTTP 500; "stall" -> one token then silence;
// "error-event" -> an error object in the stream; "no-usage" -> no usage chunk;
// anything else -> an empty chunk, max_tokens one-token chunks, usage, [DONE].
class FakeOpenAiServer {
 public:
  FakeOpenAiServer() {
    server_.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      nlohmann::json body = nlohmann::json::parse(req.body);
      {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(body);
      }
      std::string prompt = body["prompt"].is_string() ? body["prompt"].get<std::string>() : "ids";
      int max_tokens = body["max_tokens"];
      if (prompt == "fail") {
        res.status = 500;
        res.set_content("{\"error\": \"injected failure\"}", "application/json");
        return;
      }
      res.set_chunked_content_provider(
          "text/event-stream", [this, prompt, max_tokens](size_t, httplib::DataSink& sink) {
            auto send = [&](const std::string& s) { sink.write(s.data(), s.size()); };
            if (prompt == "stall") {
              send(Event(TextChunk(" first")));
              for (int i = 0; i < 200 && sink.is_writable() && !stopping_; ++i) {  // 10 s
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
              }
              sink.done();
              return true;
            }
            if (prompt == "error-event") {
              send(Event(TextChunk(" a")));
              send(Event({{"error", {{"message", "boom"}, {"type", "server_error"}}}}));
              sink.done();
              return true;
            }
            send(Event(TextChunk("")));  // empty first chunk: not a token
            for (int i = 0; i < max_tokens; ++i) {
              std::this_thread::sleep_for(std::chrono::milliseconds(5));
              send(Event(TextChunk(" tok")));
            }
            if (prompt != "no-usage") {
              send(Event({{"id", "cmpl-1"},
                          {"choices", nlohmann::json::array()},
                          {"usage",
                           {{"prompt_tokens", kFakePromptTokens},
                            {"completion_tokens", max_tokens},
                            {"total_tokens", kFakePromptTokens + max_tokens}}}}));
            }
            send("data: [DONE]\n\n");
            sink.done();
            return true;
          });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeOpenAiServer() {
    stopping_ = true;
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<nlohmann::json> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<nlohmann::json> bodies_;
};

BenchRequest Text(int index, const std::string& prompt, int output_len) {
  BenchRequest r;
  r.index = index;
  r.prompt_text = prompt;
  r.prompt_len = 3;
  r.output_len = output_len;
  return r;
}

TEST_CASE("OpenAI backend: successes, HTTP 500, error events and timeouts add up",
          "[openai]") {
  FakeOpenAiServer server;
  auto backend = OpenAiBackend::Create("127.0.0.1:" + std::to_string(server.port()));
  REQUIRE(backend.ok());

  std::vector<BenchRequest> requests = {
      Text(0, "hello there", 5), Text(1, "fail", 5),        Text(2, "again", 3),
      Text(3, "stall", 5),       Text(4, "error-event", 5), Text(5, "no-usage", 4),
  };
  BenchRequest ids;
  ids.index = 6;
  ids.prompt_ids = {101, 102, 103};
  ids.prompt_len = 3;
  ids.output_len = 2;
  requests.push_back(ids);

  RunOptions o;
  o.arrivals.request_rate = std::numeric_limits<double>::infinity();
  o.generate.model = "fake-model";
  o.generate.ignore_eos = true;
  // Generous: a loaded CI machine must not time out the healthy requests.
  o.generate.timeout_s = 2.0;
  auto t0 = std::chrono::steady_clock::now();
  auto result = RunBenchmark(**backend, requests, o);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(result.ok());
  const auto& rec = result->records;
  REQUIRE(rec.size() == requests.size());

  // Successful streams: counts from the server's usage, TTFT at the first non-empty chunk.
  for (int i : {0, 2, 6}) {
    INFO("request " << i);
    CHECK(rec[i].ok);
    CHECK(rec[i].prompt_tokens == kFakePromptTokens);
    CHECK(rec[i].output_tokens == requests[i].output_len);
    CHECK(rec[i].usage_from_server);
    CHECK(rec[i].itl_s.size() == static_cast<size_t>(requests[i].output_len - 1));
    CHECK(rec[i].ttft_s >= 0.004);  // the first token chunk comes after a 5 ms pause
    CHECK(rec[i].latency_s >= rec[i].ttft_s);
  }
  // A server without usage: accepted, counted from the chunks, and marked.
  CHECK(rec[5].ok);
  CHECK_FALSE(rec[5].usage_from_server);
  CHECK(rec[5].output_tokens == 4);

  CHECK_FALSE(rec[1].ok);
  CHECK(rec[1].error.find("HTTP 500") != std::string::npos);
  CHECK(rec[1].error.find("injected failure") != std::string::npos);
  CHECK_FALSE(rec[3].ok);
  CHECK(rec[3].error.find("timeout") != std::string::npos);
  CHECK(rec[3].latency_s < 6.0);  // cut at the timeout, not when the server gives up (10 s)
  CHECK(wall < 8.0);
  CHECK_FALSE(rec[4].ok);
  CHECK(rec[4].error.find("boom") != std::string::npos);

  Summary s = Summarize(rec, result->duration_s, {}, SloTargets{});
  CHECK(s.completed == 4);
  CHECK(s.failed == 3);
  CHECK(s.completed + s.failed == static_cast<int>(requests.size()));
  CHECK(s.total_output_tokens == 5 + 3 + 4 + 2);
  CHECK(s.requests_without_usage == 1);

  // The wire format: what vLLM and llama.cpp expect.
  bool saw_ids = false;
  for (const nlohmann::json& b : server.bodies()) {
    CHECK(b["model"] == "fake-model");
    CHECK(b["stream"] == true);
    CHECK(b["stream_options"]["include_usage"] == true);
    CHECK(b["ignore_eos"] == true);
    CHECK(b["temperature"] == 0.0);
    CHECK(b.contains("max_tokens"));
    if (b["prompt"].is_array()) {
      saw_ids = true;
      CHECK(b["prompt"] == nlohmann::json({101, 102, 103}));
    }
  }
  CHECK(saw_ids);
}

TEST_CASE("OpenAI backend: an unreachable server fails with the reason", "[openai]") {
  // A port that was free a moment ago: bind to port 0, read the port, close.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  int port = ntohs(addr.sin_port);
  close(fd);
  auto backend = OpenAiBackend::Create("http://127.0.0.1:" + std::to_string(port) + "/");
  REQUIRE(backend.ok());
  RunOptions o;
  o.arrivals.request_rate = std::numeric_limits<double>::infinity();
  o.generate.timeout_s = 2.0;
  auto result = RunBenchmark(**backend, {Text(0, "hi", 2)}, o);
  REQUIRE(result.ok());
  INFO(result->records[0].error);
  CHECK_FALSE(result->records[0].ok);
  CHECK(result->records[0].error.find("HTTP request to 127.0.0.1") != std::string::npos);
}

TEST_CASE("OpenAI endpoints are parsed or rejected with the flag named", "[openai]") {
  CHECK(OpenAiBackend::Create("localhost:8000").ok());
  CHECK(OpenAiBackend::Create("http://10.0.0.1:8000").ok());
  auto bad = OpenAiBackend::Create("localhost");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("endpoint") != std::string::npos);
  CHECK_FALSE(OpenAiBackend::Create("https://x:1").ok());
}

}  // namespace
}  // namespace moe::bench
