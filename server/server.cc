#include "server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/loader/model_config.h"
#include "server/detokenizer_text_decoder.h"

namespace moe::server {
namespace {

constexpr char kServiceName[] = "moe.v1.Inference";

void SetHealth(grpc::Server* server, bool serving) {
  if (server == nullptr) return;
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);  // every service, "" included
  health->SetServingStatus(kServiceName, serving);
}

// Logs "loading weights: N%" at most every 10%.
std::function<void(size_t, size_t)> ProgressLogger() {
  auto last = std::make_shared<int>(-1);
  return [last](size_t done, size_t total) {
    const int pct = total == 0 ? 100 : static_cast<int>(100.0 * done / total);
    if (pct / 10 == *last / 10 && pct != 100) return;
    if (pct == *last) return;
    *last = pct;
    spdlog::info("loading weights: {}% ({:.1f} / {:.1f} MiB)", pct, done / 1048576.0,
                 total / 1048576.0);
  };
}

absl::StatusOr<std::string> ReadFile(const char* option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(option, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// MemAvailable from /proc/meminfo in bytes; 0 if unknown.
uint64_t MemAvailableBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

}  // namespace

absl::Status CheckCpuMemoryBudget(const ServerOptions& options) {
  if (options.device == "cuda") return absl::OkStatus();
  // With --device auto the weights may go to a GPU: only an explicit limit applies.
  if (options.device == "auto" && options.cpu_memory_limit_mb == 0) return absl::OkStatus();
  namespace fs = std::filesystem;
  std::error_code ec;
  uint64_t weight_bytes = 0;
  for (const auto& entry : fs::directory_iterator(options.model, ec)) {
    if (entry.path().extension() == ".safetensors") {
      const uintmax_t size = entry.file_size(ec);
      if (!ec) weight_bytes += size;
    }
  }
  if (ec) return absl::OkStatus();  // the loader reports a missing directory precisely
  uint64_t kv_bytes = static_cast<uint64_t>(options.kv_cache_mb) << 20;
  if (options.num_kv_blocks > 0) {
    auto config = engine::LoadModelConfig(options.model);
    if (!config.ok()) return absl::OkStatus();  // the loader reports it
    // K and V, fp32, 16 positions per block, every layer.
    kv_bytes = static_cast<uint64_t>(options.num_kv_blocks) * 16 * 2 * sizeof(float) *
               config->num_layers * config->kv_size();
  }
  const uint64_t need = weight_bytes + kv_bytes;
  uint64_t budget = static_cast<uint64_t>(options.cpu_memory_limit_mb) << 20;
  const char* what = "cpu_memory_limit_mb";
  if (budget == 0) {
    budget = MemAvailableBytes();
    what = "available memory (MemAvailable)";
    if (budget == 0) return absl::OkStatus();
  }
  if (need <= budget) return absl::OkStatus();
  const double mib = 1024.0 * 1024.0;
  return absl::ResourceExhaustedError(absl::StrFormat(
      "model too big for the memory budget: weights %.1f MiB (*.safetensors in %s) + KV "
      "cache %.1f MiB = %.1f MiB, but the %s is %.1f MiB (lower --kv-cache-mb / "
      "--num-kv-blocks or raise --cpu-memory-limit-mb)",
      weight_bytes / mib, options.model, kv_bytes / mib, need / mib, what, budget / mib));
}

absl::StatusOr<std::unique_ptr<Server>> Server::BuildAndStart(const ServerOptions& options,
                                                              ModelSource source) {
  if (absl::Status budget = CheckCpuMemoryBudget(options); !budget.ok()) return budget;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!options.tls_cert.empty()) {
    auto cert = ReadFile("tls_cert", options.tls_cert);
    if (!cert.ok()) return cert.status();
    auto key = ReadFile("tls_key", options.tls_key);
    if (!key.ok()) return key.status();
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({*key, *cert});
    credentials = grpc::SslServerCredentials(ssl);
  }
  std::unique_ptr<Server> s(new Server());
  const std::string model_name =
      options.served_model_name.empty() ? options.model : options.served_model_name;
  s->metrics_ = std::make_unique<Metrics>(model_name);
  s->service_.SetApiKey(options.api_key);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string listen = absl::StrCat(
      options.host.find(':') != std::string::npos ? absl::StrCat("[", options.host, "]")
                                                  : options.host,
      ":", options.grpc_port);
  builder.AddListeningPort(listen, credentials, &s->port_);
  builder.RegisterService(&s->service_);
  s->grpc_server_ = builder.BuildAndStart();
  if (s->grpc_server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("grpc_port: cannot listen on ", listen));
  }
  s->address_ = absl::StrCat(options.host, ":", s->port_);
  SetHealth(s->grpc_server_.get(), false);
  spdlog::info("gRPC{} listening on {} (health NOT_SERVING until the model is loaded)",
               options.tls_cert.empty() ? "" : " (TLS)", s->address_);

