#include "scheduler/expert_aware_composer.h"

#include <algorithm>

namespace moe::scheduler {
namespace {

bool Known(const DecodeCandidate& c) { return c.footprint != nullptr && !c.footprint->empty(); }

// Keys of `fp` not yet in `u` (u is at least as long as fp).
int Growth(const std::vector<uint64_t>& fp, const std::vector<uint64_t>& u) {
  int n = 0;
  for (size_t w = 0; w < fp.size(); ++w) n += __builtin_popcountll(fp[w] & ~u[w]);
  return n;
}

void OrInto(const std::vector<uint64_t>& fp, std::vector<uint64_t>* u) {
  for (size_t w = 0; w < fp.size(); ++w) (*u)[w] |= fp[w];
}

}  // namespace

int PopCount(absl::Span<const uint64_t> bits) {
  int n = 0;
  for (uint64_t w : bits) n += __builtin_popcountll(w);
  return n;
}

std::vector<bool> ExpertAwareComposer::Select(absl::Span<const DecodeCandidate> candidates,
                                              int max_seqs) const {
  const size_t n = candidates.size();
  std::vector<bool> taken(n, false);
  if (n == 0 || max_seqs < 1) return taken;
  size_t words = 0;
  for (const DecodeCandidate& c : candidates) {
    if (Known(c)) words = std::max(words, c.footprint->size());
  }
  std::vector<uint64_t> u(words, 0);  // union of the taken footprints
  int count = 0;
  auto take = [&](size_t i) {
    taken[i] = true;
    ++count;
    if (Known(candidates[i])) OrInto(*candidates[i].footprint, &u);
  };

  // 1. Bounded wait, then 2. unknown footprints (nothing to decide on).
  for (size_t i = 0; i < n && count < max_seqs; ++i) {
    if (candidates[i].consecutive_skips >= max_skips_) take(i);
  }
  for (size_t i = 0; i < n && count < max_seqs; ++i) {
    if (!taken[i] && !Known(candidates[i])) take(i);
  }

  // 3. Everything fits — or what must run already overflows the cache, so deferring the
  //    rest cannot make this step fit and would only add steps: everyone, in order.
  std::vector<uint64_t> all = u;
  for (size_t i = 0; i < n; ++i) {
    if (!taken[i] && Known(candidates[i])) OrInto(*candidates[i].footprint, &all);
  }
  if (PopCount(all) <= capacity_ || PopCount(u) > capacity_) {
    for (size_t i = 0; i < n && count < max_seqs; ++i) {
      if (!taken[i]) take(i);
    }
    return taken;
  }

  // 4. Greedy by smallest growth of the union (ties: older, i.e. lower index), within the
  //    capacity; 5. at least one.
  int size = PopCount(u);
  while (count < max_seqs) {
    int best = -1, best_growth = 0;
    for (size_t i = 0; i < n; ++i) {
      if (taken[i]) continue;
      const int g = Growth(*candidates[i].footprint, u);
      if (best < 0 || g < best_growth) {
        best = static_cast<int>(i);
        best_growth = g;
      }
    }
    if (best < 0) break;
    if (size + best_growth > capacity_ && count > 0) break;
    take(static_cast<size_t>(best));
    size += best_growth;
    if (size > capacity_) break;  // the lone first pick does not fit: it runs alone
  }
  return taken;
}

}  // namespace moe::scheduler
