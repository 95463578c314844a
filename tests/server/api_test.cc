// Request validation, health, ModelInfo / Tokenize / Detokenize over gRPC.
#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "absl/synchronization/notification.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_test_util.h"

namespace moe::server::testing {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

HealthCheckResponse::ServingStatus CheckHealth(grpc::Channel* ch, const std::string& service) {
  auto stub = Health::NewStub(std::shared_ptr<grpc::Channel>(ch, [](grpc::Channel*) {}));
  HealthCheckRequest req;
  req.set_service(service);
  HealthCheckResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  INFO("health check: " << s.error_code() << " " << s.error_message());
  REQUIRE(s.ok());
  return resp.status();
}

TEST_CASE("Health is NOT_SERVING while the model loads, then SERVING") {
  auto release = std::make_shared<absl::Notification>();
  ModelSource gated = [release](const engine::LoadOptions& lo) {
    release->WaitForNotification();
    return engine::LoadModel(kTinyModel, lo);
  };
  TestServer t = StartServer(TinyModelOptions(), gated, /*wait_ready=*/false);
  REQUIRE(CheckHealth(t.channel.get(), "") == HealthCheckResponse::NOT_SERVING);
  REQUIRE(CheckHealth(t.channel.get(), "moe.v1.Inference") == HealthCheckResponse::NOT_SERVING);
  StreamResult early = Stream(*t.stub, GreedyIds({1, 2, 3}, 2));
  REQUIRE(early.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  release->Notify();
  REQUIRE(t.server->WaitUntilReady(absl::Seconds(60)).ok());
  REQUIRE(CheckHealth(t.channel.get(), "") == HealthCheckResponse::SERVING);
  REQUIRE(CheckHealth(t.channel.get(), "moe.v1.Inference") == HealthCheckResponse::SERVING);
  REQUIRE(Stream(*t.stub, GreedyIds({1, 2, 3}, 2)).status.ok());
}

void ExpectInvalid(moe::v1::Inference::Stub& stub, const moe::v1::GenerateRequest& req,
                   const std::string& field) {
  StreamResult r = Stream(stub, req);
  INFO("field " << field << ": " << r.status.error_message());
  REQUIRE(r.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(r.status.error_message().rfind(field + ":", 0) == 0);
}

TEST_CASE("Invalid requests get INVALID_ARGUMENT naming the field") {
  TestServer t = StartServer(TinyModelOptions());
  moe::v1::GenerateRequest empty_text;
  empty_text.set_text("");
  ExpectInvalid(*t.stub, empty_text, "text");
  ExpectInvalid(*t.stub, GreedyIds({}, 4), "token_ids");
  ExpectInvalid(*t.stub, moe::v1::GenerateRequest(), "input");
  ExpectInvalid(*t.stub, GreedyIds({1, 2}, 0), "sampling.max_tokens");
  ExpectInvalid(*t.stub, GreedyIds({1, 2}, -5), "sampling.max_tokens");
  ExpectInvalid(*t.stub, GreedyIds({1, 2}, 1023), "sampling.max_tokens");  // context 1024
  ExpectInvalid(*t.stub, GreedyIds({1, 1000}, 4), "token_ids");            // vocab 1000
  ExpectInvalid(*t.stub, GreedyIds({-1}, 4), "token_ids");
  auto with = [](auto set) {
    moe::v1::GenerateRequest r = GreedyIds({1, 2, 3}, 4);
    set(r.mutable_sampling());
    return r;
  };
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_temperature(std::nanf("")); }),
                "sampling.temperature");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_temperature(-0.5f); }),
                "sampling.temperature");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_top_p(1.5f); }), "sampling.top_p");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_top_p(-0.1f); }), "sampling.top_p");
  ExpectInvalid(*t.stub, with([](auto* s) { s->add_stop_token_ids(5000); }),
                "sampling.stop_token_ids");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_frequency_penalty(2.5f); }),
                "sampling.frequency_penalty");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_presence_penalty(-3.f); }),
                "sampling.presence_penalty");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_repetition_penalty(0.f); }),
                "sampling.repetition_penalty");
  ExpectInvalid(*t.stub, with([](auto* s) { s->set_min_p(1.5f); }), "sampling.min_p");
  ExpectInvalid(*t.stub, with([](auto* s) { (*s->mutable_logit_bias())[1000] = 1.f; }),
                "sampling.logit_bias");  // vocab 1000
  ExpectInvalid(*t.stub, with([](auto* s) { (*s->mutable_logit_bias())[3] = 150.f; }),
                "sampling.logit_bias");
  // The server still serves valid requests afterwards.
  REQUIRE(Stream(*t.stub, GreedyIds({1, 2, 3}, 3)).tokens.size() == 3);
  // ...and applies logit_bias: +100 on one token makes greedy emit only it.
  moe::v1::GenerateRequest forced = with([](auto* s) { (*s->mutable_logit_bias())[7] = 100.f; });
  forced.mutable_sampling()->set_max_tokens(4);
  CHECK(Stream(*t.stub, forced).tokens == std::vector<int32_t>(4, 7));
}

