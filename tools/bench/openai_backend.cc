#include "tools/bench/openai_backend.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"
#include "tools/bench/sse_parser.h"

namespace moe::bench {
namespace {

constexpr size_t kMaxErrorBody = 300;

// Calls `on_expiry` once if Disarm() is not called within `timeout_s`. Exists because an
// httplib read timeout restarts with every byte, so it cannot bound a whole request.
class Watchdog {
 public:
  Watchdog(double timeout_s, std::function<void()> on_expiry)
      : thread_([this, timeout_s, on_expiry = std::move(on_expiry)] {
          std::unique_lock<std::mutex> lock(mu_);
          auto limit = std::chrono::duration<double>(timeout_s);
          if (!cv_.wait_for(lock, limit, [this] { return disarmed_; })) {
            fired_ = true;
            on_expiry();
          }
        }) {}
  ~Watchdog() {
    Disarm();
    thread_.join();
  }
  void Disarm() {
    std::lock_guard<std::mutex> lock(mu_);
    disarmed_ = true;
    cv_.notify_all();
  }
  bool fired() {
    std::lock_guard<std::mutex> lock(mu_);
    return fired_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace

absl::StatusOr<std::unique_ptr<OpenAiBackend>> OpenAiBackend::Create(const std::string& endpoint,
                                                                      const std::string& path) {
  absl::string_view rest = endpoint;
  if (absl::StartsWith(rest, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat("endpoint: https is not supported: ", endpoint));
  }
  absl::ConsumePrefix(&rest, "http://");
  absl::ConsumeSuffix(&rest, "/");
  size_t colon = rest.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(rest.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint: expected host:port or http://host:port, got '", endpoint, "'"));
  }
  return std::unique_ptr<OpenAiBackend>(
      new OpenAiBackend(std::string(rest.substr(0, colon)), port, path));
}

absl::Status OpenAiBackend::Generate(const BenchRequest& request, const GenerateOptions& options,
                                     StreamListener& listener) {
  nlohmann::json body = {
      {"model", options.model},
      {"max_tokens", request.output_len},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"ignore_eos", options.ignore_eos},
      {"temperature", 0.0},
  };
  if (!request.prompt_ids.empty()) {
    body["prompt"] = request.prompt_ids;
  } else {
    body["prompt"] = request.prompt_text;
  }

  httplib::Client client(host_, port_);
  auto timeout = std::chrono::duration<double>(options.timeout_s);
  client.set_connection_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  client.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));

  httplib::Request req;
  req.method = "POST";
  req.path = path_;
  req.headers = {{"Accept", "text/event-stream"}};
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();

  int status = 0;
  std::string error_body;
  SseParser parser;
  bool done = false;
  bool usage_seen = false;
  int chunks = 0;
  absl::Status stream_error;
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (status != 200) {
      error_body.append(data, std::min(len, kMaxErrorBody - std::min(error_body.size(), kMaxErrorBody)));
      return true;
    }
    for (std::string& event : parser.Feed(absl::string_view(data, len))) {
      if (done) continue;
      if (absl::StripAsciiWhitespace(event) == "[DONE]") {
        done = true;
        continue;
      }
      try {
        nlohmann::json j = nlohmann::json::parse(event);
        if (j.contains("error") && !j["error"].is_null()) {
          const auto& e = j["error"];
          std::string msg = e.is_object() && e.contains("message") && e["message"].is_string()
                                ? e["message"].get<std::string>()
                                : e.dump();
          stream_error = absl::InternalError(absl::StrCat("server error event: ", msg));
          return false;
        }
        if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
          const auto& c = j["choices"][0];
          if (c.contains("text") && c["text"].is_string() && !c["text"].get<std::string>().empty()) {
            ++chunks;
            listener.OnTokens(1);
          }
        }
        if (j.contains("usage") && j["usage"].is_object()) {
          const auto& u = j["usage"];
          listener.OnUsage(u.value("prompt_tokens", 0), u.value("completion_tokens", 0));
          usage_seen = true;
        }
      } catch (const nlohmann::json::exception& e) {
        stream_error = absl::DataLossError(
            absl::StrCat("bad SSE event '", event.substr(0, 80), "': ", e.what()));
        return false;
      }
    }
    return true;
  };

  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  bool sent;
  bool timed_out;
  auto start = std::chrono::steady_clock::now();
  {
    Watchdog watchdog(options.timeout_s, [&client] { client.stop(); });
    sent = client.send(req, res, err);
    watchdog.Disarm();
    timed_out = watchdog.fired();
  }
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat("timeout after ", options.timeout_s, " s"));
  }
  if (!stream_error.ok()) return stream_error;
  if (!sent) {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed >= 0.99 * options.timeout_s &&
        (err == httplib::Error::Read || err == httplib::Error::Connection ||
         err == httplib::Error::ConnectionTimeout)) {
      // A connect or read that waited out the whole timeout.
      return absl::DeadlineExceededError(
          absl::StrCat("timeout after ", options.timeout_s, " s (", httplib::to_string(err), ")"));
    }
    return absl::UnavailableError(
        absl::StrCat("HTTP request to ", host_, ":", port_, " failed: ", httplib::to_string(err)));
  }
  if (status != 200) {
    return absl::UnavailableError(absl::StrCat("HTTP ", status, ": ", error_body));
  }
  if (!done) return absl::DataLossError("stream ended without data: [DONE]");
  if (!usage_seen) listener.OnUsageMissing(chunks);
  return absl::OkStatus();
}

}  // namespace moe::bench
