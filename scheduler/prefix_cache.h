// Content-addressed index of computed, full KV blocks: automatic prefix caching.
//
// A full block (block_size tokens) whose KV has been computed is registered under a
// chain hash of (its parent block's hash, its own token ids). KV at a position depends on
// every token before it, so a block is only reusable by a sequence whose *whole prefix*
// up to the block's end is identical. The hash makes lookup cheap; it is never trusted:
// each entry also stores its token ids and the serial number of its parent's registration
// (serials are never reused), and a lookup compares both. So, by induction from the root,
// a hit guarantees an identical prefix even when two different contents share a hash
// (such a collision is just a miss, and the second content is not registered).
//
// An entry whose parent has since been unregistered can no longer be reached (no chain
// leads to its parent serial); it stays until its block is evicted.
//
// The index does not own blocks or reference counts: KvBlockManager does, and calls
// Register when a block's KV is complete and Unregister when it evicts (reuses) a block.
//
// Thread safety: not thread-safe; used by the scheduler's engine thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/types/span.h"

namespace moe::scheduler {

class PrefixCache {
 public:
  // Where a chain of blocks stands: the hash and registration serial of its last
  // registered block (Root() before the first block).
  struct Link {
    uint64_t hash = 0;
    uint64_t serial = 0;
    bool operator==(const Link& o) const { return hash == o.hash && serial == o.serial; }
  };
  static Link Root() { return Link{kRootHash, 0}; }

  // `hash_mask` keeps only these bits of every hash (tests force collisions with a tiny
  // mask; the default keeps all 64).
  explicit PrefixCache(int num_blocks, uint64_t hash_mask = ~uint64_t{0});

  // The registered block whose prefix is the chain at `parent` followed by `tokens`.
  struct Hit {
    int32_t block = -1;
    Link link;
  };
  std::optional<Hit> Lookup(const Link& parent, absl::Span<const int32_t> tokens) const;

  // Registers `block` as holding the chain at `parent` followed by `tokens`, and returns
  // the Link the chain continues from: the new entry's; or, when an identical prefix is
  // registered already (two sequences computed it at once), the existing entry's (`block`
  // then stays unregistered, private to its table). nullopt when another content holds
  // the hash (a collision): `block` stays unregistered and the chain cannot continue.
  // `block` must not be registered already.
  std::optional<Link> Register(int32_t block, const Link& parent,
                               absl::Span<const int32_t> tokens);
  // Forgets `block` (no-op when it is not registered).
  void Unregister(int32_t block);

  bool IsRegistered(int32_t block) const { return entries_[block].registered; }
  int num_registered() const { return static_cast<int>(by_hash_.size()); }
  // The chain hash of `tokens` after `parent`, masked (exposed for tests).
  uint64_t Hash(uint64_t parent_hash, absl::Span<const int32_t> tokens) const;

 private:
  static constexpr uint64_t kRootHash = 0x6a09e667f3bcc908ull;
  struct Entry {
    bool registered = false;
    uint64_t hash = 0;
    uint64_t serial = 0;
    uint64_t parent_serial = 0;
    std::vector<int32_t> tokens;
  };
  bool Matches(const Entry& e, const Link& parent, absl::Span<const int32_t> tokens) const;

  uint64_t hash_mask_;
  uint64_t next_serial_ = 1;  // 0 is the root's
  std::vector<Entry> entries_;                     // by physical block id
  std::unordered_map<uint64_t, int32_t> by_hash_;  // registered hash -> block
};

}  // namespace moe::scheduler
