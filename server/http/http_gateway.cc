#include "server/http/http_gateway.h"

#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include <httplib.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/chat_template/chat_template.h"
#include "server/http/handlers.h"
#include "server/http/request_body.h"
#include "server/http/worker_pool.h"

namespace moe::server::http {
namespace {

// Upper bound on HTTP workers whatever max_num_seqs is.
constexpr int kMaxHttpWorkers = 4096;

// What httplib owns (and deletes after listening): a handle on the gateway's pool, which
// the gateway keeps so SetReady can raise its cap.
class SharedTaskQueue : public httplib::TaskQueue {
 public:
  explicit SharedTaskQueue(std::shared_ptr<WorkerPool> pool) : pool_(std::move(pool)) {}
  void enqueue(std::function<void()> fn) override { pool_->enqueue(std::move(fn)); }
  void shutdown() override { pool_->shutdown(); }

 private:
  std::shared_ptr<WorkerPool> pool_;
};

constexpr int kListenBacklog = 4096;

bool IsOpenRoute(const std::string& path) { return path == "/health" || path == "/metrics"; }

// Keep-alive requests per connection before httplib closes it (its default is 5).
constexpr size_t kKeepAliveMaxRequests = 1000;

// A route's path pattern: the path, with or without one trailing slash.
std::string Route(const std::string& path) { return path + "/?"; }

// The methods a path answers to ("" for an unknown path), for 405 and OPTIONS.
std::string AllowedMethods(std::string path) {
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  for (const char* post : {"/v1/completions", "/v1/chat/completions", "/tokenize",
                           "/detokenize"}) {
    if (path == post) return "POST, OPTIONS";
  }
  if (path == "/v1/models" || path == "/health" || path == "/metrics" ||
      absl::StartsWith(path, "/v1/models/")) {
    return "GET, HEAD, OPTIONS";
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpGateway>> HttpGateway::Start(const HttpGatewayOptions& options,
                                                                Metrics* metrics) {
  if (!options.chat_template.empty()) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(options.chat_template);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("chat_template: ", t.status().message()));
    }
  }
  if (!options.tool_call_parser.empty() && options.tool_call_parser != "hermes") {
    return absl::InvalidArgumentError(absl::StrCat("tool_call_parser: unknown parser \"",
                                                   options.tool_call_parser,
                                                   "\"; the only one is hermes"));
  }
  if (options.enable_auto_tool_choice && options.tool_call_parser.empty()) {
    return absl::InvalidArgumentError(
        "tool_call_parser: --enable-auto-tool-choice requires --tool-call-parser hermes");
  }
  std::unique_ptr<HttpGateway> g(new HttpGateway());
  g->options_ = options;
  g->metrics_ = metrics;
  if (!options.tls_cert_file.empty()) {
    auto ssl = std::make_unique<httplib::SSLServer>(options.tls_cert_file.c_str(),
                                                    options.tls_key_file.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tls_cert: cannot load the certificate ", options.tls_cert_file,
                       " with the key ", options.tls_key_file,
                       " (PEM files, key matching the certificate)"));
    }
    g->server_ = std::move(ssl);
  } else {
    g->server_ = std::make_unique<httplib::Server>();
  }
  const int threads = std::max(1, options.num_threads);
  g->pool_ = std::make_shared<WorkerPool>(threads, threads);
  g->server_->new_task_queue = [pool = g->pool_] { return new SharedTaskQueue(pool); };
  g->server_->set_payload_max_length(options.max_body_bytes);
  g->server_->set_keep_alive_max_count(kKeepAliveMaxRequests);
  // "Expect: 100-continue" with a body over the limit: refuse before the client sends it.
  g->server_->set_expect_100_continue_handler(
      [limit = options.max_body_bytes](const httplib::Request& req, httplib::Response& res) {
        uint64_t declared = 0;
        if (absl::SimpleAtoi(req.get_header_value("Content-Length"), &declared) &&
            declared > limit) {
          res.set_header("Connection", "close");
          SendError(res, MakeApiError(413, "invalid_request_error",
                                      absl::StrCat("body: request body exceeds the server's "
                                                   "size limit of ", limit, " bytes"),
                                      "body"));
          return 413;
        }
        return 100;
      });
  // Debian's compiled cpp-httplib listens with a backlog of 5: under a burst of new
  // connections the kernel then drops handshakes and clients see read errors. Remember
  // the listening socket so the backlog can be raised once it is bound.
  auto listen_fd = std::make_shared<std::atomic<int>>(-1);
  g->server_->set_socket_options([listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd->store(sock);
  });
  g->RegisterRoutes();

  if (options.port == 0) {
    g->port_ = g->server_->bind_to_any_port(options.host);
    if (g->port_ <= 0) g->port_ = 0;
  } else if (g->server_->bind_to_port(options.host, options.port)) {
    g->port_ = options.port;
  }
  if (g->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("http_port: cannot listen on ", options.host, ":", options.port));
  }
  // listen() on a listening socket only changes its backlog (capped by somaxconn).
  if (listen_fd->load() >= 0) ::listen(listen_fd->load(), kListenBacklog);
  httplib::Server* server = g->server_.get();
  g->thread_ = std::thread([server] { server->listen_after_bind(); });
  // httplib's stop() does nothing until the listener loop has started, so a Stop() right
  // after Start() could leave the thread listening and the join hanging: wait for the loop.
  for (int i = 0; i < 5000 && !server->is_running(); ++i) absl::SleepFor(absl::Milliseconds(1));
  return g;
}

