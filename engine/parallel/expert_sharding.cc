#include "engine/parallel/expert_sharding.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace moe::engine::parallel {
namespace {

// Owner of each expert of one layer, contiguous split.
std::vector<int32_t> ContiguousLayer(int32_t num_experts, int32_t num_ranks) {
  std::vector<int32_t> owner(num_experts);
  for (int32_t r = 0; r < num_ranks; ++r) {
    const int64_t begin = int64_t{r} * num_experts / num_ranks;
    const int64_t end = int64_t{r + 1} * num_experts / num_ranks;
    for (int64_t e = begin; e < end; ++e) owner[e] = r;
  }
  return owner;
}

int64_t MaxRankLoad(absl::Span<const int32_t> owner, absl::Span<const int64_t> load,
                    int32_t num_ranks) {
  std::vector<int64_t> sum(num_ranks, 0);
  for (size_t e = 0; e < owner.size(); ++e) sum[owner[e]] += load[e];
  return *std::max_element(sum.begin(), sum.end());
}

// Lowers the most loaded rank by moving one expert to a rank with one fewer expert, or by
// swapping a heavier expert of it for a lighter one of another rank, while both end below
// the old maximum. Each accepted step lowers (max load, ranks at max) lexicographically, so
// it terminates; the cap only bounds the work on huge layers.
void RefineBySwaps(absl::Span<const int64_t> load, int32_t num_ranks, std::vector<int32_t>& owner) {
  const int32_t num_experts = static_cast<int32_t>(owner.size());
  std::vector<int64_t> sum(num_ranks, 0);
  std::vector<int32_t> count(num_ranks, 0);
  for (int32_t e = 0; e < num_experts; ++e) {
    sum[owner[e]] += load[e];
    ++count[owner[e]];
  }
  for (int step = 0; step < 16 * num_experts + 16; ++step) {
    const int32_t m = static_cast<int32_t>(std::max_element(sum.begin(), sum.end()) - sum.begin());
    // Best candidate: the one minimising the larger of the two new loads.
    int64_t best = sum[m];
    int32_t best_a = -1, best_b = -1, best_r = -1;  // best_b == -1: a move
    for (int32_t a = 0; a < num_experts; ++a) {
      if (owner[a] != m) continue;
      for (int32_t r = 0; r < num_ranks; ++r) {
        if (r == m || sum[r] >= sum[m]) continue;
        if (count[r] < count[m]) {  // counts differ by one at most: a move keeps the bounds
          const int64_t worse = std::max(sum[m] - load[a], sum[r] + load[a]);
          if (worse < best) best = worse, best_a = a, best_b = -1, best_r = r;
        }
        for (int32_t b = 0; b < num_experts; ++b) {
          if (owner[b] != r || load[b] >= load[a]) continue;
          const int64_t d = load[a] - load[b];
          const int64_t worse = std::max(sum[m] - d, sum[r] + d);
          if (worse < best) best = worse, best_a = a, best_b = b, best_r = r;
        }
      }
    }
    if (best_a < 0) return;
    const int64_t d = load[best_a] - (best_b >= 0 ? load[best_b] : 0);
    owner[best_a] = best_r;
    sum[m] -= d;
    sum[best_r] += d;
    if (best_b >= 0) {
      owner[best_b] = m;
    } else {
      --count[m];
      ++count[best_r];
    }
  }
}

// Longest-processing-time greedy under the count constraint, then refinement; falls back
// to the contiguous split when that is no worse.
std::vector<int32_t> BalancedLayer(absl::Span<const int64_t> load, int32_t num_ranks) {
  const int32_t num_experts = static_cast<int32_t>(load.size());
  const int32_t floor_count = num_experts / num_ranks;
  const int32_t big_ranks = num_experts % num_ranks;  // ranks that own floor_count + 1
  std::vector<int32_t> order(num_experts);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return load[a] > load[b]; });
  std::vector<int64_t> sum(num_ranks, 0);
  std::vector<int32_t> count(num_ranks, 0);
  int32_t big_so_far = 0;
  std::vector<int32_t> owner(num_experts, -1);
  for (int32_t e : order) {
    int32_t pick = -1;
    for (int32_t r = 0; r < num_ranks; ++r) {
      const bool open =
          count[r] < floor_count || (count[r] == floor_count && big_so_far < big_ranks);
      if (!open) continue;
      if (pick < 0 || sum[r] < sum[pick] || (sum[r] == sum[pick] && count[r] < count[pick])) {
        pick = r;
      }
    }
    // Always found: were every rank closed, N*floor + big_ranks = E experts are placed.
    if (count[pick] == floor_count) ++big_so_far;
    owner[e] = pick;
    sum[pick] += load[e];
    ++count[pick];
  }
  RefineBySwaps(load, num_ranks, owner);
  std::vector<int32_t> contiguous = ContiguousLayer(num_experts, num_ranks);
  if (MaxRankLoad(contiguous, load, num_ranks) <= MaxRankLoad(owner, load, num_ranks)) {
    return contiguous;
  }
  return owner;
}

