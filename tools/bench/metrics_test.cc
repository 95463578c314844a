#include "tools/bench/metrics.h"

#include <catch2/catch.hpp>

namespace moe::bench {
namespace {


RequestRecord Ok(double start, double ttft, std::vector<double> itl, double latency, int in,
                 int out) {
  RequestRecord r;
  r.ok = true;
  r.start_s = start;
  r.ttft_s = ttft;
  r.itl_s = std::move(itl);
  r.latency_s = latency;
  r.prompt_tokens = in;
  r.output_tokens = out;
  return r;
}

TEST_CASE("Percentile interpolates linearly between ranks like numpy", "[metrics]") {
  std::vector<double> a = {1, 2, 3, 4};
  CHECK(Percentile(a, 0) == Approx(1.0));
  CHECK(Percentile(a, 50) == Approx(2.5));
  CHECK(Percentile(a, 99) == Approx(3.97));  // numpy.percentile([1,2,3,4], 99)
  CHECK(Percentile(a, 100) == Approx(4.0));
  std::vector<double> b = {15, 20, 35, 40, 50};
  CHECK(Percentile(b, 40) == Approx(29.0));
  CHECK(Percentile(b, 50) == Approx(35.0));
  CHECK(Percentile(b, 90) == Approx(46.0));
  std::vector<double> one = {7};
  CHECK(Percentile(one, 99) == Approx(7.0));
  CHECK(Percentile({}, 50) == 0.0);
}

TEST_CASE("ComputeStats reports milliseconds: mean, median, std, P99 and asked percentiles",
          "[metrics]") {
  std::vector<double> p = {50, 90};
  MetricStats s = ComputeStats({0.4, 0.1, 0.3, 0.2}, p);  // unsorted input
  CHECK(s.count == 4);
  CHECK(s.mean_ms == Approx(250.0));
  CHECK(s.median_ms == Approx(250.0));
  CHECK(s.std_ms == Approx(111.80339887));
  CHECK(s.p99_ms == Approx(397.0));
  REQUIRE(s.percentiles_ms.size() == 2);
  CHECK(s.percentiles_ms[0].first == 50);
  CHECK(s.percentiles_ms[0].second == Approx(250.0));
  CHECK(s.percentiles_ms[1].second == Approx(370.0));

  MetricStats empty = ComputeStats({}, p);
  CHECK(empty.count == 0);
  CHECK(empty.mean_ms == 0.0);
  CHECK(empty.p99_ms == 0.0);
}

TEST_CASE("TPOT excludes the first token and needs two tokens", "[metrics]") {
  CHECK(RequestTpot(Ok(0, 0.1, {}, 1.0, 5, 10)).value() == Approx(0.1));
  CHECK_FALSE(RequestTpot(Ok(0, 0.1, {}, 0.1, 5, 1)).has_value());
  RequestRecord failed = Ok(0, 0.1, {}, 1.0, 5, 10);
  failed.ok = false;
  CHECK_FALSE(RequestTpot(failed).has_value());
}

TEST_CASE("Summarize counts only successful requests in tokens and throughput", "[metrics]") {
  std::vector<RequestRecord> records = {
      Ok(0.0, 0.1, {0.1, 0.1, 0.1}, 0.4, 100, 4),    // TPOT 0.1
      Ok(0.5, 0.2, {0.05}, 0.3, 50, 2),              // TPOT 0.1
      Ok(1.0, 0.3, {}, 0.3, 20, 1),                  // no TPOT
  };
  RequestRecord failed;
  failed.ok = false;
  failed.error = "HTTP 500";
  failed.prompt_tokens = 999;
  records.push_back(failed);

  Summary s = Summarize(records, 2.0, {}, SloTargets{});
  CHECK(s.completed == 3);
  CHECK(s.failed == 1);
  CHECK(s.total_input_tokens == 170);
  CHECK(s.total_output_tokens == 7);
  CHECK(s.request_throughput == Approx(1.5));
  CHECK(s.output_throughput == Approx(3.5));
  CHECK(s.total_token_throughput == Approx(88.5));
  CHECK(s.ttft.count == 3);
  CHECK(s.ttft.mean_ms == Approx(200.0));
  CHECK(s.tpot.count == 2);
  CHECK(s.tpot.mean_ms == Approx(100.0));
  CHECK(s.itl.count == 4);
  CHECK(s.itl.median_ms == Approx(100.0));
  CHECK(s.e2el.median_ms == Approx(300.0));
  CHECK_FALSE(s.request_goodput.has_value());
}

TEST_CASE("Goodput counts requests meeting every SLO per second", "[metrics]") {
  std::vector<RequestRecord> records = {
      Ok(0, 0.10, {}, 1.0, 1, 10),  // ttft 100 ms, tpot 100 ms, e2el 1000 ms
      Ok(0, 0.30, {}, 0.5, 1, 3),   // ttft 300 ms -> misses the TTFT SLO
      Ok(0, 0.05, {}, 2.05, 1, 3),  // tpot 1000 ms -> misses the TPOT SLO
      Ok(0, 0.05, {}, 0.05, 1, 1),  // one token: TPOT counts as 0
  };
  absl::StatusOr<SloTargets> slo = ParseGoodput({"ttft:200", "tpot:150"});
  REQUIRE(slo.ok());
  Summary s = Summarize(records, 4.0, {}, *slo);
  REQUIRE(s.request_goodput.has_value());
  CHECK(*s.request_goodput == Approx(2.0 / 4.0));

  absl::StatusOr<SloTargets> e2el = ParseGoodput({"e2el:600"});
  REQUIRE(e2el.ok());
  CHECK(*Summarize(records, 2.0, {}, *e2el).request_goodput == Approx(2.0 / 2.0));
}

TEST_CASE("Peak output throughput is the most tokens in any one-second window", "[metrics]") {
  RequestRecord a = Ok(0.0, 0.5, {0.2, 0.2, 0.2}, 1.2, 1, 4);  // tokens at .5 .7 .9 1.1
  RequestRecord b = Ok(1.0, 0.05, {0.1}, 0.2, 1, 5);            // 3 at 1.05, 2 at 1.15
  b.chunk_tokens = {3, 2};
  RequestRecord failed = Ok(0.6, 0.1, {0.01, 0.01}, 0.2, 1, 3);
  failed.ok = false;
  std::vector<RequestRecord> records = {a, b, failed};
  CHECK(PeakOutputThroughput(records) == Approx(9.0));
  // Spread out: never more than 1 token per second.
  std::vector<RequestRecord> slow = {Ok(0.0, 0.5, {1.5, 1.5}, 3.5, 1, 3)};
  CHECK(PeakOutputThroughput(slow) == Approx(1.0));
  CHECK(PeakOutputThroughput({}) == 0.0);
}

TEST_CASE("Percentile and goodput flags are validated", "[metrics]") {
  absl::StatusOr<std::vector<double>> p = ParsePercentiles("50, 90,99.9");
  REQUIRE(p.ok());
  CHECK(*p == std::vector<double>{50, 90, 99.9});
  CHECK_FALSE(ParsePercentiles("50,101").ok());
  CHECK_FALSE(ParsePercentiles("fifty").ok());
  CHECK_FALSE(ParseGoodput({"ttft"}).ok());
  CHECK_FALSE(ParseGoodput({"latency:5"}).ok());
  CHECK_FALSE(ParseGoodput({"ttft:-1"}).ok());
  absl::StatusOr<SloTargets> all = ParseGoodput({"ttft:1", "tpot:2", "e2el:3"});
  REQUIRE(all.ok());
  CHECK(*all->e2el_ms == 3.0);
}

}  // namespace
}  // namespace moe::bench
