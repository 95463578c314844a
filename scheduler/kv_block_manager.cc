#include "scheduler/kv_block_manager.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {

KvBlockManager::KvBlockManager(int num_blocks, int block_size, bool enable_prefix_caching,
                               uint64_t prefix_hash_mask)
    : num_blocks_(std::max(0, num_blocks)),
      block_size_(std::max(1, block_size)),
      prefix_caching_(enable_prefix_caching),
      lru_pos_(static_cast<size_t>(num_blocks_)),
      refs_(static_cast<size_t>(num_blocks_), 0),
      cache_(num_blocks_, prefix_hash_mask) {
  free_.reserve(num_blocks_);
  // Highest id at the back, so the first allocation gets block 0.
  for (int b = num_blocks_ - 1; b >= 0; --b) free_.push_back(b);
}

double KvBlockManager::usage() const {
  return num_blocks_ == 0 ? 0.0 : static_cast<double>(num_used_blocks()) / num_blocks_;
}

int KvBlockManager::ExtraBlocksFor(int64_t seq_id, int num_tokens) const {
  auto it = tables_.find(seq_id);
  const int have = it == tables_.end() ? 0 : static_cast<int>(it->second.blocks.size());
  return std::max(0, BlocksFor(num_tokens) - have);
}

int32_t KvBlockManager::Allocate() {
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else {
    b = evictable_.front();
    evictable_.pop_front();
    cache_.Unregister(b);
  }
  refs_[b] = 1;
  return b;
}

bool KvBlockManager::Reserve(int64_t seq_id, int num_tokens) {
  const int extra = ExtraBlocksFor(seq_id, num_tokens);
  if (extra > num_free_blocks()) return false;
  std::vector<int32_t>& blocks = tables_[seq_id].blocks;
  for (int i = 0; i < extra; ++i) blocks.push_back(Allocate());
  return true;
}

void KvBlockManager::Release(int32_t b) {
  if (--refs_[b] > 0) return;
  if (cache_.IsRegistered(b)) {
    lru_pos_[b] = evictable_.insert(evictable_.end(), b);
  } else {
    free_.push_back(b);
  }
}

void KvBlockManager::Free(int64_t seq_id) {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  // In reverse: the first block is reused first (free list) / evicted last (LRU).
  for (auto b = it->second.blocks.rbegin(); b != it->second.blocks.rend(); ++b) Release(*b);
  tables_.erase(it);
}

PrefixMatch KvBlockManager::FindPrefix(absl::Span<const int32_t> tokens) const {
  PrefixMatch m;
  if (!prefix_caching_ || tokens.empty()) return m;
  const size_t max_blocks = (tokens.size() - 1) / block_size_;
  PrefixCache::Link link = PrefixCache::Root();
  for (size_t i = 0; i < max_blocks; ++i) {
    const auto hit = cache_.Lookup(link, tokens.subspan(i * block_size_, block_size_));
    if (!hit.has_value()) break;
    link = hit->link;
    m.blocks.push_back(hit->block);
    m.links.push_back(link);
    if (refs_[hit->block] == 0) ++m.num_evictable;
  }
  m.num_tokens = static_cast<int>(m.blocks.size()) * block_size_;
  return m;
}

void KvBlockManager::AttachPrefix(int64_t seq_id, const PrefixMatch& match) {
  Table& t = tables_[seq_id];
  for (int32_t b : match.blocks) {
    if (refs_[b]++ == 0) evictable_.erase(lru_pos_[b]);
    t.blocks.push_back(b);
  }
  t.chain = match.links;
}

void KvBlockManager::RegisterComputed(int64_t seq_id, absl::Span<const int32_t> tokens,
                                      int num_computed) {
  if (!prefix_caching_) return;
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return;
  Table& t = it->second;
  const size_t full = std::min(t.blocks.size(),
                               static_cast<size_t>(std::max(0, num_computed) / block_size_));
  while (!t.chain_broken && t.chain.size() < full) {
    const size_t i = t.chain.size();
    const PrefixCache::Link parent = i == 0 ? PrefixCache::Root() : t.chain.back();
    const auto link =
        cache_.Register(t.blocks[i], parent, tokens.subspan(i * block_size_, block_size_));
    if (!link.has_value()) {
      t.chain_broken = true;
      break;
    }
    t.chain.push_back(*link);
  }
}

absl::Span<const int32_t> KvBlockManager::BlockTable(int64_t seq_id) const {
  auto it = tables_.find(seq_id);
  if (it == tables_.end()) return {};
  return it->second.blocks;
}

absl::Status KvBlockManager::CheckInvariants() const {
  std::vector<int> holders(static_cast<size_t>(num_blocks_), 0);
  for (const auto& [id, t] : tables_) {
    std::vector<int32_t> sorted = t.blocks;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      return absl::InternalError(absl::StrCat("seq ", id, ": table holds a block twice"));
    }
    if (t.chain.size() > t.blocks.size()) {
      return absl::InternalError(absl::StrCat("seq ", id, ": chain longer than its table"));
    }
    for (int32_t b : t.blocks) {
      if (b < 0 || b >= num_blocks_) {
        return absl::InternalError(absl::StrCat("seq ", id, ": block ", b, " out of range"));
      }
      ++holders[b];
    }
  }
  std::vector<int> state(static_cast<size_t>(num_blocks_), 0);  // 1 free, 2 evictable
  for (int32_t b : free_) {
    if (state[b] != 0) return absl::InternalError(absl::StrCat("block ", b, ": free twice"));
    state[b] = 1;
    if (cache_.IsRegistered(b)) {
      return absl::InternalError(absl::StrCat("block ", b, ": free but registered"));
    }
  }
  for (int32_t b : evictable_) {
    if (state[b] != 0) {
      return absl::InternalError(absl::StrCat("block ", b, ": evictable and free/evictable"));
    }
    state[b] = 2;
    if (!cache_.IsRegistered(b)) {
      return absl::InternalError(absl::StrCat("block ", b, ": evictable but unregistered"));
    }
  }
  int in_use = 0;
  for (int b = 0; b < num_blocks_; ++b) {
    if (refs_[b] != holders[b]) {
      return absl::InternalError(absl::StrCat("block ", b, ": reference count ", refs_[b],
                                              " but ", holders[b], " tables hold it"));
    }
    if ((refs_[b] > 0) == (state[b] != 0)) {
      return absl::InternalError(absl::StrCat(
          "block ", b, ": ", refs_[b], " references, ",
          state[b] == 0 ? "in no list" : state[b] == 1 ? "on the free list" : "evictable"));
    }
    if (refs_[b] > 0) ++in_use;
    if (!prefix_caching_ && cache_.IsRegistered(b)) {
      return absl::InternalError(absl::StrCat("block ", b, ": registered with caching off"));
    }
  }
  if (num_free_blocks() + in_use != num_blocks_) {
    return absl::InternalError(absl::StrCat("free ", num_free_blocks(), " + in use ", in_use,
                                            " != ", num_blocks_, " blocks"));
  }
  return absl::OkStatus();
}

}  // namespace moe::scheduler
