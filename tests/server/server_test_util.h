// Helpers for the server integration tests: an in-process Server on an OS-chosen
// loopback port serving a tiny checkpoint from tests/data/models, and a blocking client.
//
// Thread safety: a TestServer is driven by the test thread; Stream() may run on many
// threads at once (each with its own ClientContext).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/time/time.h"
#include "engine/model_loader.h"
#include "moe/v1/inference.grpc.pb.h"
#include "server/server.h"

namespace moe::server::testing {

// The tiny OLMoE checkpoint (vocab 1000, context 1024, eos 0), relative to the runfiles
// root (Bazel's test working directory).
inline constexpr char kTinyModel[] = "tests/data/models/olmoe";

ServerOptions TinyModelOptions();  // cpu, 127.0.0.1, ports 0, 512 KV blocks, 1 thread

// Wraps a runner, sleeping before every step: makes streams long enough to cancel, and
// queues fill up.
class SlowRunner : public engine::ModelRunner {
 public:
  SlowRunner(std::unique_ptr<engine::ModelRunner> inner, absl::Duration delay)
      : inner_(std::move(inner)), delay_(delay) {}
  const engine::ModelConfig& config() const override { return inner_->config(); }
  int kv_block_size() const override { return inner_->kv_block_size(); }
  int num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  std::string device_name() const override { return inner_->device_name(); }
  absl::Status Forward(const engine::ForwardBatch& b, engine::ForwardResult* out) override {
    absl::SleepFor(delay_);
    return inner_->Forward(b, out);
  }

 private:
  std::unique_ptr<engine::ModelRunner> inner_;
  absl::Duration delay_;
};

ModelSource SlowModelSource(absl::Duration delay);

struct TestServer {
  std::unique_ptr<Server> server;
  std::unique_ptr<moe::v1::Inference::Stub> stub;
  std::shared_ptr<grpc::Channel> channel;
};
// Starts a server (REQUIREs success) and, when `wait_ready`, waits for the model.
TestServer StartServer(const ServerOptions& options, ModelSource source = {},
                       bool wait_ready = true);

struct StreamResult {
  std::vector<int32_t> tokens;
  std::string text;
  int chunks = 0;
  std::vector<moe::v1::TokenLogprobs> logprobs;
  bool has_complete = false;
  moe::v1::Complete complete;
  grpc::Status status;
};
// Runs one Generate to the end. `on_chunk(n, ctx)` is called after the n-th chunk
// (1-based) and may cancel `ctx`.
StreamResult Stream(moe::v1::Inference::Stub& stub, const moe::v1::GenerateRequest& req,
                    const std::function<void(int, grpc::ClientContext&)>& on_chunk = {});

moe::v1::GenerateRequest GreedyIds(const std::vector<int32_t>& prompt, int max_tokens);
std::vector<int32_t> TestPrompt(int len, int salt);

// Polls until the scheduler has nothing in flight and every KV block is free.
bool WaitForAllBlocksFree(Server& server, absl::Duration timeout);

}  // namespace moe::server::testing
