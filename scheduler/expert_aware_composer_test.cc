#include "scheduler/expert_aware_composer.h"

#include <algorithm>
#include <list>
#include <vector>

#include <catch2/catch.hpp>

namespace moe::scheduler {
namespace {

constexpr int kKeys = 128;  // two words

std::vector<uint64_t> Bits(std::initializer_list<int> keys) {
  std::vector<uint64_t> b(kKeys / 64, 0);
  for (int k : keys) b[k / 64] |= uint64_t{1} << (k % 64);
  return b;
}

std::vector<uint64_t> Range(int begin, int end) {
  std::vector<uint64_t> b(kKeys / 64, 0);
  for (int k = begin; k < end; ++k) b[k / 64] |= uint64_t{1} << (k % 64);
  return b;
}

// A decode-ready sequence in a simulation: a fixed footprint, its skips, its work.
struct SimSeq {
  std::vector<uint64_t> footprint;  // empty: unknown
  int skips = 0;
  int max_skips_seen = 0;
  int decoded = 0;
  int group = 0;
};

std::vector<DecodeCandidate> Candidates(const std::vector<SimSeq*>& seqs) {
  std::vector<DecodeCandidate> c;
  for (const SimSeq* s : seqs) c.push_back({&s->footprint, s->skips});
  return c;
}

// Applies one step's selection: decodes the taken, counts skips of the others.
void Apply(const std::vector<SimSeq*>& seqs, const std::vector<bool>& taken) {
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (taken[i]) {
      seqs[i]->skips = 0;
      ++seqs[i]->decoded;
    } else {
      ++seqs[i]->skips;
      seqs[i]->max_skips_seen = std::max(seqs[i]->max_skips_seen, seqs[i]->skips);
    }
  }
}

// An LRU cache of `capacity` keys; Access returns the misses of one step that touches
// every key of `u` once (ascending).
class LruCache {
 public:
  explicit LruCache(int capacity) : capacity_(capacity) {}
  int Access(const std::vector<uint64_t>& u) {
    int misses = 0;
    for (int k = 0; k < static_cast<int>(u.size()) * 64; ++k) {
      if (!((u[k / 64] >> (k % 64)) & 1)) continue;
      auto it = std::find(order_.begin(), order_.end(), k);
      if (it != order_.end()) {
        order_.erase(it);
      } else {
        ++misses;
        if (static_cast<int>(order_.size()) == capacity_) order_.pop_back();
      }
      order_.push_front(k);
    }
    return misses;
  }

 private:
  const int capacity_;
  std::list<int> order_;  // most recent first
};

std::vector<uint64_t> UnionOf(const std::vector<SimSeq*>& seqs, const std::vector<bool>& taken) {
  std::vector<uint64_t> u(kKeys / 64, 0);
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (!taken[i]) continue;
    for (size_t w = 0; w < seqs[i]->footprint.size(); ++w) u[w] |= seqs[i]->footprint[w];
  }
  return u;
}

TEST_CASE("a sequence whose experts never fit still runs every W+1 steps") {
  const int capacity = 8;
  for (int w : {1, 2, 4, 7}) {
    ExpertAwareComposer composer(capacity, w);
    SimSeq big{Range(0, capacity + 1)};  // never fits, even alone
    SimSeq a{Bits({100, 101})}, b{Bits({100, 102})}, c{Bits({101, 102})};
    std::vector<SimSeq*> seqs = {&big, &a, &b, &c};
    int last_run = 0;
    for (int step = 1; step <= 200; ++step) {
      const std::vector<bool> taken = composer.Select(Candidates(seqs), 64);
      if (taken[0]) {
        INFO("W=" << w << " step " << step);
        CHECK(step - last_run <= w + 1);
        last_run = step;
      }
      Apply(seqs, taken);
    }
    INFO("W=" << w);
    CHECK(big.max_skips_seen == w);  // it is left out while the others fit, up to the bound
    CHECK(big.decoded >= 200 / (w + 1));
    for (const SimSeq* s : seqs) CHECK(s->max_skips_seen <= w);
  }
}

TEST_CASE("when the union fits the cache everyone runs") {
  ExpertAwareComposer composer(/*capacity_keys=*/10);
  SimSeq s[5] = {{Bits({0, 1, 2})}, {Bits({2, 3})}, {Bits({3, 4, 70})}, {Bits({70, 71})},
                 {Bits({0, 127})}};  // union: 0,1,2,3,4,70,71,127 = 8 keys
  std::vector<SimSeq*> seqs = {&s[0], &s[1], &s[2], &s[3], &s[4]};
  const std::vector<bool> taken = composer.Select(Candidates(seqs), 64);
  CHECK(taken == std::vector<bool>(5, true));
}

