#include "scheduler/prefix_cache.h"

#include <vector>

#include <catch2/catch.hpp>

namespace moe::scheduler {
namespace {

using Tokens = std::vector<int32_t>;

TEST_CASE("PrefixCache: a block matches only after the same parent chain") {
  PrefixCache c(8);
  const Tokens a = {1, 2, 3, 4}, b = {5, 6, 7, 8};
  const auto la = c.Register(0, PrefixCache::Root(), a);
  REQUIRE(la.has_value());
  const auto lb = c.Register(1, *la, b);
  REQUIRE(lb.has_value());
  REQUIRE(c.num_registered() == 2);

  const auto hit_a = c.Lookup(PrefixCache::Root(), a);
  REQUIRE(hit_a.has_value());
  REQUIRE(hit_a->block == 0);
  REQUIRE(hit_a->link == *la);
  const auto hit_b = c.Lookup(hit_a->link, b);
  REQUIRE(hit_b.has_value());
  REQUIRE(hit_b->block == 1);
  // Same tokens as block 1, but at the start of a sequence: its KV would be different.
  REQUIRE_FALSE(c.Lookup(PrefixCache::Root(), b).has_value());
  // Same tokens after a different (registered) parent.
  const auto lc = c.Register(2, PrefixCache::Root(), Tokens{9, 9, 9, 9});
  REQUIRE(lc.has_value());
  REQUIRE_FALSE(c.Lookup(*lc, b).has_value());
  // A parent whose registration is gone (its block was reused) leads nowhere, even if the
  // same block id is registered again with other content.
  c.Unregister(0);
  REQUIRE_FALSE(c.IsRegistered(0));
  REQUIRE_FALSE(c.Lookup(PrefixCache::Root(), a).has_value());
  const auto la2 = c.Register(0, PrefixCache::Root(), a);
  REQUIRE(la2.has_value());
  REQUIRE(la2->serial != la->serial);
  REQUIRE_FALSE(c.Lookup(*la2, b).has_value());  // block 1 hangs off the old registration
}

TEST_CASE("PrefixCache: an identical prefix registered twice keeps the first block") {
  PrefixCache c(4);
  const Tokens a = {1, 2}, b = {3, 4};
  const auto first = c.Register(0, PrefixCache::Root(), a);
  const auto dup = c.Register(2, PrefixCache::Root(), a);
  REQUIRE(first.has_value());
  REQUIRE(dup.has_value());
  REQUIRE(*dup == *first);  // the chain continues from the registered copy
  REQUIRE(c.IsRegistered(0));
  REQUIRE_FALSE(c.IsRegistered(2));
  // The duplicate's successor chains onto the registered block.
  REQUIRE(c.Register(3, *dup, b).has_value());
  const auto hit = c.Lookup(PrefixCache::Root(), a);
  REQUIRE(hit->block == 0);
  REQUIRE(c.Lookup(hit->link, b)->block == 3);
}

TEST_CASE("PrefixCache: hash collisions never serve another content") {
  // Mask 0: every content hashes to the same value.
  PrefixCache c(4, /*hash_mask=*/0);
  const Tokens a = {1, 2, 3}, b = {4, 5, 6};
  REQUIRE(c.Hash(123, a) == c.Hash(456, b));
  const auto la = c.Register(0, PrefixCache::Root(), a);
  REQUIRE(la.has_value());
  REQUIRE_FALSE(c.Lookup(PrefixCache::Root(), b).has_value());
  // Same tokens as `a`, different parent: same hash, still a miss.
  REQUIRE_FALSE(c.Lookup(*la, a).has_value());
  // The colliding content is not registered, and its chain cannot continue.
  REQUIRE_FALSE(c.Register(1, PrefixCache::Root(), b).has_value());
  REQUIRE_FALSE(c.IsRegistered(1));
  REQUIRE(c.Lookup(PrefixCache::Root(), a)->block == 0);
  // Once the holder is gone, the other content can take the hash.
  c.Unregister(0);
  REQUIRE(c.Register(1, PrefixCache::Root(), b).has_value());
  REQUIRE(c.Lookup(PrefixCache::Root(), b)->block == 1);
  REQUIRE_FALSE(c.Lookup(PrefixCache::Root(), a).has_value());
}

TEST_CASE("PrefixCache: the full hash separates contents and parents") {
  PrefixCache c(1);
  REQUIRE(c.Hash(1, Tokens{1, 2}) != c.Hash(1, Tokens{2, 1}));
  REQUIRE(c.Hash(1, Tokens{1, 2}) != c.Hash(2, Tokens{1, 2}));
  REQUIRE(c.Hash(1, Tokens{0}) != c.Hash(1, Tokens{0, 0}));
  REQUIRE(c.Hash(1, Tokens{1, 2}) == c.Hash(1, Tokens{1, 2}));
}

}  // namespace
}  // namespace moe::scheduler
