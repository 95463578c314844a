// The gRPC backend against a fake moe.v1.Inference service on 127.0.0.1 (port 0),
// driven through the runner as the benchmark drives it. The real server's end-to-end
// run belongs with the server's tests.
#include "tools/bench/grpc_backend.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <limits>
#include <thread>

#include <catch2/catch.hpp>

#include "moe/v1/inference.grpc.pb.h"
#include "tools/bench/metrics.h"
#include "tools/bench/runner.h"

namespace moe::bench {
namespace {

enum Behaviour { kNormal = 1, kQueueFull = 2, kStall = 3, kErrorMessage = 4, kAbort = 5 };

// The first prompt id picks the behaviour.
class FakeInference final : public moe::v1::Inference::Service {
 public:
  grpc::Status Generate(grpc::ServerContext* ctx, const moe::v1::GenerateRequest* req,
                        grpc::ServerWriter<moe::v1::GenerateResponse>* writer) override {
    int behaviour = req->token_ids().ids(0);
    int max_tokens = req->sampling().max_tokens();
    if (!req->sampling().ignore_eos()) return {grpc::StatusCode::INVALID_ARGUMENT, "want ignore_eos"};
    moe::v1::GenerateResponse resp;
    resp.set_request_id(req->request_id());
    if (behaviour == kQueueFull) return {grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"};
    if (behaviour == kStall) {
      while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return grpc::Status::CANCELLED;
    }
    if (behaviour == kErrorMessage) {
      resp.mutable_error()->set_code(13);
      resp.mutable_error()->set_message("engine exploded");
      writer->Write(resp);
      return grpc::Status::OK;
    }
    // Tokens: an empty chunk (incomplete UTF-8), then one chunk of 2 tokens, then 1 each.
    resp.mutable_chunk();
    writer->Write(resp);
    int sent = 0;
    while (sent < max_tokens) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
      resp.mutable_chunk()->clear_token_ids();
      int n = sent == 0 && max_tokens >= 2 ? 2 : 1;
      for (int i = 0; i < n; ++i) resp.mutable_chunk()->add_token_ids(500 + sent + i);
      sent += n;
      writer->Write(resp);
    }
    moe::v1::Complete* c = resp.mutable_complete();
    c->set_finish_reason(behaviour == kAbort ? moe::v1::FINISH_REASON_ABORT
                                             : moe::v1::FINISH_REASON_LENGTH);
    c->set_prompt_tokens(req->token_ids().ids_size());
    c->set_completion_tokens(sent);
    writer->Write(resp);
    return grpc::Status::OK;
  }

  grpc::Status ModelInfo(grpc::ServerContext*, const moe::v1::ModelInfoRequest*,
                         moe::v1::ModelInfoResponse* resp) override {
    resp->set_vocab_size(4242);
    return grpc::Status::OK;
  }
};

BenchRequest Ids(int index, int behaviour, int prompt_len, int output_len) {
  BenchRequest r;
  r.index = index;
  r.prompt_ids.assign(prompt_len, 200);
  r.prompt_ids[0] = behaviour;
  r.prompt_len = prompt_len;
  r.output_len = output_len;
  return r;
}

TEST_CASE("gRPC backend: successes, server errors, aborts and timeouts add up", "[grpc]") {
  FakeInference service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  REQUIRE(server != nullptr);
  REQUIRE(port > 0);

  auto backend = GrpcBackend::Create("127.0.0.1:" + std::to_string(port));
  absl::StatusOr<int> vocab = backend->VocabSize(5.0);
  REQUIRE(vocab.ok());
  CHECK(*vocab == 4242);

  std::vector<BenchRequest> requests = {
      Ids(0, kNormal, 12, 6),      Ids(1, kQueueFull, 4, 6), Ids(2, kNormal, 5, 1),
      Ids(3, kStall, 4, 6),        Ids(4, kErrorMessage, 4, 6), Ids(5, kAbort, 4, 3),
      Ids(6, kNormal, 8, 4),
  };
  RunOptions o;
  o.arrivals.request_rate = std::numeric_limits<double>::infinity();
  o.max_concurrency = 4;
  o.generate.ignore_eos = true;
  o.generate.timeout_s = 2.0;  // generous: a loaded CI machine must not time out the rest
  auto result = RunBenchmark(*backend, requests, o);
  REQUIRE(result.ok());
  const auto& rec = result->records;
  REQUIRE(rec.size() == requests.size());

  for (int i : {0, 2, 6}) {
    INFO("request " << i << ": " << rec[i].error);
    CHECK(rec[i].ok);
    CHECK(rec[i].prompt_tokens == requests[i].prompt_len);
    CHECK(rec[i].output_tokens == requests[i].output_len);
    CHECK(rec[i].ttft_s > 0.0);
  }
  // 6 tokens arrive as chunks of 2, 1, 1, 1, 1: five token chunks, four gaps.
  CHECK(rec[0].chunk_tokens == std::vector<int>{2, 1, 1, 1, 1});
  CHECK(rec[0].itl_s.size() == 4);
  CHECK(rec[2].itl_s.empty());

  CHECK_FALSE(rec[1].ok);
  CHECK(rec[1].error.find("RESOURCE_EXHAUSTED") != std::string::npos);
  CHECK(rec[1].error.find("queue full") != std::string::npos);
  CHECK_FALSE(rec[3].ok);
  CHECK(rec[3].error.find("timeout") != std::string::npos);
  CHECK(rec[3].latency_s < 6.0);  // ended by the client timeout (the server never ends it)
  CHECK_FALSE(rec[4].ok);
  CHECK(rec[4].error.find("engine exploded") != std::string::npos);
  CHECK_FALSE(rec[5].ok);
  CHECK(rec[5].error.find("ABORT") != std::string::npos);

  Summary s = Summarize(rec, result->duration_s, {}, SloTargets{});
  CHECK(s.completed == 3);
  CHECK(s.failed == 4);
  CHECK(s.completed + s.failed == static_cast<int>(requests.size()));
  CHECK(s.total_input_tokens == 12 + 5 + 8);
  CHECK(s.total_output_tokens == 6 + 1 + 4);

  server->Shutdown();
}

TEST_CASE("gRPC backend: an unreachable server fails with the status", "[grpc]") {
  auto backend = GrpcBackend::Create("127.0.0.1:1");
  RunOptions o;
  o.arrivals.request_rate = std::numeric_limits<double>::infinity();
  o.generate.timeout_s = 2.0;
  auto result = RunBenchmark(*backend, {Ids(0, kNormal, 3, 2)}, o);
  REQUIRE(result.ok());
  INFO(result->records[0].error);
  CHECK_FALSE(result->records[0].ok);
  CHECK_FALSE(result->records[0].error.empty());
  CHECK_FALSE(backend->VocabSize(1.0).ok());
}

}  // namespace
}  // namespace moe::bench
