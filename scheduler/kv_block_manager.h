// Accounting for the paged KV cache: a pool of fixed-size blocks (block_size tokens
// each), a free list, and each sequence's block table (physical block ids in position
// order: block i of a table holds positions [i*B, (i+1)*B)). The ModelRunner stores the
// keys/values; this class only decides which physical block holds what.
//
// Invariants: every block is either free or in exactly one table; a table never holds a
// block twice; num_free_blocks() + sum of table sizes == num_blocks().
//
// Thread safety: not thread-safe. Owned and used by the scheduler's engine thread only.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "absl/types/span.h"

namespace moe::scheduler {

class KvBlockManager {
 public:
  KvBlockManager(int num_blocks, int block_size);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  int num_free_blocks() const { return static_cast<int>(free_.size()); }
  int num_used_blocks() const { return num_blocks_ - num_free_blocks(); }
  // Fraction of blocks in use, in [0, 1].
  double usage() const;

  // Blocks needed to hold `num_tokens` positions.
  int BlocksFor(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }
  // Extra blocks `seq_id` needs so that its table covers `num_tokens` positions.
  int ExtraBlocksFor(int64_t seq_id, int num_tokens) const;

  // Grows seq_id's table (creating it if needed) to cover `num_tokens` positions. Returns
  // false and changes nothing when there are not enough free blocks.
  bool Reserve(int64_t seq_id, int num_tokens);
  // Returns all of seq_id's blocks to the free list (no-op for an unknown id).
  void Free(int64_t seq_id);

  bool Has(int64_t seq_id) const { return tables_.count(seq_id) > 0; }
  // Empty for an unknown id. Valid until the next Reserve/Free of this sequence.
  absl::Span<const int32_t> BlockTable(int64_t seq_id) const;
  int num_sequences() const { return static_cast<int>(tables_.size()); }

 private:
  int num_blocks_;
  int block_size_;
  std::vector<int32_t> free_;  // LIFO: recently freed blocks are reused first
  std::unordered_map<int64_t, std::vector<int32_t>> tables_;
};

}  // namespace moe::scheduler