HttpGateway::~HttpGateway() { Stop(); }

absl::Status HttpGateway::SetReady(const HttpServingContext& ctx) {
  if (ctx.scheduler == nullptr) return absl::InvalidArgumentError("scheduler: required");
  if (ctx.tokenizer == nullptr) return absl::InvalidArgumentError("tokenizer: required");
  if (ctx.config == nullptr) return absl::InvalidArgumentError("config: required");
  auto state = std::make_shared<ServingState>();
  state->scheduler = ctx.scheduler;
  state->tokenizer = ctx.tokenizer;
  state->config = ctx.config;
  state->model_name = options_.model_name;
  state->metrics = metrics_;
  state->max_stream_buffer_tokens = options_.max_stream_buffer_tokens;
  state->max_prompt_tokens = options_.max_prompt_tokens;
  state->enable_auto_tool_choice = options_.enable_auto_tool_choice;
  state->token_tries = std::make_shared<engine::sampling::TokenTrieCache>(ctx.tokenizer);
  absl::StatusOr<std::unique_ptr<PromptBuilder>> prompts =
      PromptBuilder::Create(ctx.tokenizer, options_.chat_template);
  if (!prompts.ok()) return prompts.status();
  state->prompts = *std::move(prompts);
  // Every sequence the engine runs at once may be an open stream holding a worker; keep
  // some workers for the other routes (health checks, metrics, non-streaming calls).
  const int seqs = ctx.scheduler->max_num_seqs();
  pool_->set_max_threads(std::min(kMaxHttpWorkers, seqs + std::max(16, seqs / 4)));
  absl::MutexLock lock(&mu_);
  state_ = std::move(state);
  return absl::OkStatus();
}

void HttpGateway::StopAccepting() { accepting_ = false; }

void HttpGateway::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  accepting_ = false;
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const ServingState> HttpGateway::Ready(httplib::Response& res) const {
  std::shared_ptr<const ServingState> s;
  {
    absl::MutexLock lock(&mu_);
    s = state_;
  }
  if (s == nullptr) {
    SendError(res, MakeApiError(503, "service_unavailable", "the model is still loading"));
    return nullptr;
  }
  if (!accepting_) {
    SendError(res, MakeApiError(503, "service_unavailable", "the server is shutting down"));
    return nullptr;
  }
  return s;
}

void HttpGateway::AddCorsHeaders(const httplib::Request& req, httplib::Response& res) const {
  if (options_.allowed_origins.empty() || !req.has_header("Origin")) return;
  const std::string origin = req.get_header_value("Origin");
  bool any = false, listed = false;
  for (absl::string_view o : absl::StrSplit(options_.allowed_origins, ',', absl::SkipWhitespace())) {
    o = absl::StripAsciiWhitespace(o);
    if (o == "*") any = true;
    if (o == origin) listed = true;
  }
  if (!any && !listed) return;
  res.set_header("Access-Control-Allow-Origin", listed ? origin : "*");
  if (listed) res.set_header("Vary", "Origin");
  if (req.method == "OPTIONS") {
    const std::string allowed = AllowedMethods(req.path);
    if (!allowed.empty()) res.set_header("Access-Control-Allow-Methods", allowed);
    const std::string asked = req.get_header_value("Access-Control-Request-Headers");
    res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
    res.set_header("Access-Control-Max-Age", "600");
  }
}

