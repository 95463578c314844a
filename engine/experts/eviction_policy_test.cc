// Eviction policies on hand-made traces with known answers, and Belady's optimality
// against LRU and LFU on random traces.
#include "engine/experts/eviction_policy.h"

#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/experts/expert_cache.h"

namespace moe::engine {
namespace {

struct Run {
  int64_t misses = 0;
  std::vector<int32_t> evicted;  // experts evicted, in order
};

// Replays `trace` (layer-set per time step) through a cache of `slots`.
Run Replay(const std::vector<std::vector<int32_t>>& trace, int32_t slots,
           std::unique_ptr<EvictionPolicy> policy, int32_t num_experts) {
  ExpertCacheOptions o;
  o.grid = {1, num_experts};
  o.num_slots = slots;
  o.bytes_per_expert = 1;
  auto cache = ExpertCache::Create(o, std::move(policy));
  REQUIRE(cache.ok());
  Run r;
  std::vector<Placement> placed;
  for (size_t t = 0; t < trace.size(); ++t) {
    (*cache)->AdvanceTo(static_cast<int64_t>(t));
    std::vector<ExpertKey> keys;
    for (int32_t e : trace[t]) keys.push_back({0, e});
    auto st = (*cache)->AcquireAndPin(keys, &placed);
    REQUIRE(st.ok());
    for (const auto& p : placed) {
      if (p.evicted) r.evicted.push_back(p.evicted->expert);
      if (p.needs_fill) REQUIRE((*cache)->MarkFilled(p.slot).ok());
    }
    (*cache)->UnpinAll();
  }
  r.misses = (*cache)->stats().misses;
  return r;
}

std::vector<std::vector<int32_t>> Singles(std::vector<int32_t> v) {
  std::vector<std::vector<int32_t>> t;
  for (int32_t e : v) t.push_back({e});
  return t;
}

std::unique_ptr<TraceNextUseOracle> OracleFor(const std::vector<std::vector<int32_t>>& trace,
                                              int32_t num_experts) {
  auto o = std::make_unique<TraceNextUseOracle>(ExpertGrid{1, num_experts});
  for (size_t t = 0; t < trace.size(); ++t)
    for (int32_t e : trace[t]) o->AddUse({0, e}, static_cast<int64_t>(t));
  return o;
}

TEST_CASE("LRU evicts the least recently used expert") {
  // 3 slots: 0 1 2 | 0 hit | 3 evicts 1 | 1 evicts 2.
  auto r = Replay(Singles({0, 1, 2, 0, 3, 1}), 3, std::make_unique<LruPolicy>(), 8);
  CHECK(r.misses == 5);
  CHECK(r.evicted == std::vector<int32_t>{1, 2});
}

TEST_CASE("LFU keeps the frequently used expert that LRU throws out") {
  const auto trace = Singles({0, 0, 0, 1, 2, 0});
  auto lru = Replay(trace, 2, std::make_unique<LruPolicy>(), 8);
  auto lfu = Replay(trace, 2, std::make_unique<LfuPolicy>(0), 8);
  CHECK(lru.misses == 4);
  CHECK(lru.evicted == std::vector<int32_t>{0, 1});
  CHECK(lfu.misses == 3);
  CHECK(lfu.evicted == std::vector<int32_t>{1});
}

TEST_CASE("LFU breaks count ties by recency") {
  // 0 and 1 both used once; 0 less recently, so 2 evicts 0.
  auto r = Replay(Singles({0, 1, 2}), 2, std::make_unique<LfuPolicy>(0), 8);
  CHECK(r.evicted == std::vector<int32_t>{0});
}

TEST_CASE("LFU aging lets a formerly popular expert go") {
  std::vector<int32_t> v(100, 0);
  for (int i = 0; i < 20; ++i) v.push_back(1 + i % 2);
  const auto trace = Singles(v);
  auto no_aging = Replay(trace, 2, std::make_unique<LfuPolicy>(0), 8);
  auto aging = Replay(trace, 2, std::make_unique<LfuPolicy>(2), 8);
  CHECK(no_aging.misses == 1 + 20);  // expert 0 squats; 1 and 2 thrash in one slot
  CHECK(aging.misses < no_aging.misses);
  CHECK(std::find(aging.evicted.begin(), aging.evicted.end(), 0) != aging.evicted.end());
}

TEST_CASE("Belady evicts the expert used farthest in the future") {
  // 3 slots: at 3 the residents 0 (next use t=6), 1 (t=4), 2 (never): 2 goes.
  const auto trace = Singles({0, 1, 2, 3, 1, 3, 0});
  auto oracle = OracleFor(trace, 8);
  auto r = Replay(trace, 3, std::make_unique<BeladyPolicy>(oracle.get()), 8);
  CHECK(r.evicted == std::vector<int32_t>{2});
  CHECK(r.misses == 4);
  auto lru = Replay(trace, 3, std::make_unique<LruPolicy>(), 8);
  CHECK(lru.misses == 5);  // evicts 0, which comes back
}

TEST_CASE("Belady re-asks the oracle about predicted uses that did not happen") {
  // The oracle claims 0 is used at t=2 (it is not) and never again: once t=2 has passed,
  // 0 must become the victim instead of the truly reused 1.
  TraceNextUseOracle oracle({1, 8});
  oracle.AddUse({0, 0}, 0);
  oracle.AddUse({0, 0}, 2);  // a wrong prediction
  oracle.AddUse({0, 1}, 1);
  oracle.AddUse({0, 1}, 4);
  oracle.AddUse({0, 2}, 3);
  oracle.AddUse({0, 1}, 4);
  auto r = Replay({{0}, {1}, {5}, {2}, {1}}, 2, std::make_unique<BeladyPolicy>(&oracle), 8);
  // t=2: expert 5 (unknown to the oracle) evicts 1 (next t=4) rather than 0 (t=2).
  // t=3: 0's predicted use has passed: re-asked, it is never used: 0 is evicted.
  REQUIRE(r.evicted.size() >= 2);
  CHECK(r.evicted[0] == 1);
  CHECK(r.evicted[1] == 0);
}

TEST_CASE("the oracle answers the next use strictly after a time") {
  TraceNextUseOracle o({2, 4});
  o.AddUse({1, 3}, 5);
  o.AddUse({1, 3}, 9);
  o.AddUse({1, 3}, 7);  // out of order: still answered in order
  CHECK(o.NextUseAfter({1, 3}, 0) == 5);
  CHECK(o.NextUseAfter({1, 3}, 5) == 7);
  CHECK(o.NextUseAfter({1, 3}, 8) == 9);
  CHECK(o.NextUseAfter({1, 3}, 9) == NextUseOracle::kNever);
  CHECK(o.NextUseAfter({0, 3}, 0) == NextUseOracle::kNever);
  o.ForgetBefore(8);
  CHECK(o.NextUseAfter({1, 3}, 0) == 9);
}

TEST_CASE("policy names parse, and Belady without foresight is refused") {
  CHECK(*ParseEvictionPolicy("lfu") == EvictionPolicyKind::kLfu);
  auto bad = ParseEvictionPolicy("fifo");
  REQUIRE(!bad.ok());
  CHECK(std::string(bad.status().message()).find("belady") != std::string::npos);
  auto belady = MakeEvictionPolicy(EvictionPolicyKind::kBelady, nullptr);
  CHECK(!belady.ok());
  CHECK(MakeEvictionPolicy(EvictionPolicyKind::kLru).ok());
}

TEST_CASE("on random traces Belady never misses more than LRU or LFU") {
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 200; ++trial) {
    const int32_t experts = 4 + static_cast<int32_t>(rng() % 12);
    const int32_t slots = 2 + static_cast<int32_t>(rng() % (experts - 2));
    const int per_step = trial % 2 == 0 ? 1 : 1 + static_cast<int>(rng() % std::min(slots, 3));
    const int len = 20 + static_cast<int>(rng() % 200);
    // Skewed popularity so the policies differ.
    std::vector<double> w(experts);
    for (int e = 0; e < experts; ++e) w[e] = 1.0 / (1 + e);
    std::discrete_distribution<int32_t> pick(w.begin(), w.end());
    std::vector<std::vector<int32_t>> trace(len);
    for (auto& step : trace) {
      while (static_cast<int>(step.size()) < per_step) {
        const int32_t e = pick(rng);
        if (std::find(step.begin(), step.end(), e) == step.end()) step.push_back(e);
      }
    }
    auto oracle = OracleFor(trace, experts);
    const auto belady = Replay(trace, slots, std::make_unique<BeladyPolicy>(oracle.get()), experts);
    const auto lru = Replay(trace, slots, std::make_unique<LruPolicy>(), experts);
    const auto lfu = Replay(trace, slots, std::make_unique<LfuPolicy>(), experts);
    INFO("trial " << trial << ": " << experts << " experts, " << slots << " slots, "
                  << per_step << " per step, length " << len);
    CHECK(belady.misses <= lru.misses);
    CHECK(belady.misses <= lfu.misses);
  }
}

}  // namespace
}  // namespace moe::engine
