#include "scheduler/prefix_cache.h"

#include <algorithm>

namespace moe::scheduler {
namespace {

// splitmix64's finaliser: a cheap, well-mixed 64-bit step.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

PrefixCache::PrefixCache(int num_blocks, uint64_t hash_mask)
    : hash_mask_(hash_mask), entries_(static_cast<size_t>(std::max(0, num_blocks))) {}

uint64_t PrefixCache::Hash(uint64_t parent_hash, absl::Span<const int32_t> tokens) const {
  uint64_t h = Mix(parent_hash ^ tokens.size());
  for (int32_t t : tokens) h = Mix(h ^ static_cast<uint32_t>(t));
  return h & hash_mask_;
}

bool PrefixCache::Matches(const Entry& e, const Link& parent,
                          absl::Span<const int32_t> tokens) const {
  return e.registered && e.parent_serial == parent.serial &&
         absl::MakeConstSpan(e.tokens) == tokens;
}

std::optional<PrefixCache::Hit> PrefixCache::Lookup(const Link& parent,
                                                    absl::Span<const int32_t> tokens) const {
  auto it = by_hash_.find(Hash(parent.hash, tokens));
  if (it == by_hash_.end()) return std::nullopt;
  const Entry& e = entries_[it->second];
  if (!Matches(e, parent, tokens)) return std::nullopt;  // a collision: not ours
  return Hit{it->second, Link{e.hash, e.serial}};
}

std::optional<PrefixCache::Link> PrefixCache::Register(int32_t block, const Link& parent,
                                                       absl::Span<const int32_t> tokens) {
  const uint64_t h = Hash(parent.hash, tokens);
  auto [it, inserted] = by_hash_.emplace(h, block);
  if (!inserted) {
    const Entry& existing = entries_[it->second];
    if (Matches(existing, parent, tokens)) return Link{existing.hash, existing.serial};
    return std::nullopt;
  }
  Entry& e = entries_[block];
  e.registered = true;
  e.hash = h;
  e.serial = next_serial_++;
  e.parent_serial = parent.serial;
  e.tokens.assign(tokens.begin(), tokens.end());
  return Link{e.hash, e.serial};
}

void PrefixCache::Unregister(int32_t block) {
  Entry& e = entries_[block];
  if (!e.registered) return;
  by_hash_.erase(e.hash);
  e.registered = false;
  e.tokens.clear();
}

}  // namespace moe::scheduler
