#include "scheduler/kv_block_manager.h"

#include <algorithm>

namespace moe::scheduler {

KvBlockManager::KvBlockManager(int num_blocks, int block_size)
    : num_blocks_(std::max(0, num_blocks)), block_size_(std::max(1, block_size)) {
  free_.reserve(num_blocks_);
  // Highest id at the back, so the first allocation gets block 0.
  for (int b = num_blocks_ - 1; b >= 0; --b) free_.push_back(b);
}

double KvBlockManager::usage() const {
  return num_blocks_ == 0 ? 0.0 : static_cast<double>(num_used_blocks()) / num_blocks_;
}

int KvBlockManager::ExtraBlocksFor(int64_t seq_id, int num_tokens) const {
  auto it = tables_.find(seq_id);
  const int have = it == tables_.end() ? 0 : static_cast<int>(it->second.size());
  return std::max(0, BlocksFor(num_tokens) - have);
}

bool KvBlockManager::Reserve(int64_t seq_id, int num_tokens) {
  const int extra = ExtraBlocksFor(seq_id, num_tokens);
  if (extra > num_free_blocks()) return false;
  std::vector<int32_t>& table = tables_[seq_id];
  for (int i = 0; i < extra; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvBlockManager::Free(int64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  // Push in reverse so the sequence's first block is reused first.
  for (auto b = it->second.rbegin(); b != it->second.rend(); ++b) free_.push_back(*b);
  tables_.erase(it);
}

absl::Span<const int32_t> KvBlockManager::BlockTable(int64_t seq_id) const {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return {};
  return it->second;
}

}  // namespace moe::scheduler
