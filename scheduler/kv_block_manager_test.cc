#include "scheduler/kv_block_manager.h"

#include <numeric>
#include <random>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

namespace moe::scheduler {
namespace {

TEST_CASE("KvBlockManager reserves whole blocks and keeps the accounting exact") {
  KvBlockManager kv(/*num_blocks=*/8, /*block_size=*/16);
  REQUIRE(kv.num_free_blocks() == 8);
  REQUIRE(kv.BlocksFor(0) == 0);
  REQUIRE(kv.BlocksFor(1) == 1);
  REQUIRE(kv.BlocksFor(16) == 1);
  REQUIRE(kv.BlocksFor(17) == 2);

  REQUIRE(kv.Reserve(1, 17));  // 2 blocks
  REQUIRE(kv.BlockTable(1).size() == 2);
  REQUIRE(kv.Reserve(1, 32));  // still 2
  REQUIRE(kv.BlockTable(1).size() == 2);
  REQUIRE(kv.Reserve(1, 33));  // grows to 3
  REQUIRE(kv.BlockTable(1).size() == 3);
  REQUIRE(kv.Reserve(2, 80));  // 5 blocks: pool now full
  REQUIRE(kv.num_free_blocks() == 0);
  REQUIRE(kv.usage() == Approx(1.0));

  // No partial allocation when the pool is short.
  REQUIRE_FALSE(kv.Reserve(3, 1));
  REQUIRE_FALSE(kv.Has(3));
  REQUIRE_FALSE(kv.Reserve(1, 49));
  REQUIRE(kv.BlockTable(1).size() == 3);

  // Every block is in exactly one table.
  std::set<int32_t> seen;
  for (int64_t id : {1, 2}) {
    for (int32_t b : kv.BlockTable(id)) {
      REQUIRE(b >= 0);
      REQUIRE(b < 8);
      REQUIRE(seen.insert(b).second);
    }
  }
  REQUIRE(seen.size() == 8);

  kv.Free(2);
  REQUIRE(kv.num_free_blocks() == 5);
  REQUIRE(kv.BlockTable(2).empty());
  kv.Free(2);  // idempotent
  REQUIRE(kv.num_free_blocks() == 5);
  REQUIRE(kv.Reserve(3, 16 * 5));
  kv.Free(1);
  kv.Free(3);
  REQUIRE(kv.num_free_blocks() == 8);
  REQUIRE(kv.num_sequences() == 0);
  REQUIRE(kv.CheckInvariants().ok());
}

TEST_CASE("KvBlockManager extra-block arithmetic") {
  KvBlockManager kv(4, 16);
  REQUIRE(kv.ExtraBlocksFor(7, 20) == 2);
  REQUIRE(kv.Reserve(7, 10));
  REQUIRE(kv.ExtraBlocksFor(7, 16) == 0);
  REQUIRE(kv.ExtraBlocksFor(7, 17) == 1);
  REQUIRE(kv.ExtraBlocksFor(7, 64) == 3);
  REQUIRE(kv.ExtraBlocksFor(7, 65) == 4);
  REQUIRE_FALSE(kv.Reserve(7, 65));
}

using Tokens = std::vector<int32_t>;

Tokens Range(int begin, int n) {
  Tokens t(static_cast<size_t>(n));
  std::iota(t.begin(), t.end(), begin);
  return t;
}

// Reserves seq's whole token list, as if every position were computed, and registers it.
void Compute(KvBlockManager& kv, int64_t seq, const Tokens& tokens) {
  REQUIRE(kv.Reserve(seq, static_cast<int>(tokens.size())));
  kv.RegisterComputed(seq, tokens, static_cast<int>(tokens.size()));
}

TEST_CASE("Prefix caching: a later sequence attaches the computed full blocks of an equal "
          "prefix, with reference counts") {
  KvBlockManager kv(/*num_blocks=*/16, /*block_size=*/4, /*enable_prefix_caching=*/true);
  const Tokens a = Range(100, 14);  // 3 full blocks + 2 tokens
  Compute(kv, 1, a);
  REQUIRE(kv.BlockTable(1).size() == 4);
  for (int i = 0; i < 3; ++i) REQUIRE(kv.IsRegistered(kv.BlockTable(1)[i]));
  REQUIRE_FALSE(kv.IsRegistered(kv.BlockTable(1)[3]));  // partial: never registered

  const PrefixMatch m = kv.FindPrefix(a);
  REQUIRE(m.num_tokens == 12);
  REQUIRE(m.num_evictable == 0);
  const int free_before = kv.num_free_blocks();
  kv.AttachPrefix(2, m);
  REQUIRE(kv.num_free_blocks() == free_before);  // shared, not allocated
  REQUIRE(kv.Reserve(2, 14));
  REQUIRE(kv.num_free_blocks() == free_before - 1);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(kv.BlockTable(2)[i] == kv.BlockTable(1)[i]);
    REQUIRE(kv.RefCount(kv.BlockTable(2)[i]) == 2);
  }
  REQUIRE(kv.BlockTable(2)[3] != kv.BlockTable(1)[3]);
  REQUIRE(kv.CheckInvariants().ok());

