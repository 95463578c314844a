// Cancellation (client-side and Abort) and admission limits over gRPC.
#include <thread>

#include <catch2/catch.hpp>

#include "tests/server/server_test_util.h"

namespace moe::server::testing {
namespace {

TEST_CASE("A client cancelling mid-stream ends the request with abort and frees its blocks") {
  TestServer t = StartServer(TinyModelOptions(), SlowModelSource(absl::Milliseconds(3)));
  StreamResult r = Stream(*t.stub, GreedyIds(TestPrompt(40, 1), 900),
                          [](int n, grpc::ClientContext& ctx) {
                            if (n == 3) ctx.TryCancel();
                          });
  REQUIRE(r.status.error_code() == grpc::StatusCode::CANCELLED);
  REQUIRE_FALSE(r.has_complete);
  REQUIRE(r.tokens.size() < 900);
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(5)));
  REQUIRE(t.server->scheduler()->GetStats().num_aborted == 1);
}

TEST_CASE("Abort by request_id ends the stream with FINISH_REASON_ABORT") {
  TestServer t = StartServer(TinyModelOptions(), SlowModelSource(absl::Milliseconds(3)));
  moe::v1::GenerateRequest req = GreedyIds(TestPrompt(40, 2), 900);
  req.set_request_id("abort-me");
  StreamResult r = Stream(*t.stub, req, [&](int n, grpc::ClientContext&) {
    if (n != 3) return;
    moe::v1::AbortRequest a;
    a.set_request_id("abort-me");
    moe::v1::AbortResponse resp;
    grpc::ClientContext actx;
    REQUIRE(t.stub->Abort(&actx, a, &resp).ok());
  });
  REQUIRE(r.status.ok());
  REQUIRE(r.has_complete);
  REQUIRE(r.complete.finish_reason() == moe::v1::FINISH_REASON_ABORT);
  REQUIRE(r.complete.completion_tokens() >= 3);
  REQUIRE(r.complete.completion_tokens() < 900);
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(5)));

  moe::v1::AbortRequest a;
  a.set_request_id("never-sent");
  moe::v1::AbortResponse resp;
  grpc::ClientContext actx;
  REQUIRE(t.stub->Abort(&actx, a, &resp).error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("A client deadline ends the request and frees its blocks") {
  TestServer t = StartServer(TinyModelOptions(), SlowModelSource(absl::Milliseconds(3)));
  grpc::ClientContext ctx;
  // 900 tokens at >= 3 ms a step take >= 2.7 s, so the deadline always ends the request;
  // 1.5 s leaves a loaded machine time to stream the first tokens before it does.
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
  auto reader = t.stub->Generate(&ctx, GreedyIds(TestPrompt(20, 4), 900));
  moe::v1::GenerateResponse resp;
  int chunks = 0;
  while (reader->Read(&resp)) chunks += resp.has_chunk();
  REQUIRE(reader->Finish().error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  REQUIRE(chunks > 0);
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(5)));
}

TEST_CASE("A full waiting queue answers RESOURCE_EXHAUSTED") {
  ServerOptions o = TinyModelOptions();
  o.max_num_seqs = 1;
  o.max_queue = 2;
  TestServer t = StartServer(o, SlowModelSource(absl::Milliseconds(5)));
  // One running (holding the only seat), two waiting: the queue is full.
  std::vector<std::thread> streams;
  std::vector<StreamResult> results(3);
  for (int i = 0; i < 3; ++i) {
    moe::v1::GenerateRequest req = GreedyIds(TestPrompt(8, i), 900);
    req.set_request_id("long-" + std::to_string(i));
    streams.emplace_back([&, i, req] { results[i] = Stream(*t.stub, req); });
    // Let each one reach the scheduler before the next.
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (absl::Now() < end) {
      auto s = t.server->scheduler()->GetStats();
      if (s.num_running + s.num_waiting == i + 1) break;
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  StreamResult rejected = Stream(*t.stub, GreedyIds(TestPrompt(8, 9), 4));
  REQUIRE(rejected.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE(rejected.status.error_message().find("queue") != std::string::npos);
  for (int i = 0; i < 3; ++i) {
    moe::v1::AbortRequest a;
    a.set_request_id("long-" + std::to_string(i));
    moe::v1::AbortResponse resp;
    grpc::ClientContext ctx;
    t.stub->Abort(&ctx, a, &resp);
  }
  for (auto& th : streams) th.join();
  for (const auto& r : results) {
    REQUIRE(r.status.ok());
    REQUIRE(r.complete.finish_reason() == moe::v1::FINISH_REASON_ABORT);
  }
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(5)));
}

TEST_CASE("Graceful shutdown finishes in-flight streams and refuses new ones") {
  TestServer t = StartServer(TinyModelOptions(), SlowModelSource(absl::Milliseconds(2)));
  StreamResult r;
  std::thread client([&] { r = Stream(*t.stub, GreedyIds(TestPrompt(10, 3), 60)); });
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (absl::Now() < end && t.server->scheduler()->GetStats().num_running == 0) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  t.server->Shutdown(absl::Seconds(30));
  client.join();
  REQUIRE(r.status.ok());
  REQUIRE(r.complete.finish_reason() == moe::v1::FINISH_REASON_LENGTH);
  REQUIRE(r.tokens.size() == 60);
}

}  // namespace
}  // namespace moe::server::testing