  if (options.http_port >= 0) {
    http::HttpGatewayOptions ho;
    ho.host = options.host;
    ho.port = options.http_port;
    ho.model_name = model_name;
    ho.api_key = options.api_key;
    ho.allowed_origins = options.allowed_origins;
    ho.max_body_bytes = static_cast<size_t>(options.max_body_mb) << 20;
    ho.max_stream_buffer_tokens = options.max_stream_buffer_tokens;
    ho.max_prompt_tokens = options.max_prompt_tokens;
    ho.enable_auto_tool_choice = options.enable_auto_tool_choice;
    ho.tool_call_parser = options.tool_call_parser;
    ho.tls_cert_file = options.tls_cert;
    ho.tls_key_file = options.tls_key;
    if (!options.chat_template.empty()) {
      std::ifstream in(options.chat_template);
      if (!in) {
        s->grpc_server_->Shutdown();
        return absl::NotFoundError(
            absl::StrCat("chat_template: cannot read ", options.chat_template));
      }
      std::stringstream ss;
      ss << in.rdbuf();
      ho.chat_template = ss.str();
    }
    auto gateway = http::HttpGateway::Start(ho, s->metrics_.get());
    if (!gateway.ok()) {
      s->grpc_server_->Shutdown();
      return gateway.status();
    }
    s->http_ = *std::move(gateway);
    spdlog::info("HTTP (OpenAI-compatible) listening on {}:{}", options.host, s->http_->port());
  }

  if (!source) {
    source = [model = options.model](const engine::LoadOptions& lo) {
      return engine::LoadModel(model, lo);
    };
  }
  Server* raw = s.get();
  s->loader_ = std::thread([raw, options, source] { raw->LoadAndServe(options, source); });
  return s;
}

