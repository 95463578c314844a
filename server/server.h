// The serving process minus main(): binds the gRPC port at once (health NOT_SERVING),
// loads the model on a background thread (a progress line while weights load), then
// starts the scheduler and reports SERVING. Shutdown() drains gracefully.
//
// Thread safety: BuildAndStart, Shutdown and the destructor are called by the owner's
// thread; the accessors may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/model_loader.h"
#include "scheduler/scheduler.h"
#include "server/grpc_service.h"
#include "server/http/http_gateway.h"
#include "server/metrics/metrics.h"
#include "server/server_options.h"

namespace moe::server {

// Produces the model to serve. The default calls engine::LoadModel(options.model, ...);
// tests inject fakes or slow loaders.
using ModelSource =
    std::function<absl::StatusOr<engine::LoadedModel>(const engine::LoadOptions&)>;

// The CPU backend's startup check: weights (the *.safetensors files in the model
// directory) + the KV cache must fit in --cpu-memory-limit-mb, or in MemAvailable when
// no limit is set and the device is cpu. RESOURCE_EXHAUSTED naming both sizes.
absl::Status CheckCpuMemoryBudget(const ServerOptions& options);

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> BuildAndStart(const ServerOptions& options,
                                                               ModelSource source = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  const std::string& address() const { return address_; }  // "host:port"
  // The HTTP gateway's port; -1 when HTTP is disabled.
  int http_port() const { return http_ ? http_->port() : -1; }

  // Waits for the model load to end: OK once serving, its error if loading failed,
  // DEADLINE_EXCEEDED on timeout.
  absl::Status WaitUntilReady(absl::Duration timeout);
  // True once loading has ended (successfully or not).
  bool load_done() const;

  // Graceful stop: health NOT_SERVING, new requests UNAVAILABLE, in-flight requests
  // finish for up to `drain_timeout` and are then aborted, then gRPC stops. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

  // Null until the model is loaded.
  scheduler::Scheduler* scheduler();

 private:
  Server() = default;
  void LoadAndServe(ServerOptions options, ModelSource source);

  std::unique_ptr<Metrics> metrics_;
  InferenceService service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  std::string address_;
  std::thread loader_;

  mutable absl::Mutex mu_;
  bool load_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status load_status_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<engine::LoadedModel> model_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<scheduler::Scheduler> scheduler_ ABSL_GUARDED_BY(mu_);
  // Declared last: destroyed first, before the scheduler and model it serves.
  std::unique_ptr<http::HttpGateway> http_;
};

}  // namespace moe::server
