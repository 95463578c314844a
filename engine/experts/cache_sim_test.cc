// The cache simulator on synthetic traces with and without locality.
#include "engine/experts/cache_sim.h"

#include <set>

#include <catch2/catch.hpp>

namespace moe::engine {
namespace {

SyntheticTraceOptions Shape() {
  SyntheticTraceOptions t;
  t.steps = 300;
  t.num_layers = 6;
  t.num_experts = 32;
  t.top_k = 4;
  t.tokens_per_step = 2;
  t.seed = 7;
  return t;
}

CacheSimResult Sim(const RoutingTrace& trace, CacheSimOptions o) {
  auto r = SimulateCache(trace, o);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("synthetic traces are valid, seeded, and locality shows as reuse") {
  auto a = MakeSyntheticTrace(Shape());
  REQUIRE(a.Validate().ok());
  CHECK(a.steps.size() == 300);
  auto b = MakeSyntheticTrace(Shape());
  CHECK(a.steps == b.steps);
  for (const auto& layer : a.steps[5]) {
    CHECK(layer.size() >= 4);
    CHECK(layer.size() <= 8);
  }
  RoutingTrace bad = a;
  bad.steps[3][2].push_back(99);
  auto st = bad.Validate();
  REQUIRE(!st.ok());
  CHECK(std::string(st.message()).find("step 3 layer 2") != std::string::npos);
}

TEST_CASE("temporal locality and popularity skew raise the hit rate") {
  CacheSimOptions o;
  o.num_slots = 6 * 32 / 4;  // a quarter of the experts
  const auto base = MakeSyntheticTrace(Shape());
  auto sticky_opts = Shape();
  sticky_opts.stickiness = 0.8;
  auto skew_opts = Shape();
  skew_opts.popularity_skew = 1.2;
  const double h_base = Sim(base, o).stats.hit_rate();
  const double h_sticky = Sim(MakeSyntheticTrace(sticky_opts), o).stats.hit_rate();
  const double h_skew = Sim(MakeSyntheticTrace(skew_opts), o).stats.hit_rate();
  // Uniform, independent routing: hit rate near the cached fraction.
  CHECK(h_base == Approx(0.25).margin(0.07));
  CHECK(h_sticky > h_base + 0.3);
  CHECK(h_skew > h_base + 0.15);
}

TEST_CASE("Belady beats LRU and LFU on the same trace; bytes follow misses") {
  auto opts = Shape();
  opts.popularity_skew = 0.8;
  opts.stickiness = 0.5;
  const auto trace = MakeSyntheticTrace(opts);
  CacheSimOptions o;
  o.num_slots = 48;
  o.bytes_per_expert = 1000;
  o.policy = EvictionPolicyKind::kLru;
  const auto lru = Sim(trace, o);
  o.policy = EvictionPolicyKind::kLfu;
  const auto lfu = Sim(trace, o);
  o.policy = EvictionPolicyKind::kBelady;
  const auto belady = Sim(trace, o);
  o.belady_horizon = 6;  // one step of foresight
  const auto near = Sim(trace, o);
  CHECK(belady.stats.misses < lru.stats.misses);
  CHECK(belady.stats.misses < lfu.stats.misses);
  CHECK(belady.stats.misses <= near.stats.misses);
  for (const auto* r : {&lru, &lfu, &belady}) {
    CHECK(r->stats.bytes_moved == uint64_t(r->stats.misses) * 1000);
    CHECK(r->stats.hits + r->stats.misses == lru.stats.hits + lru.stats.misses);
  }
}

TEST_CASE("when every expert fits only compulsory misses remain") {
  const auto trace = MakeSyntheticTrace(Shape());
  std::set<std::pair<int, int>> distinct;
  for (const auto& step : trace.steps)
    for (int l = 0; l < 6; ++l)
      for (int e : step[l]) distinct.insert({l, e});
  CacheSimOptions o;
  o.num_slots = 6 * 32;
  const auto r = Sim(trace, o);
  CHECK(r.stats.misses == static_cast<int64_t>(distinct.size()));
  CHECK(r.stats.evictions == 0);
}

TEST_CASE("exact prefetch turns demand misses into prefetches; noise costs accuracy") {
  const auto trace = MakeSyntheticTrace(Shape());
  CacheSimOptions o;
  o.num_slots = 48;  // a quarter
  const auto demand = Sim(trace, o);
  o.prefetch_depth = 1;
  const auto exact = Sim(trace, o);
  // Only each step's layer 0 is unforeseen (no prefetch across steps).
  int64_t first_layer_uses = 0;
  for (const auto& step : trace.steps) first_layer_uses += step[0].size();
  CHECK(exact.stats.misses <= first_layer_uses);
  CHECK(exact.stats.misses < demand.stats.misses / 4);
  CHECK(exact.accuracy_by_depth.at(0).precision() == 1.0);
  CHECK(exact.accuracy_by_depth.at(0).recall() == 1.0);
  CHECK(exact.stats.prefetches_wasted == 0);
  o.prefetch_across_steps = true;
  const auto across = Sim(trace, o);
  CHECK(across.stats.misses == static_cast<int64_t>(trace.steps[0][0].size()));

  o.prefetch_across_steps = false;
  o.predictions = SimPredictions::kNoisy;
  o.noise = 0.4;
  o.prefetch_depth = 2;
  const auto noisy = Sim(trace, o);
  const auto& d1 = noisy.accuracy_by_depth.at(0);
  CHECK(d1.precision() == Approx(0.6).margin(0.05));
  CHECK(noisy.stats.misses > exact.stats.misses);
  CHECK(noisy.stats.misses < demand.stats.misses);
  CHECK(noisy.stats.prefetches_wasted > 0);
}

TEST_CASE("noisy predictions terminate when a layer uses almost every expert") {
  // 4 experts, 3 used per layer: after one wrong guess no wrong expert is left. This
  // used to loop forever (found by the routing study's batched replay).
  RoutingTrace trace;
  trace.grid.num_layers = 2;
  trace.grid.num_experts = 4;
  for (int s = 0; s < 20; ++s) trace.steps.push_back({{0, 1, 2}, {1, 2, 3}});
  CacheSimOptions o;
  o.num_slots = 8;
  o.prefetch_depth = 1;
  o.predictions = SimPredictions::kNoisy;
  o.noise = 1.0;
  const auto r = Sim(trace, o);
  const auto& d1 = r.accuracy_by_depth.at(0);
  CHECK(d1.precision() >= 0.0);
  CHECK(d1.precision() < 1.0);  // every first guess was made wrong
}

TEST_CASE("a layer needing more experts than the cache holds is reported") {
  const auto trace = MakeSyntheticTrace(Shape());
  CacheSimOptions o;
  o.num_slots = 3;
  auto r = SimulateCache(trace, o);
  REQUIRE(!r.ok());
  CHECK(std::string(r.status().message()).find("step 0") != std::string::npos);
}

}  // namespace
}  // namespace moe::engine
