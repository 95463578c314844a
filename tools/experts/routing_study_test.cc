// The routing study on the shipped standard model: the next-gate predictor is measured
// against the runner's routing, and Belady (exact foresight) never loses to LRU on the
// same replayed trace.
#include "tools/experts/routing_study.h"

#include <catch2/catch.hpp>

namespace moe::tools {
namespace {

constexpr char kDir[] = "tests/data/models/trained/standard";

TEST_CASE("routing study on the trained standard model") {
  RoutingStudyOptions o;
  o.model_dir = kDir;
  o.trace_json = std::string(kDir) + "/routing_trace.json";
  o.max_sequences = 8;
  o.max_tokens_per_seq = 96;
  o.prefill_chunk = 32;
  auto r = RunRoutingStudy(o);
  REQUIRE(r.ok());
  CHECK(r->routing == "standard");
  CHECK_FALSE(r->predictor_exact);
  CHECK(r->tokens == 8 * 96);
  // The runner's routing is the routing the trace recorded (same model, same text).
  CHECK(r->trace_agreement > 0.9);

  REQUIRE(r->next_gate.size() == 3);
  const auto& d1 = r->next_gate[0];
  // Depth 1 is predicted from every layer but the last: 3 layers x 768 tokens.
  CHECK(d1.events == 3 * 8 * 96);
  CHECK(d1.actual == d1.events * 2);
  CHECK(d1.precision() >= 0.0);
  CHECK(d1.precision() <= 1.0);
  CHECK(d1.recall() >= 0.0);
  CHECK(d1.recall() <= 1.0);
  // A gate applied one layer early is informative: far better than chance (2 of 8).
  CHECK(d1.precision() > 0.25);

  int compared = 0;
  for (const auto& b : r->cache) {
    if (b.policy != "belady") continue;
    for (const auto& l : r->cache) {
      if (l.policy == "lru" && l.replay == b.replay && l.slots == b.slots &&
          l.prefetch == b.prefetch && l.prefetch_depth == b.prefetch_depth) {
        INFO(b.replay << " slots " << b.slots << " prefetch " << b.prefetch);
        CHECK(l.steps == b.steps);
        CHECK(b.stats.hit_rate() >= l.stats.hit_rate());
        CHECK(b.stats.hits + b.stats.misses == l.stats.hits + l.stats.misses);
        ++compared;
      }
    }
  }
  // 3 sizes x (single: none, exact, next-gate-noisy; batch8: none, exact).
  CHECK(compared == 3 * 3 + 3 * 2);
}

TEST_CASE("routing study reports a missing trace file by name") {
  RoutingStudyOptions o;
  o.model_dir = kDir;
  o.trace_json = "does/not/exist.json";
  auto r = RunRoutingStudy(o);
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("does/not/exist.json") != std::string::npos);
}

}  // namespace
}  // namespace moe::tools
