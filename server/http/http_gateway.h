// The OpenAI-compatible HTTP/JSON listener (cpp-httplib) in front of the scheduler:
//   POST /v1/completions, POST /v1/chat/completions (JSON or SSE streaming)
//   GET  /v1/models, GET /health, GET /metrics (Prometheus text)
//   POST /tokenize, POST /detokenize (vLLM shapes)
// Errors use OpenAI's {"error": {...}} shape, unknown routes included (404); a known
// route asked with another method gets 405 with an Allow header, OPTIONS gets 204 with
// it; routes also answer with one trailing slash, and GET /v1/models/{id} retrieves the
// model. Bodies over max_body_bytes get 413, however they are encoded (chunked, gzip).
//
// Lifecycle: Start() binds the port at once, before the model is loaded: /health answers
// 503 and the model routes 503 until SetReady(). StopAccepting() (draining) turns them
// back to 503 while in-flight requests finish. Stop() closes the listener; streams still
// open end and cancel their requests.
//
// Thread safety: Start/SetReady/StopAccepting/Stop may be called from any thread;
// requests are served by a pool of workers (one per open connection; an SSE stream holds
// its worker until it ends): `num_threads` at start, growing on demand up to
// max(num_threads, max_num_seqs + max(16, max_num_seqs / 4)) once SetReady gives the
// scheduler (at most 4096), so every sequence the scheduler can run may be streamed.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/loader/model_config.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/scheduler.h"
#include "server/metrics/metrics.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace moe::server::http {

struct ServingState;
class WorkerPool;

struct HttpGatewayOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0: the OS picks one (see port())
  // The served model's name: /v1/models lists it, requests naming another model get 404.
  std::string model_name = "default";
  // Chat template source overriding the tokenizer's (vLLM's --chat-template FILE, read
  // by the caller); "" = the tokenizer's chat_template.
  std::string chat_template;
  // When set, every route but /health and /metrics needs "Authorization: Bearer <key>".
  std::string api_key;
  // CORS: "" = no CORS headers; "*" = any origin; else comma-separated origins. A request
  // whose Origin is allowed gets Access-Control-Allow-Origin (and, for a preflight, the
  // allowed methods and headers); others get no CORS headers (the browser blocks them).
  std::string allowed_origins;
  size_t max_body_bytes = 8 << 20;
  // Workers started at once; the pool grows past it up to the cap above.
  int num_threads = 64;
  // Tokens a stream may buffer for a slow client before it is cancelled
  // (RequestHandle::set_max_buffered_tokens); 0 = unbounded.
  int max_stream_buffer_tokens = 4096;
  // Prompts longer than this (in tokens) get 400 naming the prompt field; 0 = the
  // context is the only limit.
  int max_prompt_tokens = 0;
  // vLLM's --enable-auto-tool-choice / --tool-call-parser: chat requests with tools and
  // tool_choice "auto" get tool calls parsed from their completions (tool_call_parser.h);
  // without it such requests get 400. "hermes" is the only parser ("" = none chosen).
  bool enable_auto_tool_choice = false;
  std::string tool_call_parser;
  // PEM files: when both are set the listener speaks HTTPS only.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// What SetReady needs; everything must outlive the gateway (or the next Stop()).
struct HttpServingContext {
  scheduler::Scheduler* scheduler = nullptr;
  const engine::Tokenizer* tokenizer = nullptr;
  const engine::ModelConfig* config = nullptr;
};

class HttpGateway {
 public:
  // Binds and starts serving. `metrics` (may be null) must outlive the gateway; /metrics
  // answers 404 without it. Errors: UNAVAILABLE naming "http_port" when the port cannot
  // be bound; INVALID_ARGUMENT naming "chat_template" when the override does not parse,
  // or "tool_call_parser" when it is not "hermes" (or missing with
  // enable_auto_tool_choice).
  static absl::StatusOr<std::unique_ptr<HttpGateway>> Start(const HttpGatewayOptions& options,
                                                            Metrics* metrics);
  ~HttpGateway();  // Stop()
  HttpGateway(const HttpGateway&) = delete;
  HttpGateway& operator=(const HttpGateway&) = delete;

  // The model is loaded and the scheduler started: serve. INVALID_ARGUMENT if a field is
  // missing or the chat template does not parse.
  absl::Status SetReady(const HttpServingContext& ctx);
  // Draining: /health and new model requests answer 503; open streams continue.
  void StopAccepting();
  // Closes the listener and joins its threads. Idempotent.
  void Stop();

  int port() const { return port_; }

 private:
  HttpGateway() = default;
  // The CORS headers for `req` per options_.allowed_origins (none when it is empty or the
  // request has no allowed Origin).
  void AddCorsHeaders(const httplib::Request& req, httplib::Response& res) const;
  using BodyHandler = std::function<void(const ServingState&, const httplib::Request&,
                                         httplib::Response&)>;
  void RegisterRoutes();
  // A POST route (trailing slash optional) whose body is read with the size limit
  // (request_body.h), then handed to `handler` once the model is ready.
  void PostRoute(const std::string& path, BodyHandler handler);
  // The serving state, or null (503 sent) when not ready or draining.
  std::shared_ptr<const ServingState> Ready(httplib::Response& res) const;

  HttpGatewayOptions options_;
  Metrics* metrics_ = nullptr;
  std::unique_ptr<httplib::Server> server_;
  std::shared_ptr<WorkerPool> pool_;  // the listener's workers (see the header comment)
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> accepting_{true};

  mutable absl::Mutex mu_;
  std::shared_ptr<const ServingState> state_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace moe::server::http