void HttpGateway::RegisterRoutes() {
  httplib::Server& svr = *server_;
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    AddCorsHeaders(req, res);
    // OPTIONS carries no credentials (browsers' CORS preflights never do).
    if (options_.api_key.empty() || IsOpenRoute(req.path) || req.method == "OPTIONS") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    if (auth == absl::StrCat("Bearer ", options_.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    ApiError e = MakeApiError(401, "invalid_request_error",
                              "Incorrect API key provided: send \"Authorization: Bearer <key>\"");
    e.code = "invalid_api_key";
    SendError(res, e);
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses set by httplib itself (404 route, 413 body too large, 400 malformed
  // request) get an OpenAI-shaped body.
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string allowed = AllowedMethods(req.path);
    if (res.status == 404 && !allowed.empty()) {
      res.set_header("Allow", allowed);
      SendError(res, MakeApiError(405, "invalid_request_error",
                                  absl::StrCat("method ", req.method, " is not allowed on ",
                                               req.path, "; use ", allowed)));
    } else if (res.status == 404) {
      SendError(res, MakeApiError(404, "not_found_error",
                                  absl::StrCat("no route for ", req.method, " ", req.path)));
    } else if (res.status == 413) {
      SendError(res, MakeApiError(413, "invalid_request_error",
                                  "body: request body exceeds the server's size limit",
                                  "body"));
    } else {
      SendError(res, MakeApiError(res.status, "invalid_request_error",
                                  absl::StrCat("HTTP error ", res.status)));
    }
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(res, MakeApiError(500, "internal_server_error", what));
      });

  // CORS preflights and OPTIONS probes: which methods a route takes.
  svr.Options(".*", [](const httplib::Request& req, httplib::Response& res) {
    const std::string allowed = AllowedMethods(req.path);
    if (allowed.empty()) {
      SendError(res, MakeApiError(404, "not_found_error",
                                  absl::StrCat("no route for OPTIONS ", req.path)));
      return;
    }
    res.status = 204;
    res.set_header("Allow", allowed);
  });
  svr.Get(Route("/health"), [this](const httplib::Request&, httplib::Response& res) {
    bool ready = false;
    {
      absl::MutexLock lock(&mu_);
      ready = state_ != nullptr;
    }
    if (ready && accepting_) {
      SendJson(res, 200, R"({"status":"ok"})");
    } else {
      SendJson(res, 503, ready ? R"({"status":"draining"})" : R"({"status":"loading"})");
    }
  });
  svr.Get(Route("/metrics"), [this](const httplib::Request&, httplib::Response& res) {
    if (metrics_ == nullptr) {
      SendError(res, MakeApiError(404, "not_found_error", "metrics are disabled"));
      return;
    }
    std::shared_ptr<const ServingState> s;
    {
      absl::MutexLock lock(&mu_);
      s = state_;
    }
    scheduler::SchedulerStats stats;
    if (s != nullptr) stats = s->scheduler->GetStats();
    res.set_content(metrics_->Render(s != nullptr ? &stats : nullptr),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  svr.Get(Route("/v1/models"), [this](const httplib::Request&, httplib::Response& res) {
    if (auto s = Ready(res)) HandleModels(*s, res);
  });
  svr.Get(R"(/v1/models/(.+?)/?)", [this](const httplib::Request& req, httplib::Response& res) {
    if (auto s = Ready(res)) HandleModel(*s, req.matches[1].str(), res);
  });
  PostRoute("/v1/completions", [](const ServingState& s, const httplib::Request& req,
                                  httplib::Response& res) {
    HandleGenerate(s, ApiKind::kCompletion, req, res);
  });
  PostRoute("/v1/chat/completions", [](const ServingState& s, const httplib::Request& req,
                                       httplib::Response& res) {
    HandleGenerate(s, ApiKind::kChat, req, res);
  });
  PostRoute("/tokenize", HandleTokenize);
  PostRoute("/detokenize", HandleDetokenize);
}

void HttpGateway::PostRoute(const std::string& path, BodyHandler handler) {
  server_->Post(Route(path), [this, handler](const httplib::Request& req, httplib::Response& res,
                                             const httplib::ContentReader& reader) {
    // The body is read whatever follows, so a keep-alive connection stays in step.
    httplib::Request with_body = req;
    const absl::Status read =
        ReadLimitedBody(req, reader, options_.max_body_bytes, &with_body.body);
    if (!read.ok()) {
      // The rest of the body may be unread: the connection cannot carry another request.
      res.set_header("Connection", "close");
      if (read.code() == absl::StatusCode::kResourceExhausted) {
        return SendError(res, MakeApiError(413, "invalid_request_error",
                                           std::string(read.message()), "body"));
      }
      if (read.code() == absl::StatusCode::kUnimplemented) {
        return SendError(res, MakeApiError(415, "invalid_request_error",
                                           std::string(read.message()), "body"));
      }
      return SendError(res, ApiErrorFromStatus(read));
    }
    if (auto s = Ready(res)) handler(*s, with_body, res);
  });
}

}  // namespace moe::server::http
