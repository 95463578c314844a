// moe.v1.Inference over gRPC's synchronous API: a thin adapter that validates a request,
// converts it to the scheduler's types, and streams the handle's events back. Domain
// errors (absl::Status) map 1:1 onto gRPC status codes.
//
// Thread safety: gRPC calls the RPC methods concurrently from its thread pool. Until
// SetReady() (the model is loaded) every RPC fails with UNAVAILABLE. SetReady is called
// once; the context it receives is immutable afterwards. StopAccepting() makes new
// Generate calls fail with UNAVAILABLE while streams in flight continue.
#pragma once

#include <atomic>
#include <cstdint>
#include <random>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "engine/model_runner.h"
#include "engine/tokenizer/tokenizer.h"
#include "moe/v1/inference.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "server/request_validation.h"

namespace moe::server {

struct ServingContext {
  const engine::ModelConfig* config = nullptr;
  const engine::Tokenizer* tokenizer = nullptr;  // may be null (token_ids only)
  scheduler::Scheduler* scheduler = nullptr;
  std::string device;
  int num_kv_blocks = 0;
  ModelLimits limits;
  // Tokens a stream may buffer for a slow client (RequestHandle::set_max_buffered_tokens).
  int max_stream_buffer_tokens = scheduler::kDefaultMaxBufferedTokens;
};

class InferenceService final : public moe::v1::Inference::Service {
 public:
  void SetReady(ServingContext ctx);
  // Every RPC then needs metadata "authorization: Bearer <key>" (UNAUTHENTICATED
  // otherwise). Call before the server starts; "" = no key.
  void SetApiKey(std::string key) { api_key_ = std::move(key); }
  void StopAccepting() { accepting_.store(false); }

  grpc::Status Generate(grpc::ServerContext* context, const moe::v1::GenerateRequest* request,
                        grpc::ServerWriter<moe::v1::GenerateResponse>* writer) override;
  grpc::Status Abort(grpc::ServerContext* context, const moe::v1::AbortRequest* request,
                     moe::v1::AbortResponse* response) override;
  grpc::Status ModelInfo(grpc::ServerContext* context, const moe::v1::ModelInfoRequest* request,
                         moe::v1::ModelInfoResponse* response) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const moe::v1::TokenizeRequest* request,
                        moe::v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context,
                          const moe::v1::DetokenizeRequest* request,
                          moe::v1::DetokenizeResponse* response) override;

 private:
  const ServingContext* Ready() const;
  bool Authorized(const grpc::ServerContext& context) const;
  uint64_t NextSeed();

  std::atomic<bool> ready_{false};
  std::atomic<bool> accepting_{true};
  ServingContext ctx_;  // written once before ready_ is set
  std::string api_key_;  // set before the server starts, then read-only
  absl::Mutex seed_mu_;
  std::mt19937_64 seed_rng_ ABSL_GUARDED_BY(seed_mu_){std::random_device{}()};
};

// absl::Status → grpc::Status (the codes share numbering).
grpc::Status ToGrpcStatus(const absl::Status& s);

}  // namespace moe::server
