#include "scheduler/kv_block_manager.h"

#include <set>

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

}  // namespace
}  // namespace moe::scheduler