void Server::LoadAndServe(ServerOptions options, ModelSource source) {
  engine::LoadOptions lo;
  absl::Status status;
  if (auto device = engine::ParseDeviceKind(options.device); device.ok()) {
    lo.device = *device;
  } else {
    status = device.status();
  }
  lo.runner.num_kv_blocks = options.num_kv_blocks;
  lo.runner.kv_cache_bytes = static_cast<size_t>(options.kv_cache_mb) << 20;
  lo.runner.num_threads = options.num_threads;
  lo.runner.dtype = options.dtype;
  lo.runner.gpu_memory_utilization = options.gpu_memory_utilization;
  lo.runner.offload.mode = options.offload;
  lo.runner.offload.expert_cache_gb = options.expert_cache_gb;
  lo.runner.offload.prefetch = options.prefetch;
  lo.runner.offload.prefetch_depth = options.prefetch_depth;
  lo.runner.offload.policy = options.expert_cache_policy;
  lo.progress = ProgressLogger();

  std::unique_ptr<engine::LoadedModel> model;
  if (status.ok()) {
    spdlog::info("loading model from {} (device {})", options.model, options.device);
    const absl::Time t0 = absl::Now();
    auto loaded = source(lo);
    if (loaded.ok()) {
      model = std::make_unique<engine::LoadedModel>(*std::move(loaded));
      spdlog::info("model loaded in {:.2f}s: {} ({} layers, {} experts, top-{}) on {}{}",
                   absl::ToDoubleSeconds(absl::Now() - t0), model->config.architecture_name,
                   model->config.num_layers, model->config.num_experts,
                   model->config.num_experts_per_tok, model->runner->device_name(),
                   model->device_reason.empty() ? "" : " (" + model->device_reason + ")");
    } else {
      status = loaded.status();
    }
  }

  std::unique_ptr<scheduler::Scheduler> sched;
  if (status.ok()) {
    scheduler::SchedulerOptions so;
    so.max_num_seqs = options.max_num_seqs;
    so.max_num_batched_tokens = options.max_num_batched_tokens;
    // ValidateServerOptions checked the name.
    so.scheduling_policy = scheduler::ParseSchedulingPolicy(options.scheduling_policy)
                               .value_or(scheduler::SchedulingPolicy::kFcfs);
    so.expert_aware_batching = options.expert_aware_batching;
    so.expert_aware_max_skips = options.expert_aware_max_skips;
    so.expert_aware_miss_cost_steps = options.expert_aware_miss_cost_steps;
    so.enable_prefix_caching = options.enable_prefix_caching;
    so.max_queue = options.max_queue;
    so.make_text_decoder = MakeDetokenizerFactory(model->tokenizer.get());
    so.on_request_finished = metrics_->SchedulerHook();
    sched = std::make_unique<scheduler::Scheduler>(model->runner.get(), so);
    status = sched->Start();
  }

  absl::MutexLock lock(&mu_);
  load_done_ = true;
  load_status_ = status;
  if (!status.ok()) {
    spdlog::error("model load failed: {}", status.ToString());
    return;
  }
  ServingContext ctx;
  ctx.config = &model->config;
  ctx.tokenizer = model->tokenizer.get();
  ctx.scheduler = sched.get();
  ctx.device = model->runner->device_name();
  ctx.num_kv_blocks = sched->GetStats().num_kv_blocks;
  ctx.limits.vocab_size = model->config.vocab_size;
  ctx.limits.context_length = sched->max_model_len();
  ctx.limits.max_prompt_tokens = options.max_prompt_tokens;
  ctx.max_stream_buffer_tokens = options.max_stream_buffer_tokens;
  model_ = std::move(model);
  scheduler_ = std::move(sched);
  if (shutting_down_) return;  // shutdown raced with loading: never go SERVING
  service_.SetReady(ctx);
  if (http_) {
    http::HttpServingContext hctx;
    hctx.scheduler = scheduler_.get();
    hctx.tokenizer = model_->tokenizer.get();
    hctx.config = &model_->config;
    if (absl::Status hs = http_->SetReady(hctx); !hs.ok()) {
      spdlog::error("HTTP gateway cannot serve: {}", hs.ToString());
    }
  }
  SetHealth(grpc_server_.get(), true);
  spdlog::info("serving on {} (health SERVING): {} KV blocks of {} tokens, max_num_seqs {}, "
               "max_num_batched_tokens {}, prefix caching {}, scheduling policy {}",
               address_, ctx.num_kv_blocks, scheduler_->kv_block_size(), options.max_num_seqs,
               options.max_num_batched_tokens, options.enable_prefix_caching ? "on" : "off",
               options.scheduling_policy);
}

absl::Status Server::WaitUntilReady(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&load_done_), timeout)) {
    return absl::DeadlineExceededError("model still loading");
  }
  return load_status_;
}

bool Server::load_done() const {
  absl::MutexLock lock(&mu_);
  return load_done_;
}

scheduler::Scheduler* Server::scheduler() {
  absl::MutexLock lock(&mu_);
  return scheduler_.get();
}

void Server::Shutdown(absl::Duration drain_timeout) {
  scheduler::Scheduler* sched = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    shutting_down_ = true;
  }
  SetHealth(grpc_server_.get(), false);
  service_.StopAccepting();
  if (http_) http_->StopAccepting();
  if (loader_.joinable()) loader_.join();  // a load in progress finishes first
  {
    absl::MutexLock lock(&mu_);
    sched = scheduler_.get();
  }
  if (sched != nullptr) {
    sched->StopAccepting();
    const auto s = sched->GetStats();
    if (s.num_running + s.num_waiting > 0) {
      spdlog::info("draining {} in-flight requests (up to {:.0f}s)",
                   s.num_running + s.num_waiting, absl::ToDoubleSeconds(drain_timeout));
    }
    if (!sched->WaitUntilIdle(drain_timeout)) {
      spdlog::warn("drain timeout: aborting the requests still in flight");
    }
    sched->Shutdown();  // aborts whatever is left; their streams end
  }
  if (http_) http_->Stop();
  // Streams have all received their final event; give handlers a moment to return.
  grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  spdlog::info("server stopped");
}

Server::~Server() {
  Shutdown(absl::ZeroDuration());
  http_.reset();  // before the scheduler and model it serves
  absl::MutexLock lock(&mu_);
  scheduler_.reset();  // joins the engine thread before the model goes away
  model_.reset();
}

}  // namespace moe::server
