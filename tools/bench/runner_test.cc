#include "tools/bench/runner.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/status/status.h"

namespace moe::bench {
namespace {

// Streams `output_len` tokens 2 ms apart; every fifth request fails after one token.
// Records the most requests it ever had in flight.
class FakeBackend : public Backend {
 public:
  absl::Status Generate(const BenchRequest& request, const GenerateOptions&,
                        StreamListener& listener) override {
    int now = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
    }
    absl::Status status = absl::OkStatus();
    for (int t = 0; t < request.output_len; ++t) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      listener.OnTokens(1);
      if (request.index % 5 == 0) {
        status = absl::InternalError("injected failure");
        break;
      }
    }
    if (status.ok()) listener.OnUsage(request.prompt_len, request.output_len);
    --in_flight_;
    return status;
  }
  int max_in_flight() const { return max_in_flight_.load(); }

 private:
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
};

std::vector<BenchRequest> Requests(int n) {
  std::vector<BenchRequest> v(n);
  for (int i = 0; i < n; ++i) {
    v[i].index = i;
    v[i].prompt_ids = {1, 2, 3};
    v[i].prompt_len = 3;
    v[i].output_len = 4;
  }
  return v;
}

TEST_CASE("Every request gets one record; failures keep their reason", "[runner]") {
  FakeBackend backend;
  RunOptions o;
  o.arrivals.request_rate = std::numeric_limits<double>::infinity();
  o.max_concurrency = 3;
  auto result = RunBenchmark(backend, Requests(20), o);
  REQUIRE(result.ok());
  REQUIRE(result->records.size() == 20);
  int ok = 0, failed = 0;
  for (const RequestRecord& r : result->records) {
    if (r.ok) {
      ++ok;
      CHECK(r.output_tokens == 4);
      CHECK(r.prompt_tokens == 3);
      CHECK(r.itl_s.size() == 3);
      CHECK(r.ttft_s > 0.0);
      CHECK(r.latency_s >= r.ttft_s);
    } else {
      ++failed;
      CHECK(r.index % 5 == 0);
      CHECK(r.error == "injected failure");
    }
  }
  CHECK(ok == 16);
  CHECK(failed == 4);
  CHECK(backend.max_in_flight() <= 3);
  CHECK(backend.max_in_flight() >= 2);
  Summary s = Summarize(result->records, result->duration_s, {}, SloTargets{});
  CHECK(s.completed + s.failed == 20);
  CHECK(s.total_output_tokens == 64);
}

TEST_CASE("A finite rate spreads the requests over time", "[runner]") {
  FakeBackend backend;
  RunOptions o;
  o.arrivals.request_rate = 100.0;
  o.arrivals.seed = 5;
  auto requests = Requests(10);
  auto result = RunBenchmark(backend, requests, o);
  REQUIRE(result.ok());
  auto offsets = ArrivalOffsets(10, o.arrivals);
  REQUIRE(offsets.ok());
  for (int i = 0; i < 10; ++i) {
    CHECK(result->records[i].start_s >= (*offsets)[i]);
    CHECK(result->records[i].start_s < (*offsets)[i] + 0.5);  // loose: CI machines are loaded
  }
  CHECK(result->duration_s >= offsets->back());
}

TEST_CASE("Bad run options are rejected", "[runner]") {
  FakeBackend backend;
  RunOptions o;
  o.arrivals.request_rate = 0.0;
  CHECK_FALSE(RunBenchmark(backend, Requests(2), o).ok());
  o.arrivals.request_rate = 1.0;
  o.max_concurrency = -1;
  CHECK_FALSE(RunBenchmark(backend, Requests(2), o).ok());
  o.max_concurrency = 0;
  CHECK_FALSE(RunBenchmark(backend, {}, o).ok());
}

}  // namespace
}  // namespace moe::bench
