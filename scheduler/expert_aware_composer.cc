#include "scheduler/expert_aware_composer.h"

#include <algorithm>

namespace moe::scheduler {
namespace {

bool Known(const DecodeCandidate& c) { return c.footprint != nullptr && !c.footprint->empty(); }

// Keys of `fp` in neither `u` nor `r` (u is at least as long as fp; r may be shorter).
int NewKeys(const std::vector<uint64_t>& fp, const std::vector<uint64_t>& u,
            absl::Span<const uint64_t> r) {
  int n = 0;
  for (size_t w = 0; w < fp.size(); ++w) {
    n += __builtin_popcountll(fp[w] & ~u[w] & ~(w < r.size() ? r[w] : 0));
  }
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
                                              int max_seqs,
                                              absl::Span<const uint64_t> resident) const {
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
  auto take_rest = [&] {
    for (size_t i = 0; i < n && count < max_seqs; ++i) {
      if (!taken[i]) take(i);
    }
    return taken;
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
  const int all_size = PopCount(all);
  if (all_size <= capacity_ || PopCount(u) > capacity_) return take_rest();

  // 4. Free candidates: every key resident or already in the union (no new miss).
  for (bool grew = true; grew && count < max_seqs;) {
    grew = false;
    for (size_t i = 0; i < n && count < max_seqs; ++i) {
      if (taken[i] || NewKeys(*candidates[i].footprint, u, resident) > 0) continue;
      take(i);
      grew = true;
    }
  }

  // 5. The rest in greedy order, fewest new misses first (ties: older), while the union
  //    fits; each prefix of that order is a possible step. Run the one with the lowest
  //    estimated cost per token, unless everyone together costs no more per token.
  //    Unknown footprints run whatever is chosen and their cost is unknown: tokens count
  //    known footprints only.
  int known = 0, known_all = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!Known(candidates[i])) continue;
    if (taken[i]) ++known;
    if (static_cast<int>(i) < max_seqs) ++known_all;
  }
  const double all_cost = StepCostPerToken(all, resident, known_all);
  std::vector<size_t> order;
  std::vector<bool> ordered = taken;
  std::vector<uint64_t> pu = u;
  double best_cost = known > 0 ? StepCostPerToken(pu, resident, known) : all_cost;
  size_t best_len = 0;
  while (count + static_cast<int>(order.size()) < max_seqs) {
    int best = -1, best_new = 0;
    for (size_t i = 0; i < n; ++i) {
      if (ordered[i]) continue;
      const int g = NewKeys(*candidates[i].footprint, pu, resident);
      if (best < 0 || g < best_new) {
        best = static_cast<int>(i);
        best_new = g;
      }
    }
    if (best < 0) break;
    ordered[best] = true;
    order.push_back(static_cast<size_t>(best));
    OrInto(*candidates[best].footprint, &pu);
    if (PopCount(pu) > capacity_) break;
    const double c = StepCostPerToken(pu, resident, known + static_cast<int>(order.size()));
    if (c < best_cost) {
      best_cost = c;
      best_len = order.size();
    }
  }
  if (best_len == 0 && count == 0) return take_rest();  // nothing cheaper fits
  if (!(best_cost < all_cost)) return take_rest();
  for (size_t k = 0; k < best_len; ++k) take(order[k]);
  return taken;
}

double ExpertAwareComposer::StepCostPerToken(const std::vector<uint64_t>& u,
                                             absl::Span<const uint64_t> resident,
                                             int tokens) const {
  int misses = NewKeys(u, std::vector<uint64_t>(u.size(), 0), resident);
  misses += std::max(0, PopCount(u) - capacity_);
  return (1.0 + miss_cost_steps_ * misses) / std::max(1, tokens);
}

}  // namespace moe::scheduler