TEST_CASE("two groups that fit apart run apart, with fewer misses than everyone together") {
  // Group 0 uses keys 0..7, group 1 keys 8..15, three sequences each, interleaved in age;
  // the cache holds 8 keys: one group's experts, not both.
  const int capacity = 8, work = 20, w = 4;
  auto make = [] {
    std::vector<SimSeq> s;
    // Members of a group overlap, so the greedy union grows least within a group.
    const std::vector<std::vector<uint64_t>> fps = {Range(0, 6), Range(8, 14), Range(2, 8),
                                                    Range(10, 16), Range(0, 8), Range(8, 16)};
    for (int i = 0; i < 6; ++i) s.push_back({fps[i], 0, 0, 0, i % 2});
    return s;
  };
  // Runs until every sequence has decoded `work` tokens; returns the LRU misses.
  auto simulate = [&](bool expert_aware, int* steps, bool* mixed) {
    std::vector<SimSeq> all = make();
    ExpertAwareComposer composer(capacity, w);
    LruCache cache(capacity);
    int misses = 0;
    *steps = 0;
    *mixed = false;
    while (true) {
      std::vector<SimSeq*> ready;
      for (SimSeq& s : all) {
        if (s.decoded < work) ready.push_back(&s);
      }
      if (ready.empty()) break;
      const std::vector<bool> taken = expert_aware ? composer.Select(Candidates(ready), 64)
                                                   : std::vector<bool>(ready.size(), true);
      int groups_seen = 0;
      for (size_t i = 0; i < ready.size(); ++i) {
        if (taken[i]) groups_seen |= 1 << ready[i]->group;
      }
      if (groups_seen == 3) *mixed = true;
      misses += cache.Access(UnionOf(ready, taken));
      Apply(ready, taken);
      ++*steps;
      REQUIRE(*steps < 1000);
    }
    for (const SimSeq& s : all) CHECK(s.max_skips_seen <= w);
    return misses;
  };
  int steps_all = 0, steps_aware = 0;
  bool mixed_all = false, mixed_aware = false;
  const int misses_all = simulate(false, &steps_all, &mixed_all);
  const int misses_aware = simulate(true, &steps_aware, &mixed_aware);
  CHECK(mixed_all);
  CHECK_FALSE(mixed_aware);  // every step runs one group only
  CHECK(steps_all == work);
  CHECK(steps_aware > work);  // the price: more, smaller steps
  INFO("misses: everyone " << misses_all << ", expert-aware " << misses_aware);
  CHECK(misses_aware < misses_all);

  // The first steps: the older group runs, the other waits, then runs when its wait
  // reaches the bound.
  std::vector<SimSeq> s = make();
  std::vector<SimSeq*> seqs;
  for (SimSeq& x : s) seqs.push_back(&x);
  ExpertAwareComposer composer(capacity, w);
  const std::vector<bool> group0 = {true, false, true, false, true, false};
  const std::vector<bool> group1 = {false, true, false, true, false, true};
  for (int step = 0; step < 2 * (w + 1); ++step) {
    const std::vector<bool> taken = composer.Select(Candidates(seqs), 64);
    INFO("step " << step);
    CHECK(taken == (step % (w + 1) == w ? group1 : group0));
    Apply(seqs, taken);
  }
}

TEST_CASE("sequences with unknown footprints always run") {
  // A miss priced at a whole step: running the two known ones apart pays.
  ExpertAwareComposer composer(/*capacity_keys=*/4, ExpertAwareComposer::kDefaultMaxSkips,
                               /*miss_cost_steps=*/1.0);
  SimSeq big{Range(0, 4)}, other{Range(4, 8)}, unknown1{{}}, unknown2{{}};
  std::vector<SimSeq*> seqs = {&big, &unknown1, &other, &unknown2};
  for (int step = 0; step < 10; ++step) {
    const std::vector<bool> taken = composer.Select(Candidates(seqs), 64);
    CHECK(taken[1]);
    CHECK(taken[3]);
    CHECK(taken[0] != taken[2]);  // the known ones do not fit together
    Apply(seqs, taken);
  }
  // A null footprint pointer is unknown too.
  std::vector<DecodeCandidate> c = {{&big.footprint, 0}, {nullptr, 0}, {&other.footprint, 0}};
  CHECK(composer.Select(c, 64) == std::vector<bool>{true, true, false});
}

