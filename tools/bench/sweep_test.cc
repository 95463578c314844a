#include "tools/bench/sweep.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>

namespace moe::bench {
namespace {

std::vector<SweepPoint> Points() {
  std::vector<SweepPoint> p(3);
  p[0].request_rate = 1;
  p[1].request_rate = 4;
  p[2].request_rate = std::numeric_limits<double>::infinity();
  for (int i = 0; i < 3; ++i) {
    p[i].summary.completed = 10;
    p[i].summary.output_throughput = 100.0 * (i + 1);
    p[i].summary.e2el.median_ms = 500.0 * (i + 1);
    p[i].summary.e2el.p99_ms = 900.0 * (i + 1);
    p[i].summary.ttft.median_ms = 50.0 * (i + 1);
    p[i].summary.ttft.p99_ms = 90.0 * (i + 1);
  }
  return p;
}

TEST_CASE("Sweep rates parse, including inf", "[sweep]") {
  auto r = ParseSweepRates("1, 2,0.5,inf");
  REQUIRE(r.ok());
  REQUIRE(r->size() == 4);
  CHECK((*r)[2] == 0.5);
  CHECK(std::isinf((*r)[3]));
  CHECK_FALSE(ParseSweepRates("1,0").ok());
  CHECK_FALSE(ParseSweepRates("fast").ok());
  CHECK_FALSE(ParseSweepRates("").ok());
}

TEST_CASE("The sweep table has one row per rate with its figures", "[sweep]") {
  std::string table = SweepTable(Points());
  std::vector<std::string> lines;
  std::stringstream ss(table);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  REQUIRE(lines.size() == 5);  // header, separator, 3 rows
  CHECK(lines[2].rfind("| 1 | 10 | 0 |", 0) == 0);
  CHECK(lines[4].rfind("| inf |", 0) == 0);
  CHECK(lines[3].find("| 1000.00 | 1800.00 |") != std::string::npos);  // E2EL median, P99
}

TEST_CASE("The SVG plots each rate's point in both panels", "[sweep]") {
  std::string svg = SweepSvg(Points());
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  size_t polylines = 0, circles = 0;
  for (size_t pos = 0; (pos = svg.find("<polyline", pos)) != std::string::npos; ++pos) ++polylines;
  for (size_t pos = 0; (pos = svg.find("<circle", pos)) != std::string::npos; ++pos) ++circles;
  CHECK(polylines == 4);    // median and P99, two panels
  CHECK(circles == 4 * 3);  // one per rate per series
  CHECK(svg.find("inf req/s") != std::string::npos);
  CHECK(svg.find("P99 E2E latency") != std::string::npos);
}

TEST_CASE("WriteSweep writes the table and the plot", "[sweep]") {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(tmp ? tmp : "/tmp") + "/sweep_out/nested";
  REQUIRE(WriteSweep(dir, Points()).ok());
  std::ifstream md(dir + "/sweep.md"), svg(dir + "/sweep.svg");
  CHECK(md.good());
  CHECK(svg.good());
}

}  // namespace
}  // namespace moe::bench