TEST_CASE("Without max_tokens a prompt near the context gets the room left") {
  TestServer t = StartServer(TinyModelOptions());
  // Context 1024: 1021 prompt tokens leave 3, fewer than the default 16.
  moe::v1::GenerateRequest req = GreedyIds(TestPrompt(1021, 1), 1);
  req.mutable_sampling()->clear_max_tokens();
  req.mutable_sampling()->set_ignore_eos(true);
  StreamResult r = Stream(*t.stub, req);
  INFO(r.status.error_message());
  REQUIRE(r.status.ok());
  CHECK(r.tokens.size() == 3);
  CHECK(r.complete.finish_reason() == moe::v1::FINISH_REASON_LENGTH);
  // A prompt that fills the context is the prompt's fault, whatever max_tokens says.
  ExpectInvalid(*t.stub, GreedyIds(TestPrompt(1024, 1), 1), "token_ids");
  // An explicit max_tokens past the room left is still refused, naming it.
  ExpectInvalid(*t.stub, GreedyIds(TestPrompt(1021, 1), 4), "sampling.max_tokens");
  // top_k -1 (vLLM's "disabled") is accepted; below it the message names the range.
  moe::v1::GenerateRequest k = GreedyIds({1, 2, 3}, 2);
  k.mutable_sampling()->set_top_k(-1);
  CHECK(Stream(*t.stub, k).status.ok());
  k.mutable_sampling()->set_top_k(-2);
  StreamResult bad_k = Stream(*t.stub, k);
  CHECK(bad_k.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(bad_k.status.error_message().find(">= -1") != std::string::npos);
}

TEST_CASE("priority: refused under fcfs naming the field, served under --scheduling-policy "
          "priority with the same tokens") {
  moe::v1::GenerateRequest req = GreedyIds({1, 2, 3, 4}, 4);
  req.set_priority(2);
  std::vector<int32_t> reference;
  {
    TestServer t = StartServer(TinyModelOptions());  // fcfs, the default
    StreamResult r = Stream(*t.stub, req);
    REQUIRE(r.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    REQUIRE(r.status.error_message().rfind("priority:", 0) == 0);
    REQUIRE(r.status.error_message().find("--scheduling-policy priority") != std::string::npos);
    req.set_priority(0);
    StreamResult ok = Stream(*t.stub, req);
    REQUIRE(ok.status.ok());
    reference = ok.tokens;
  }
  ServerOptions o = TinyModelOptions();
  o.scheduling_policy = "priority";
  TestServer t = StartServer(o);
  req.set_priority(-3);
  StreamResult r = Stream(*t.stub, req);
  INFO(r.status.error_message());
  REQUIRE(r.status.ok());
  REQUIRE(r.tokens == reference);
}

TEST_CASE("ModelInfo, Tokenize and Detokenize describe the loaded model") {
  TestServer t = StartServer(TinyModelOptions());
  moe::v1::ModelInfoResponse info;
  {
    grpc::ClientContext ctx;
    REQUIRE(t.stub->ModelInfo(&ctx, moe::v1::ModelInfoRequest(), &info).ok());
  }
  REQUIRE(info.architecture() == "OlmoeForCausalLM");
  REQUIRE(info.num_layers() == 2);
  REQUIRE(info.num_experts() == 8);
  REQUIRE(info.context_length() == 1024);
  REQUIRE(info.vocab_size() == 1000);
  REQUIRE(info.device() == "cpu");
  REQUIRE(info.num_kv_blocks() == 512);

  moe::v1::TokenizeRequest treq;
  treq.set_text("Hello world");
  moe::v1::TokenizeResponse tresp;
  {
    grpc::ClientContext ctx;
    REQUIRE(t.stub->Tokenize(&ctx, treq, &tresp).ok());
  }
  REQUIRE(tresp.token_ids_size() > 0);
  moe::v1::DetokenizeRequest dreq;
  dreq.mutable_token_ids()->CopyFrom(tresp.token_ids());
  moe::v1::DetokenizeResponse dresp;
  {
    grpc::ClientContext ctx;
    REQUIRE(t.stub->Detokenize(&ctx, dreq, &dresp).ok());
  }
  REQUIRE(dresp.text() == "Hello world");
  dreq.add_token_ids(123456);
  grpc::ClientContext ctx;
  grpc::Status bad = t.stub->Detokenize(&ctx, dreq, &dresp);
  REQUIRE(bad.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(bad.error_message().rfind("token_ids:", 0) == 0);
}

}  // namespace
}  // namespace moe::server::testing