TEST_CASE("at least one runs, and never more than max_seqs") {
  ExpertAwareComposer composer(/*capacity_keys=*/4, /*max_skips=*/2);
  SimSeq huge{Range(0, 50)};
  std::vector<SimSeq*> one = {&huge};
  CHECK(composer.Select(Candidates(one), 64) == std::vector<bool>{true});
  CHECK(composer.Select(Candidates(one), 0) == std::vector<bool>{false});
  CHECK(composer.Select({}, 8).empty());

  // Union fits: the oldest max_seqs run.
  std::vector<SimSeq> small(6, SimSeq{Bits({1})});
  std::vector<SimSeq*> seqs;
  for (SimSeq& s : small) seqs.push_back(&s);
  CHECK(composer.Select(Candidates(seqs), 3) ==
        std::vector<bool>{true, true, true, false, false, false});

  // Forced and unknown ones are capped too, the oldest forced first.
  for (SimSeq& s : small) s.skips = 2;
  small[4].footprint.clear();
  CHECK(composer.Select(Candidates(seqs), 2) ==
        std::vector<bool>{true, true, false, false, false, false});

  // Greedy case: within the capacity and max_seqs.
  std::vector<SimSeq> g = {{Bits({0})}, {Bits({1})}, {Bits({2})}, {Bits({3})}, {Bits({4})},
                           {Bits({0, 1})}};
  std::vector<SimSeq*> gs;
  for (SimSeq& s : g) gs.push_back(&s);
  std::vector<bool> taken = composer.Select(Candidates(gs), 64);
  CHECK(PopCount(UnionOf(gs, taken)) <= 4);
  // {0}, {1}, then {0,1} (no growth), {2}, {3}; {4} would make 5 keys.
  CHECK(taken == std::vector<bool>{true, true, true, true, false, true});
  taken = composer.Select(Candidates(gs), 2);
  CHECK(std::count(taken.begin(), taken.end(), true) == 2);
}

TEST_CASE("the experts already in the cache decide which group runs first") {
  // Two groups of two sequences, 8 keys each; the cache holds 8 keys: one group's.
  const int capacity = 8;
  SimSeq a0{Range(0, 6)}, a1{Range(2, 8)}, b0{Range(8, 14)}, b1{Range(10, 16)};
  std::vector<SimSeq*> seqs = {&a0, &b0, &a1, &b1};
  ExpertAwareComposer composer(capacity, /*max_skips=*/4, /*miss_cost_steps=*/1.0);
  const std::vector<bool> group_a = {true, false, true, false};
  const std::vector<bool> group_b = {false, true, false, true};
  // Nothing known to be resident: the older group (a0 is oldest).
  CHECK(composer.Select(Candidates(seqs), 64) == group_a);
  // Group b's experts are cached: b runs (no misses at all), a waits.
  const std::vector<uint64_t> b_cached = Range(8, 16);
  CHECK(composer.Select(Candidates(seqs), 64, b_cached) == group_b);
  // a's experts cached: a runs.
  CHECK(composer.Select(Candidates(seqs), 64, Range(0, 8)) == group_a);
}

TEST_CASE("sequences whose experts are all resident are free and always run") {
  // Capacity 8 but 16 keys resident (e.g. a cache larger than the composer was told):
  // every candidate is free, so nobody waits even though the union overflows.
  ExpertAwareComposer composer(/*capacity_keys=*/8, /*max_skips=*/4, /*miss_cost_steps=*/1.0);
  SimSeq a{Range(0, 6)}, b{Range(8, 14)}, c{Range(4, 12)};
  std::vector<SimSeq*> seqs = {&a, &b, &c};
  CHECK(composer.Select(Candidates(seqs), 64, Range(0, 16)) == std::vector<bool>(3, true));
  // Keys 0..7 resident: a is free; c would add 4 misses and b 6, overflowing the cache:
  // a runs alone.
  CHECK(composer.Select(Candidates(seqs), 64, Range(0, 8)) ==
        std::vector<bool>{true, false, false});
}

TEST_CASE("the price of a miss decides whether deferring pays") {
  // Two disjoint groups that overflow the cache together (16 keys, capacity 8).
  SimSeq a0{Range(0, 6)}, a1{Range(2, 8)}, b0{Range(8, 14)}, b1{Range(10, 16)};
  std::vector<SimSeq*> seqs = {&a0, &b0, &a1, &b1};
  // Everyone: 1 step + 16 misses + 8 beyond capacity for 4 tokens; group a: 1 step + 8
  // misses for 2 tokens. Per token: (1 + 24r) / 4 against (1 + 8r) / 2: deferring pays
  // for r > 1/8.
  for (double r : {0.0, 0.05, 0.1}) {
    INFO("miss_cost_steps " << r);
    CHECK(ExpertAwareComposer(8, 4, r).Select(Candidates(seqs), 64) ==
          std::vector<bool>(4, true));
  }
  for (double r : {0.15, 0.2, 1.0, 10.0}) {
    INFO("miss_cost_steps " << r);
    CHECK(ExpertAwareComposer(8, 4, r).Select(Candidates(seqs), 64) ==
          std::vector<bool>{true, false, true, false});
  }
}

}  // namespace
}  // namespace moe::scheduler
