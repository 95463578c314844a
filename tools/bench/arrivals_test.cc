#include "tools/bench/arrivals.h"

#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

namespace moe::bench {
namespace {

struct GapStats {
  double mean;
  double cv;
};

GapStats Gaps(const std::vector<double>& t) {
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) gaps.push_back(t[i] - t[i - 1]);
  double mean = 0;
  for (double g : gaps) mean += g;
  mean /= gaps.size();
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  var /= gaps.size();
  return {mean, std::sqrt(var) / mean};
}

TEST_CASE("Poisson arrivals (burstiness 1) have mean gap 1/rate and CV 1", "[arrivals]") {
  absl::StatusOr<std::vector<double>> t = ArrivalOffsets(20001, {4.0, 1.0, 7});
  REQUIRE(t.ok());
  CHECK((*t)[0] == 0.0);
  for (size_t i = 1; i < t->size(); ++i) REQUIRE((*t)[i] >= (*t)[i - 1]);
  GapStats s = Gaps(*t);
  CHECK(s.mean == Approx(0.25).epsilon(0.03));
  CHECK(s.cv == Approx(1.0).epsilon(0.04));
}

TEST_CASE("Burstiness 0.5 keeps the mean gap and raises the CV to sqrt(2)", "[arrivals]") {
  absl::StatusOr<std::vector<double>> t = ArrivalOffsets(20001, {10.0, 0.5, 11});
  REQUIRE(t.ok());
  GapStats s = Gaps(*t);
  CHECK(s.mean == Approx(0.1).epsilon(0.04));
  CHECK(s.cv == Approx(std::sqrt(2.0)).epsilon(0.05));
}

TEST_CASE("Arrivals are reproducible from the seed and change with it", "[arrivals]") {
  auto a = ArrivalOffsets(100, {2.0, 1.0, 42});
  auto b = ArrivalOffsets(100, {2.0, 1.0, 42});
  auto c = ArrivalOffsets(100, {2.0, 1.0, 43});
  REQUIRE((a.ok() && b.ok() && c.ok()));
  CHECK(*a == *b);
  CHECK(*a != *c);
}

TEST_CASE("An infinite rate sends everything at once; bad rates are rejected", "[arrivals]") {
  auto t = ArrivalOffsets(5, {std::numeric_limits<double>::infinity(), 1.0, 0});
  REQUIRE(t.ok());
  CHECK(*t == std::vector<double>(5, 0.0));
  CHECK_FALSE(ArrivalOffsets(5, {0.0, 1.0, 0}).ok());
  CHECK_FALSE(ArrivalOffsets(5, {-1.0, 1.0, 0}).ok());
  CHECK_FALSE(ArrivalOffsets(5, {1.0, 0.0, 0}).ok());
}

}  // namespace
}  // namespace moe::bench
