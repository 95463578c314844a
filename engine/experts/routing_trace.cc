#include "engine/experts/routing_trace.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"

namespace moe::engine {

absl::Status RoutingTrace::Validate() const {
  for (size_t s = 0; s < steps.size(); ++s) {
    if (static_cast<int32_t>(steps[s].size()) != grid.num_layers) {
      return absl::InvalidArgumentError(absl::StrCat("routing trace: step ", s, " has ",
                                                     steps[s].size(), " layers, expected ",
                                                     grid.num_layers));
    }
    for (int32_t l = 0; l < grid.num_layers; ++l) {
      std::vector<int32_t> e = steps[s][l];
      std::sort(e.begin(), e.end());
      if (std::adjacent_find(e.begin(), e.end()) != e.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("routing trace: step ", s, " layer ", l, " lists an expert twice"));
      }
      if (!e.empty() && (e.front() < 0 || e.back() >= grid.num_experts)) {
        return absl::InvalidArgumentError(absl::StrCat("routing trace: step ", s, " layer ", l,
                                                       " has an expert outside [0, ",
                                                       grid.num_experts, ")"));
      }
    }
  }
  return absl::OkStatus();
}

RoutingTrace MakeSyntheticTrace(const SyntheticTraceOptions& o) {
  std::mt19937_64 rng(o.seed);
  RoutingTrace t;
  t.grid = {o.num_layers, o.num_experts};
  const int k = std::min(o.top_k, o.num_experts);
  // Per layer: a popularity ranking and its sampling weights.
  std::vector<std::discrete_distribution<int32_t>> pick;
  std::vector<std::vector<int32_t>> rank(o.num_layers);
  for (int l = 0; l < o.num_layers; ++l) {
    std::vector<double> w(o.num_experts);
    for (int r = 0; r < o.num_experts; ++r) w[r] = 1.0 / std::pow(r + 1.0, o.popularity_skew);
    pick.emplace_back(w.begin(), w.end());
    rank[l].resize(o.num_experts);
    std::iota(rank[l].begin(), rank[l].end(), 0);
    std::shuffle(rank[l].begin(), rank[l].end(), rng);
  }
  std::uniform_real_distribution<double> u(0.0, 1.0);
  // prev[token][layer]: the token's experts at the previous step.
  std::vector<std::vector<std::vector<int32_t>>> prev(
      o.tokens_per_step, std::vector<std::vector<int32_t>>(o.num_layers));
  t.steps.resize(o.steps);
  for (int s = 0; s < o.steps; ++s) {
    t.steps[s].resize(o.num_layers);
    for (int l = 0; l < o.num_layers; ++l) {
      std::vector<int32_t>& set = t.steps[s][l];
      for (int tok = 0; tok < o.tokens_per_step; ++tok) {
        std::vector<int32_t>& mine = prev[tok][l];
        if (mine.empty() || u(rng) >= o.stickiness) {
          mine.clear();
          while (static_cast<int>(mine.size()) < k) {
            const int32_t e = rank[l][pick[l](rng)];
            if (std::find(mine.begin(), mine.end(), e) == mine.end()) mine.push_back(e);
          }
        }
        for (int32_t e : mine)
          if (std::find(set.begin(), set.end(), e) == set.end()) set.push_back(e);
      }
    }
  }
  return t;
}

}  // namespace moe::engine
