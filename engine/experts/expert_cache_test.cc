// ExpertCache bookkeeping: slot table, pins, fill state, prefetch, statistics.
#include "engine/experts/expert_cache.h"

#include <vector>

#include <catch2/catch.hpp>

namespace moe::engine {
namespace {

std::unique_ptr<ExpertCache> MakeCache(int32_t slots, int32_t* storage = nullptr,
                                       ExpertGrid grid = {2, 4}) {
  ExpertCacheOptions o;
  o.grid = grid;
  o.num_slots = slots;
  o.bytes_per_expert = 100;
  auto c = ExpertCache::Create(o, std::make_unique<LruPolicy>(), storage);
  REQUIRE(c.ok());
  return std::move(*c);
}

void FillAll(ExpertCache& c, const std::vector<Placement>& placed) {
  for (const auto& p : placed)
    if (p.needs_fill) REQUIRE(c.MarkFilled(p.slot).ok());
}

TEST_CASE("the slot table maps resident experts to their slots, -1 elsewhere") {
  auto c = MakeCache(3);
  std::vector<Placement> placed;
  REQUIRE(c->AcquireAndPin({{1, 2}, {0, 3}, {1, 2}}, &placed).ok());
  REQUIRE(placed.size() == 2);  // duplicates merged
  const int32_t* table = c->slot_table();
  CHECK(table[1 * 4 + 2] == placed[0].slot);
  CHECK(table[0 * 4 + 3] == placed[1].slot);
  CHECK(placed[0].slot != placed[1].slot);
  int resident = 0;
  for (int i = 0; i < 8; ++i) resident += table[i] >= 0;
  CHECK(resident == 2);
  CHECK(c->slot_key(placed[0].slot) == ExpertKey{1, 2});
  CHECK(placed[0].needs_fill);
  CHECK(!placed[0].hit);
}

TEST_CASE("the table lives at a fixed address, in caller storage when given") {
  std::vector<int32_t> storage(8, 77);
  auto c = MakeCache(2, storage.data());
  CHECK(c->slot_table() == storage.data());
  for (int32_t v : storage) CHECK(v == -1);
  std::vector<Placement> placed;
  for (int e = 0; e < 4; ++e) {  // churn: evictions rewrite entries in place
    REQUIRE(c->AcquireAndPin({{0, e}}, &placed).ok());
    FillAll(*c, placed);
    c->UnpinAll();
  }
  CHECK(c->slot_table() == storage.data());
  CHECK(storage[3] >= 0);
  CHECK(storage[2] >= 0);
  CHECK(storage[0] == -1);
  CHECK(storage[1] == -1);
}

TEST_CASE("pinned slots are never evicted; too many distinct experts is an error") {
  auto c = MakeCache(3);
  std::vector<Placement> placed;
  REQUIRE(c->AcquireAndPin({{0, 0}, {0, 1}}, &placed).ok());
  FillAll(*c, placed);
  // Slots: 2 pinned, 1 free. Two new experts cannot fit.
  auto st = c->AcquireAndPin({{1, 0}, {1, 1}}, &placed);
  REQUIRE(!st.ok());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(st.message()).find("needs 2") != std::string::npos);
  // Nothing changed.
  CHECK(c->Lookup({1, 0}) == -1);
  CHECK(c->num_resident() == 2);
  CHECK(c->stats().misses == 2);
  // One fits; the pinned ones stay.
  REQUIRE(c->AcquireAndPin({{1, 0}}, &placed).ok());
  FillAll(*c, placed);
  CHECK(!placed[0].evicted);
  CHECK(c->Lookup({0, 0}) >= 0);
  CHECK(c->Lookup({0, 1}) >= 0);
  c->UnpinAll();
  REQUIRE(c->AcquireAndPin({{1, 1}}, &placed).ok());
  REQUIRE(placed[0].evicted.has_value());
  CHECK(*placed[0].evicted == ExpertKey{0, 0});  // LRU among the now unpinned
  CHECK(c->Lookup({0, 0}) == -1);
}

TEST_CASE("a layer's hits are pinned before its misses choose victims") {
  auto c = MakeCache(2);
  std::vector<Placement> placed;
  REQUIRE(c->AcquireAndPin({{0, 0}}, &placed).ok());
  FillAll(*c, placed);
  c->UnpinAll();
  REQUIRE(c->AcquireAndPin({{0, 1}}, &placed).ok());
  FillAll(*c, placed);
  c->UnpinAll();
  // (0,0) is LRU, but this request uses it: the miss must evict (0,1).
  REQUIRE(c->AcquireAndPin({{1, 3}, {0, 0}}, &placed).ok());
  REQUIRE(placed.size() == 2);
  CHECK(placed[0].needs_fill);
  REQUIRE(placed[0].evicted.has_value());
  CHECK(*placed[0].evicted == ExpertKey{0, 1});
  CHECK(placed[1].hit);
}

TEST_CASE("a slot whose copy is in flight is never a victim") {
  auto c = MakeCache(2);
  std::vector<Placement> placed;
  auto p = c->Prefetch({0, 0});
  REQUIRE(p.ok());
  REQUIRE(p->has_value());
  CHECK(c->slot_state((*p)->slot) == SlotState::kFilling);
  REQUIRE(c->AcquireAndPin({{0, 1}}, &placed).ok());
  c->UnpinAll();  // (0,1) unpinned but still filling too
  // Both slots filling: nothing can be evicted.
  auto st = c->AcquireAndPin({{1, 1}}, &placed);
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  auto q = c->Prefetch({1, 2});
  REQUIRE(q.ok());
  CHECK(!q->has_value());
  CHECK(c->stats().prefetches_rejected == 1);
  // The prefetched copy lands; now it can go.
  REQUIRE(c->MarkFilled((*p)->slot).ok());
  REQUIRE(c->AcquireAndPin({{1, 1}}, &placed).ok());
  CHECK(*placed[0].evicted == ExpertKey{0, 0});
  CHECK(!c->MarkFilled((*p)->slot + 100).ok());
}

TEST_CASE("a demand use of an expert still being prefetched is a late hit") {
  auto c = MakeCache(2);
  auto p = c->Prefetch({1, 1});
  REQUIRE(p.ok());
  std::vector<Placement> placed;
  REQUIRE(c->AcquireAndPin({{1, 1}}, &placed).ok());
  CHECK(placed[0].hit);
  CHECK(placed[0].filling);
  CHECK(!placed[0].needs_fill);
  CHECK(c->stats().late_hits == 1);
  CHECK(c->stats().prefetches_used == 1);
  // Prefetching what is resident does nothing.
  auto again = c->Prefetch({1, 1});
  REQUIRE(again.ok());
  CHECK(!again->has_value());
  CHECK(c->stats().prefetches_issued == 1);
}

TEST_CASE("statistics count hits, misses, evictions, prefetch use and waste, bytes") {
  auto c = MakeCache(2);
  std::vector<Placement> placed;
  auto use = [&](ExpertKey k) {
    REQUIRE(c->AcquireAndPin({k}, &placed).ok());
    FillAll(*c, placed);
    c->UnpinAll();
  };
  use({0, 0});  // miss
  use({0, 0});  // hit
  auto p = c->Prefetch({0, 1});  // issued, fills the second slot
  REQUIRE(c->MarkFilled((*p)->slot).ok());
  use({0, 1});  // hit, prefetch used
  auto w = c->Prefetch({0, 2});  // evicts (0,0)
  REQUIRE(c->MarkFilled((*w)->slot).ok());
  use({0, 3});  // miss, evicts the LRU: (0,1)
  use({1, 0});  // miss, evicts (0,2): prefetched, never used -> wasted
  const auto& s = c->stats();
  CHECK(s.hits == 2);
  CHECK(s.misses == 3);
  CHECK(s.prefetches_issued == 2);
  CHECK(s.prefetches_used == 1);
  CHECK(s.prefetches_wasted == 1);
  CHECK(s.evictions == 3);
  CHECK(s.bytes_moved == 5 * 100);
  CHECK(s.hit_rate() == Approx(2.0 / 5.0));
}

TEST_CASE("table updates are reported once per changed index") {
  auto c = MakeCache(1);
  std::vector<Placement> placed;
  REQUIRE(c->AcquireAndPin({{0, 1}}, &placed).ok());
  FillAll(*c, placed);
  c->UnpinAll();
  REQUIRE(c->AcquireAndPin({{1, 2}}, &placed).ok());
  std::vector<int64_t> changed;
  c->DrainTableUpdates(&changed);
  std::sort(changed.begin(), changed.end());
  CHECK(changed == std::vector<int64_t>{1, 6});
  changed.clear();
  c->DrainTableUpdates(&changed);
  CHECK(changed.empty());
}

TEST_CASE("bad options and keys are refused with the field named") {
  ExpertCacheOptions o;
  o.grid = {2, 4};
  o.num_slots = 0;
  auto c = ExpertCache::Create(o, std::make_unique<LruPolicy>());
  REQUIRE(!c.ok());
  CHECK(std::string(c.status().message()).find("num_slots") != std::string::npos);
  auto ok = MakeCache(2);
  std::vector<Placement> placed;
  auto st = ok->AcquireAndPin({{2, 0}}, &placed);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(SlotsForBudget(1000, 300, {2, 4}) == 3);
  CHECK(SlotsForBudget(1u << 30, 300, {2, 4}) == 8);
}

}  // namespace
}  // namespace moe::engine