  // A different third block matches only the first two.
  Tokens b = a;
  b[9] = 7;
  REQUIRE(kv.FindPrefix(b).num_tokens == 8);
  // Different first token: nothing, though later blocks are equal.
  Tokens c = a;
  c[0] = 7;
  REQUIRE(kv.FindPrefix(c).num_tokens == 0);

  kv.Free(1);
  REQUIRE(kv.RefCount(kv.BlockTable(2)[0]) == 1);
  REQUIRE(kv.num_free_blocks() == 16 - 4);
  kv.Free(2);
  // Everything is available again; the three registered blocks stay matchable.
  REQUIRE(kv.num_free_blocks() == 16);
  REQUIRE(kv.usage() == Approx(0.0));
  REQUIRE(kv.num_evictable_blocks() == 3);
  const PrefixMatch again = kv.FindPrefix(a);
  REQUIRE(again.num_tokens == 12);
  REQUIRE(again.num_evictable == 3);
  // Attaching evictable blocks takes them out of the available count.
  kv.AttachPrefix(3, again);
  REQUIRE(kv.num_free_blocks() == 13);
  REQUIRE(kv.num_evictable_blocks() == 0);
  REQUIRE(kv.CheckInvariants().ok());
}

TEST_CASE("Prefix caching: the last token is always computed (k*B tokens reuse k-1 blocks)") {
  KvBlockManager kv(16, 4, true);
  const Tokens a = Range(0, 16);  // exactly 4 blocks
  Compute(kv, 1, a);
  REQUIRE(kv.FindPrefix(a).blocks.size() == 3);  // floor((16 - 1) / 4)
  REQUIRE(kv.FindPrefix(Range(0, 13)).blocks.size() == 3);
  REQUIRE(kv.FindPrefix(Range(0, 12)).blocks.size() == 2);
  REQUIRE(kv.FindPrefix(Range(0, 5)).blocks.size() == 1);
  REQUIRE(kv.FindPrefix(Range(0, 4)).blocks.size() == 0);
  REQUIRE(kv.FindPrefix(Range(0, 1)).blocks.size() == 0);
  REQUIRE(kv.FindPrefix(Tokens{}).blocks.empty());
  Tokens longer = Range(0, 40);
  REQUIRE(kv.FindPrefix(longer).num_tokens == 16);  // all four registered blocks
}

TEST_CASE("Prefix caching: only blocks below num_computed register, generated tokens too, "
          "and the chain continues after a duplicate") {
  KvBlockManager kv(16, 4, true);
  Tokens a = Range(0, 10);
  REQUIRE(kv.Reserve(1, 10));
  kv.RegisterComputed(1, a, 6);  // one full block computed
  REQUIRE(kv.FindPrefix(a).num_tokens == 4);
  kv.RegisterComputed(1, a, 10);
  REQUIRE(kv.FindPrefix(a).num_tokens == 8);
  // Decode appends generated tokens; the chain goes on through them.
  for (int t = 0; t < 6; ++t) {
    a.push_back(50 + t);
    REQUIRE(kv.Reserve(1, static_cast<int>(a.size())));
    kv.RegisterComputed(1, a, static_cast<int>(a.size()) - 1);  // the new one not yet computed
  }
  REQUIRE(kv.FindPrefix(a).num_tokens == 12);  // 16 tokens, 15 computed: 3 full blocks

  // Sequence 2 computed the same 8 tokens at the same time (no match at its admission),
  // then went further: its copies stay private, its third block chains onto 1's blocks.
  Tokens b = Range(0, 8);
  for (int t = 0; t < 5; ++t) b.push_back(90 + t);
  Compute(kv, 2, b);
  REQUIRE_FALSE(kv.IsRegistered(kv.BlockTable(2)[0]));
  REQUIRE_FALSE(kv.IsRegistered(kv.BlockTable(2)[1]));
  REQUIRE(kv.IsRegistered(kv.BlockTable(2)[2]));
  const PrefixMatch m = kv.FindPrefix(b);
  REQUIRE(m.num_tokens == 12);
  REQUIRE(m.blocks[0] == kv.BlockTable(1)[0]);
  REQUIRE(m.blocks[1] == kv.BlockTable(1)[1]);
  REQUIRE(m.blocks[2] == kv.BlockTable(2)[2]);
  kv.Free(2);  // the private duplicates go to the free list, not the evictable set
  REQUIRE(kv.num_evictable_blocks() == 1);
  REQUIRE(kv.CheckInvariants().ok());
}

TEST_CASE("Prefix caching: free blocks go first, then the least recently released "
          "evictable block, the tail of a chain before its head") {
  KvBlockManager kv(8, 4, true);
  const Tokens p = Range(0, 13);    // 3 full blocks + 1
  const Tokens r = Range(500, 9);   // 2 full blocks + 1
  Compute(kv, 1, p);
  kv.Free(1);
  Compute(kv, 2, r);
  kv.Free(2);
  REQUIRE(kv.num_evictable_blocks() == 5);
  REQUIRE(kv.num_free_blocks() == 8);
  // Three free blocks (never used, or a partial last block): taking them evicts nothing.
  REQUIRE(kv.Reserve(3, 12));
  REQUIRE(kv.num_evictable_blocks() == 5);
  REQUIRE(kv.FindPrefix(p).num_tokens == 12);
  REQUIRE(kv.FindPrefix(r).num_tokens == 8);
  // A sequence reusing p's first block and ending makes it the most recently released.
  kv.AttachPrefix(5, kv.FindPrefix(Range(0, 5)));
  REQUIRE(kv.BlockTable(5).size() == 1);
  kv.Free(5);
  // Evicted now: p's tail to head (minus the refreshed head), then r's, then p's head.
  REQUIRE(kv.Reserve(4, 4));
  REQUIRE(kv.FindPrefix(p).num_tokens == 8);
  REQUIRE(kv.Reserve(4, 8));
  REQUIRE(kv.FindPrefix(p).num_tokens == 4);
  REQUIRE(kv.FindPrefix(r).num_tokens == 8);
  REQUIRE(kv.Reserve(4, 12));
  REQUIRE(kv.FindPrefix(r).num_tokens == 4);
  REQUIRE(kv.Reserve(4, 16));
  REQUIRE(kv.FindPrefix(r).num_tokens == 0);
  REQUIRE(kv.FindPrefix(p).num_tokens == 4);
  REQUIRE(kv.Reserve(4, 20));
  REQUIRE(kv.FindPrefix(p).num_tokens == 0);
  REQUIRE(kv.num_free_blocks() == 0);
  REQUIRE_FALSE(kv.Reserve(6, 1));
  REQUIRE(kv.CheckInvariants().ok());
}

TEST_CASE("Prefix caching: a hash collision never attaches another prefix's blocks") {
  KvBlockManager kv(16, 4, true, /*prefix_hash_mask=*/0);  // every block hashes alike
  const Tokens a = Range(0, 12);
  Compute(kv, 1, a);
  // Only the first block could be registered; the second collided and broke the chain.
  REQUIRE(kv.IsRegistered(kv.BlockTable(1)[0]));
  REQUIRE_FALSE(kv.IsRegistered(kv.BlockTable(1)[1]));
  REQUIRE(kv.FindPrefix(a).num_tokens == 4);
  Tokens b = a;
  b[0] = 99;
  REQUIRE(kv.FindPrefix(b).num_tokens == 0);
  REQUIRE(kv.CheckInvariants().ok());
}

TEST_CASE("Prefix caching off: nothing registers, nothing matches") {
  KvBlockManager kv(8, 4, false);
  const Tokens a = Range(0, 12);
  Compute(kv, 1, a);
  REQUIRE(kv.FindPrefix(a).num_tokens == 0);
  kv.Free(1);
  REQUIRE(kv.num_evictable_blocks() == 0);
  REQUIRE(kv.FindPrefix(a).num_tokens == 0);
  REQUIRE(kv.CheckInvariants().ok());
}

// Random admissions (with prefix matching), decode extensions and frees over a small pool,
// with a shadow KV store: every slot remembers the whole token prefix it was computed
// for, so attaching a block computed for another prefix fails the test, as does writing
// into a block another table shares. Invariants are checked after every operation.
void RunRandomOperations(uint64_t hash_mask, uint32_t seed) {
  constexpr int kBlocks = 24, kB = 4;
  KvBlockManager kv(kBlocks, kB, true, hash_mask);
  std::mt19937 rng(seed);
  auto uniform = [&rng](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Tokens> stems(3);
  for (Tokens& s : stems) {
    for (int i = 0; i < 20; ++i) s.push_back(uniform(0, 4));
  }
  std::vector<Tokens> slot(static_cast<size_t>(kBlocks) * kB);  // prefix computed there
  struct Seq {
    int64_t id;
    Tokens tokens;
  };
  std::vector<Seq> live;
  int64_t next_id = 1;
  int64_t hits = 0, admitted = 0;

  auto compute = [&](const Seq& s, int from) {
    const auto table = kv.BlockTable(s.id);
    for (int p = from; p < static_cast<int>(s.tokens.size()); ++p) {
      const int32_t b = table[p / kB];
      REQUIRE(kv.RefCount(b) == 1);  // never write a shared block
      slot[static_cast<size_t>(b) * kB + p % kB].assign(s.tokens.begin(), s.tokens.begin() + p + 1);
    }
    kv.RegisterComputed(s.id, s.tokens, static_cast<int>(s.tokens.size()));
  };

  for (int step = 0; step < 3000; ++step) {
    const int op = uniform(0, 9);
    if (op < 4) {  // admit a new sequence
      Seq s{next_id++, {}};
      const Tokens& stem = stems[uniform(0, 2)];
      s.tokens.assign(stem.begin(), stem.begin() + uniform(0, 20));
      for (int n = uniform(1, 8); n > 0; --n) s.tokens.push_back(uniform(0, 2));
      const PrefixMatch m = kv.FindPrefix(s.tokens);
      REQUIRE(m.num_tokens % kB == 0);
      REQUIRE(m.num_tokens < static_cast<int>(s.tokens.size()));
      // The matched blocks hold exactly this sequence's prefix.
      for (int p = 0; p < m.num_tokens; ++p) {
        REQUIRE(slot[static_cast<size_t>(m.blocks[p / kB]) * kB + p % kB] ==
                Tokens(s.tokens.begin(), s.tokens.begin() + p + 1));
      }
      const int needed = kv.BlocksFor(static_cast<int>(s.tokens.size())) -
                         static_cast<int>(m.blocks.size()) + m.num_evictable;
      if (needed > kv.num_free_blocks()) continue;
      kv.AttachPrefix(s.id, m);
      REQUIRE(kv.Reserve(s.id, static_cast<int>(s.tokens.size())));  // admission was right
      compute(s, m.num_tokens);
      hits += m.num_tokens;
      ++admitted;
      live.push_back(std::move(s));
    } else if (op < 7 && !live.empty()) {  // decode a few tokens
      Seq& s = live[uniform(0, static_cast<int>(live.size()) - 1)];
      const int from = static_cast<int>(s.tokens.size());
      for (int n = uniform(1, 3); n > 0; --n) s.tokens.push_back(uniform(0, 2));
      if (!kv.Reserve(s.id, static_cast<int>(s.tokens.size()))) {
        s.tokens.resize(from);
        continue;
      }
      compute(s, from);
    } else if (!live.empty()) {  // finish or preempt
      const size_t i = static_cast<size_t>(uniform(0, static_cast<int>(live.size()) - 1));
      kv.Free(live[i].id);
      live.erase(live.begin() + static_cast<long>(i));
    }
    const absl::Status st = kv.CheckInvariants();
    INFO("step " << step << ": " << st.message());
    REQUIRE(st.ok());
  }
  // The workload really shares prefixes.
  REQUIRE(admitted > 100);
  REQUIRE(hits > 100);
}

TEST_CASE("Prefix caching: invariants and KV content survive random operations") {
  SECTION("full hash") { RunRandomOperations(~uint64_t{0}, 7); }
  SECTION("4-value hash: collisions everywhere") { RunRandomOperations(3, 11); }
}

}  // namespace
}  // namespace moe::scheduler