absl::Status ValidateOptions(const ShardingOptions& o) {
  if (o.grid.num_layers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid.num_layers: must be >= 1, got ", o.grid.num_layers));
  }
  if (o.grid.num_experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid.num_experts: must be >= 1, got ", o.grid.num_experts));
  }
  if (o.visible_gpus < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("visible_gpus: must be >= 0, got ", o.visible_gpus));
  }
  if (o.num_ranks < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_ranks (--expert-parallel): must be >= 1, got ", o.num_ranks));
  }
  if (o.num_ranks > o.grid.num_experts) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_ranks (--expert-parallel): ", o.num_ranks, " exceeds num_experts ",
                     o.grid.num_experts, " (every rank must own at least one expert per layer)"));
  }
  if (o.num_ranks > o.visible_gpus) {
    return absl::InvalidArgumentError(absl::StrCat("num_ranks (--expert-parallel): ", o.num_ranks,
                                                   " exceeds the ", o.visible_gpus,
                                                   " visible GPUs"));
  }
  if (o.strategy == ShardingStrategy::kBalanced) {
    if (static_cast<int64_t>(o.loads.size()) != o.grid.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "loads: has ", o.loads.size(), " entries, expected num_layers * num_experts = ",
          o.grid.num_layers, " * ", o.grid.num_experts, " = ", o.grid.size()));
    }
    for (int64_t i = 0; i < o.grid.size(); ++i) {
      if (o.loads[i] < 0) {
        const ExpertKey k = o.grid.KeyOf(i);
        return absl::InvalidArgumentError(absl::StrCat("loads[layer ", k.layer, ", expert ",
                                                       k.expert, "]: negative (", o.loads[i], ")"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ShardingStrategy> ParseShardingStrategy(absl::string_view name) {
  if (name == "contiguous") return ShardingStrategy::kContiguous;
  if (name == "balanced") return ShardingStrategy::kBalanced;
  return absl::InvalidArgumentError(absl::StrCat("expert_sharding: unknown strategy '", name,
                                                 "' (expected 'contiguous' or 'balanced')"));
}

absl::string_view ShardingStrategyName(ShardingStrategy strategy) {
  switch (strategy) {
    case ShardingStrategy::kContiguous:
      return "contiguous";
    case ShardingStrategy::kBalanced:
      return "balanced";
  }
  return "unknown";
}

absl::StatusOr<ShardingPlan> ShardingPlan::Create(const ShardingOptions& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  ShardingPlan plan;
  plan.grid_ = options.grid;
  plan.num_ranks_ = options.num_ranks;
  plan.strategy_ = options.strategy;
  const int32_t experts = options.grid.num_experts;
  plan.owner_.resize(options.grid.size());
  for (int32_t l = 0; l < options.grid.num_layers; ++l) {
    std::vector<int32_t> layer_owner =
        options.strategy == ShardingStrategy::kBalanced
            ? BalancedLayer(absl::MakeConstSpan(options.loads)
                                .subspan(static_cast<size_t>(l) * experts, experts),
                            options.num_ranks)
            : ContiguousLayer(experts, options.num_ranks);
    std::copy(layer_owner.begin(), layer_owner.end(),
              plan.owner_.begin() + static_cast<size_t>(l) * experts);
  }
  plan.Index();
  return plan;
}

void ShardingPlan::Index() {
  local_index_.assign(owner_.size(), -1);
  experts_of_.assign(static_cast<size_t>(num_ranks_) * grid_.num_layers, {});
  for (int32_t l = 0; l < grid_.num_layers; ++l) {
    for (int32_t e = 0; e < grid_.num_experts; ++e) {  // ascending: local index = position
      const int64_t i = grid_.Index({l, e});
      std::vector<int32_t>& list =
          experts_of_[static_cast<size_t>(owner_[i]) * grid_.num_layers + l];
      local_index_[i] = static_cast<int32_t>(list.size());
      list.push_back(e);
    }
  }
}

int64_t ShardingPlan::NumExpertsOnRank(int32_t rank) const {
  int64_t n = 0;
  for (int32_t l = 0; l < grid_.num_layers; ++l) n += NumLocalExperts(rank, l);
  return n;
}

std::vector<int64_t> ShardingPlan::BytesPerRank(int64_t bytes_per_expert) const {
  std::vector<int64_t> bytes(num_ranks_);
  for (int32_t r = 0; r < num_ranks_; ++r) bytes[r] = NumExpertsOnRank(r) * bytes_per_expert;
  return bytes;
}

absl::StatusOr<std::vector<int64_t>> RankLoads(const ShardingPlan& plan, int32_t layer,
                                               absl::Span<const int64_t> loads) {
  const ExpertGrid& g = plan.grid();
  if (static_cast<int64_t>(loads.size()) != g.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("loads: has ", loads.size(), " entries, expected ", g.size()));
  }
  if (layer < 0 || layer >= g.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: ", layer, " outside [0, ", g.num_layers, ")"));
  }
  std::vector<int64_t> sum(plan.num_ranks(), 0);
  for (int32_t e = 0; e < g.num_experts; ++e) {
    sum[plan.Owner(layer, e)] += loads[g.Index({layer, e})];
  }
  return sum;
}

absl::StatusOr<std::vector<int64_t>> LoadsFromTrace(const RoutingTrace& trace) {
  if (absl::Status s = trace.Validate(); !s.ok()) return s;
  std::vector<int64_t> loads(trace.grid.size(), 0);
  for (const auto& step : trace.steps) {
    for (int32_t l = 0; l < trace.grid.num_layers; ++l) {
      for (int32_t e : step[l]) ++loads[trace.grid.Index({l, e})];
    }
  }
  return loads;
}

absl::Status CheckMemoryFits(const ShardingPlan& plan, int64_t bytes_per_expert,
                             int64_t dense_bytes, int64_t per_gpu_budget) {
  if (bytes_per_expert < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bytes_per_expert: must be >= 0, got ", bytes_per_expert));
  }
  if (dense_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("dense_bytes: must be >= 0, got ", dense_bytes));
  }
  if (per_gpu_budget < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("per_gpu_budget: must be >= 0, got ", per_gpu_budget));
  }
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int32_t worst = -1;
  int64_t worst_total = -1;
  int32_t misfits = 0;
  for (int32_t r = 0; r < plan.num_ranks(); ++r) {
    const int64_t n = plan.NumExpertsOnRank(r);
    // Saturate instead of overflowing: anything that large does not fit anyway.
    int64_t total = kMax;
    if (bytes_per_expert == 0 || n <= (kMax - dense_bytes) / bytes_per_expert) {
      total = n * bytes_per_expert + dense_bytes;
    }
    if (total > per_gpu_budget) {
      ++misfits;
      if (total > worst_total) worst = r, worst_total = total;
    }
  }
  if (worst < 0) return absl::OkStatus();
  const int64_t n = plan.NumExpertsOnRank(worst);
  return absl::ResourceExhaustedError(absl::StrCat(
      "expert parallel memory: rank ", worst, " needs ", n, " experts x ", bytes_per_expert,
      " B + dense ", dense_bytes,
      " B = ", worst_total == kMax ? std::string("(overflow)") : absl::StrCat(worst_total),
      " B > per-GPU budget ", per_gpu_budget, " B (", misfits, " of ", plan.num_ranks(),
      " ranks do not fit)"));
}

}  // namespace moe::engine::parallel
