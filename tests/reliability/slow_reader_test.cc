// A client that stops reading its stream must not slow the engine or other clients: its
// buffered tokens are bounded (--max-stream-buffer-tokens) and, past the bound, its
// request is cancelled with RESOURCE_EXHAUSTED and its KV blocks return.
#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "tests/reliability/reliability_util.h"

namespace moe::reliability {
namespace {

constexpr int kNormalClients = 4;
constexpr int kNormalTokens = 200;

// Runs the normal clients at once; returns their wall time.
double RunNormalClients(moe::v1::Inference::Stub& stub, int* completed) {
  std::vector<StreamResult> results(kNormalClients);
  std::vector<std::thread> threads;
  const absl::Time t0 = absl::Now();
  for (int i = 0; i < kNormalClients; ++i) {
    threads.emplace_back([&, i] { results[i] = Stream(stub, GreedyIds(8, i, kNormalTokens)); });
  }
  for (auto& t : threads) t.join();
  *completed = 0;
  for (const auto& r : results) {
    if (r.status.ok() && r.has_complete && r.tokens.size() == kNormalTokens) ++*completed;
  }
  return absl::ToDoubleSeconds(absl::Now() - t0);
}

TEST_CASE("A client that stops reading is cancelled with RESOURCE_EXHAUSTED; others finish") {
  server::ServerOptions o = TinyModelOptions();
  o.max_stream_buffer_tokens = 256;  // above kNormalTokens: a normal client can never overflow
  TestServer t = StartServer(o);

  int baseline_done = 0;
  const double baseline_s = RunNormalClients(*t.stub, &baseline_done);
  REQUIRE(baseline_done == kNormalClients);

  // The slow client: a tiny HTTP/2 receive window and no reading, so the server's writes
  // block and tokens pile up in its RequestHandle.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto slow_channel =
      grpc::CreateCustomChannel(t.server->address(), grpc::InsecureChannelCredentials(), args);
  auto slow_stub = moe::v1::Inference::NewStub(slow_channel);
  grpc::ClientContext slow_ctx;
  slow_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  const int64_t aborted_before = t.server->scheduler()->GetStats().num_aborted;
  auto slow_reader = slow_stub->Generate(&slow_ctx, GreedyIds(8, 99, 1000));

  int with_slow_done = 0;
  const double with_slow_s = RunNormalClients(*t.stub, &with_slow_done);
  REQUIRE(with_slow_done == kNormalClients);

  // The slow request was ended by the server (counted as aborted) while its client
  // never read, and every KV block came back.
  const absl::Time end = absl::Now() + absl::Seconds(30);
  while (t.server->scheduler()->GetStats().num_aborted == aborted_before && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  REQUIRE(t.server->scheduler()->GetStats().num_aborted == aborted_before + 1);
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(10)));

  // Now it reads: some tokens (what the transport held), then the reason.
  moe::v1::GenerateResponse resp;
  int tokens = 0;
  bool error_event = false;
  while (slow_reader->Read(&resp)) {
    tokens += resp.chunk().token_ids_size();
    if (resp.has_error()) error_event = true;
    REQUIRE_FALSE(resp.has_complete());
  }
  const grpc::Status st = slow_reader->Finish();
  CHECK(error_event);
  REQUIRE(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE_THAT(st.error_message(), Catch::Contains("client reading too slowly"));
  REQUIRE(tokens < 1000);
  WARN(absl::StrCat("normal clients: ", kNormalClients, " x ", kNormalTokens, " tokens in ",
                    baseline_s, " s alone, ", with_slow_s, " s beside the stalled client (",
                    tokens, " tokens reached it before the cancel)"));
}

}  // namespace
}  // namespace moe::reliability
