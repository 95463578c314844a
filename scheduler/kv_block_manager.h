// Accounting for the paged KV cache: a pool of fixed-size blocks (block_size tokens
// each), each sequence's block table (physical block ids in position order: block i of a
// table holds positions [i*B, (i+1)*B)), and, with prefix caching on, reuse of computed
// full blocks across sequences (prefix_cache.h). The ModelRunner stores the keys/values;
// this class only decides which physical block holds what.
//
// Every block is in exactly one of three states:
//   free       – no table holds it and it holds no registered prefix;
//   evictable  – no table holds it, but it holds a registered prefix: still matchable by
//                FindPrefix, and reused (unregistered) only when no free block is left,
//                least recently released first;
//   in use     – its reference count is the number of tables that hold it (> 1 only for
//                a registered prefix block attached by AttachPrefix).
// Allocation takes free blocks first (LIFO), then evicts the LRU evictable block.
// Evictable blocks count as available: num_free_blocks() = free + evictable (as vLLM's
// "free" KV blocks), so admission and preemption decisions see them as room.
//
// Only full blocks strictly before a sequence's first uncomputed position are ever
// shared, and a runner writes only positions >= num_computed, so a shared block is never
// written while shared.
//
// Invariants (CheckInvariants): each block's reference count equals the number of tables
// holding it; a table never holds a block twice; free blocks are unregistered and
// evictable blocks registered, both with count 0 and in no table; num_free_blocks() +
// (blocks in use) == num_blocks(). With prefix caching off nothing is ever registered,
// evictable is empty and the tables partition the used blocks (the old behaviour).
//
// Thread safety: not thread-safe. Owned and used by the scheduler's engine thread only.
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "scheduler/prefix_cache.h"

namespace moe::scheduler {

// The reusable start of a token sequence, found by KvBlockManager::FindPrefix.
struct PrefixMatch {
  std::vector<int32_t> blocks;             // physical blocks, in position order
  std::vector<PrefixCache::Link> links;    // the chain after each block
  int num_tokens = 0;                      // blocks.size() * block_size
  int num_evictable = 0;                   // of `blocks`, those no table holds now
};

class KvBlockManager {
 public:
  // `prefix_hash_mask` is for tests (PrefixCache's hash_mask: a tiny mask forces hash
  // collisions).
  KvBlockManager(int num_blocks, int block_size, bool enable_prefix_caching = false,
                 uint64_t prefix_hash_mask = ~uint64_t{0});

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  // Blocks an allocation may take: free + evictable.
  int num_free_blocks() const { return static_cast<int>(free_.size() + evictable_.size()); }
  // Of those, the ones still holding a registered (matchable) prefix.
  int num_evictable_blocks() const { return static_cast<int>(evictable_.size()); }
  int num_used_blocks() const { return num_blocks_ - num_free_blocks(); }
  // Fraction of blocks in use (held by a table), in [0, 1].
  double usage() const;

  // Blocks needed to hold `num_tokens` positions.
  int BlocksFor(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }
  // Extra blocks `seq_id` needs so that its table covers `num_tokens` positions.
  int ExtraBlocksFor(int64_t seq_id, int num_tokens) const;

  // Grows seq_id's table (creating it if needed) to cover `num_tokens` positions with
  // newly allocated, private blocks. Returns false and changes nothing when there are
  // not enough free + evictable blocks.
  bool Reserve(int64_t seq_id, int num_tokens);
  // Drops seq_id's references (no-op for an unknown id): a block no table holds any
  // more becomes evictable if it holds a registered prefix, else free. The table's last
  // block is released first, so it is evicted before the blocks its chain starts with.
  void Free(int64_t seq_id);

  // The longest chain of registered blocks that `tokens` starts with, capped at
  // floor((tokens.size() - 1) / B) blocks: at least one token is left to compute (its
  // logits are needed) and the block receiving the first new position is private. Empty
  // with prefix caching off. Changes nothing.
  PrefixMatch FindPrefix(absl::Span<const int32_t> tokens) const;
  // Starts seq_id's table with `match`'s blocks (references + 1; evictable ones become in
  // use). `match` must come from FindPrefix with no allocation or Free since, and seq_id
  // must have no table.
  void AttachPrefix(int64_t seq_id, const PrefixMatch& match);
  // Registers seq_id's full blocks whose positions are all below `num_computed` and that
  // are not registered yet (prompt and generated tokens alike; `tokens` are the
  // sequence's tokens, at least num_computed of them). An identical prefix registered
  // already is kept and this sequence's copy stays private. No-op with caching off.
  void RegisterComputed(int64_t seq_id, absl::Span<const int32_t> tokens, int num_computed);

  bool Has(int64_t seq_id) const { return tables_.count(seq_id) > 0; }
  // Empty for an unknown id. Valid until the next Reserve/Free/AttachPrefix of this
  // sequence.
  absl::Span<const int32_t> BlockTable(int64_t seq_id) const;
  int num_sequences() const { return static_cast<int>(tables_.size()); }
  // References to `block` (tables holding it).
  int RefCount(int32_t block) const { return refs_[block]; }
  bool IsRegistered(int32_t block) const { return cache_.IsRegistered(block); }

  // INTERNAL naming the first broken invariant (see the header comment). O(blocks).
  absl::Status CheckInvariants() const;

 private:
  struct Table {
    std::vector<int32_t> blocks;
    // Chain position after each registered (or identical-to-registered) leading block;
    // chain.size() <= blocks.size().
    std::vector<PrefixCache::Link> chain;
    bool chain_broken = false;  // a hash collision: no further block registers
  };
  int32_t Allocate();
  void Release(int32_t block);

  int num_blocks_;
  int block_size_;
  bool prefix_caching_;
  std::vector<int32_t> free_;   // LIFO: recently freed blocks are reused first
  std::list<int32_t> evictable_;  // front: least recently released
  std::vector<std::list<int32_t>::iterator> lru_pos_;  // valid while evictable
  std::vector<int32_t> refs_;
  PrefixCache cache_;
  std::unordered_map<int64_t, Table> tables_;
};

}  // namespace moe::scheduler
