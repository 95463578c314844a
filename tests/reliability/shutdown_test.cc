// SIGTERM to the real moe_server during load: streams in flight (running and queued)
// finish with all their tokens within the drain timeout, new gRPC requests get
// UNAVAILABLE and new HTTP requests 503, and the process exits 0.
#include <signal.h>

#include <atomic>
#include <thread>

#include <httplib.h>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "tests/reliability/reliability_util.h"

namespace moe::reliability {
namespace {

TEST_CASE("SIGTERM under load drains in-flight streams, refuses new ones, exits 0") {
  ServerProcess p({"--model", kTinyModel, "--device", "cpu", "--num-threads", "1",
                   "--num-kv-blocks", "512", "--max-num-seqs", "16", "--drain-timeout", "600",
                   "--log-level", "warn"});
  REQUIRE(p.WaitServing(absl::Seconds(60)));
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", p.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = moe::v1::Inference::NewStub(channel);

  constexpr int kStreams = 12;
  // Long enough to still be running when the probes go out; short enough that a loaded
  // 2-core CI machine drains it well inside the drain timeout.
  constexpr int kTokens = 400;
  std::vector<StreamResult> results(kStreams);
  std::atomic<int> started{0}, done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      results[i] = Stream(*stub, GreedyIds(8, i, kTokens), absl::Seconds(600),
                          [&](int n, grpc::ClientContext&) { started += n == 1; });
      ++done;
    });
  }
  // Every stream must have reached the server (its first token came back) before the
  // signal: a request that arrives after SIGTERM is rightly refused with UNAVAILABLE.
  while (started.load() < kStreams) absl::SleepFor(absl::Milliseconds(5));
  p.Signal(SIGTERM);
  // Let the signal land: a probe sent before it would queue behind the streams.
  absl::SleepFor(absl::Milliseconds(200));

  // New requests are refused while the old ones still run.
  bool grpc_refused = false, http_refused = false;
  int in_flight_when_refused = 0;
  httplib::Client cli("127.0.0.1", p.http_port());
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while ((!grpc_refused || !http_refused) && absl::Now() < end) {
    if (!grpc_refused) {
      StreamResult r = Stream(*stub, GreedyIds(4, 1000, 1), absl::Seconds(1));
      if (r.status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        grpc_refused = true;
        in_flight_when_refused = kStreams - done.load();
      }
    }
    if (!http_refused) {
      auto res = cli.Post("/v1/completions", R"({"prompt": "hi", "max_tokens": 1})",
                          "application/json");
      if (res && res->status == 503) http_refused = true;
    }
  }
  for (auto& t : threads) t.join();
  REQUIRE(grpc_refused);
  REQUIRE(http_refused);
  CHECK(in_flight_when_refused > 0);
  for (const auto& r : results) {
    INFO("stream status " << r.status.error_code() << ": " << r.status.error_message());
    REQUIRE(r.status.ok());
    REQUIRE(r.has_complete);
    REQUIRE(r.tokens.size() == kTokens);
  }
  REQUIRE(p.WaitExit(absl::Seconds(60)) == 0);
  WARN(absl::StrCat(kStreams, " streams x ", kTokens, " tokens drained after SIGTERM; ",
                    in_flight_when_refused, " were still in flight when a new request got "
                    "UNAVAILABLE"));
}

}  // namespace
}  // namespace moe::reliability
