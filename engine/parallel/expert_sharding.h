// Expert sharding for expert parallelism on the GPUs of one host: which rank (GPU) owns
// each (layer, expert), and where it sits among that rank's experts. Dense weights are
// replicated on every rank; only experts are split. The plan is pure bookkeeping: it
// never calls CUDA (the caller passes the visible GPU count) and never allocates device
// memory.
//
// Strategies (ParseShardingStrategy names them):
//   contiguous  rank r owns experts [r*E/N, (r+1)*E/N) of every layer (integer division,
//               so when N does not divide E the ranks differ by at most one expert).
//   balanced    per layer, from a load table (e.g. token counts per (layer, expert) from a
//               routing trace): greedy longest-processing-time assignment under a count
//               constraint (exactly E mod N ranks own ceil(E/N) experts, the rest
//               floor(E/N)), refined by pairwise moves/swaps that lower the most loaded
//               rank. A layer keeps the contiguous split when that is no worse, so the
//               balanced plan's max rank load per layer is never above contiguous's.
//               Heuristic: not guaranteed optimal.
//
// Contract: every (layer, expert) of the grid has exactly one owner; each rank owns
// between floor(E/N) and ceil(E/N) experts of every layer (so at least one, as N <= E);
// a rank's experts of a layer are listed ascending and an expert's local index is its
// position in that list (the order of the rank's weight slots and of its grouped GEMM).
// A "layer" is whatever index the grid uses: for models with dense layers, build the grid
// over the MoE layers (RoutingRecord's moe index) so memory is not over-counted.
//
// Thread safety: ShardingPlan is immutable after creation; const methods may be called
// from any thread. The free functions are pure.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/experts/expert_key.h"
#include "engine/experts/routing_trace.h"

namespace moe::engine::parallel {

enum class ShardingStrategy { kContiguous, kBalanced };

// "contiguous" or "balanced"; anything else is an InvalidArgument naming the field
// `expert_sharding` and the accepted names.
absl::StatusOr<ShardingStrategy> ParseShardingStrategy(absl::string_view name);
absl::string_view ShardingStrategyName(ShardingStrategy strategy);

struct ShardingOptions {
  ExpertGrid grid;           // layers x experts to place
  int32_t num_ranks = 1;     // N: --expert-parallel
  int32_t visible_gpus = 0;  // GPUs the process can see (the caller asks CUDA)
  ShardingStrategy strategy = ShardingStrategy::kContiguous;
  // balanced only: [num_layers * num_experts], indexed by ExpertGrid::Index, each >= 0.
  // Ignored by contiguous.
  std::vector<int64_t> loads;
};

class ShardingPlan {
 public:
  // Validates the options (errors name the field: grid.num_layers, grid.num_experts,
  // num_ranks, visible_gpus, loads) and builds the plan.
  static absl::StatusOr<ShardingPlan> Create(const ShardingOptions& options);

  const ExpertGrid& grid() const { return grid_; }
  int32_t num_ranks() const { return num_ranks_; }
  ShardingStrategy strategy() const { return strategy_; }

  // Preconditions for the lookups: layer/expert inside the grid, rank in [0, N).
  int32_t Owner(int32_t layer, int32_t expert) const {
    return owner_[grid_.Index({layer, expert})];
  }
  int32_t LocalIndex(int32_t layer, int32_t expert) const {
    return local_index_[grid_.Index({layer, expert})];
  }
  // The experts `rank` owns in `layer`, ascending; position = local index.
  absl::Span<const int32_t> ExpertsOf(int32_t rank, int32_t layer) const {
    return experts_of_[static_cast<size_t>(rank) * grid_.num_layers + layer];
  }
  int32_t NumLocalExperts(int32_t rank, int32_t layer) const {
    return static_cast<int32_t>(ExpertsOf(rank, layer).size());
  }
  // Experts of `rank` summed over all layers.
  int64_t NumExpertsOnRank(int32_t rank) const;
  // Expert weight bytes each rank holds: NumExpertsOnRank(r) * bytes_per_expert.
  std::vector<int64_t> BytesPerRank(int64_t bytes_per_expert) const;

 private:
  ShardingPlan() = default;
  // Fills local_index_ and experts_of_ from owner_.
  void Index();

  ExpertGrid grid_;
  int32_t num_ranks_ = 0;
  ShardingStrategy strategy_ = ShardingStrategy::kContiguous;
  std::vector<int32_t> owner_;                    // [grid.size()]
  std::vector<int32_t> local_index_;              // [grid.size()]
  std::vector<std::vector<int32_t>> experts_of_;  // [rank * num_layers + layer]
};

// Per rank, the summed load of the experts it owns in `layer` (loads as in
// ShardingOptions, size checked: InvalidArgument naming `loads`).
absl::StatusOr<std::vector<int64_t>> RankLoads(const ShardingPlan& plan, int32_t layer,
                                               absl::Span<const int64_t> loads);

// A load table from a routing trace: per (layer, expert), the number of steps that used
// the expert (the trace holds each step's distinct experts, not token counts).
// InvalidArgument when the trace does not validate.
absl::StatusOr<std::vector<int64_t>> LoadsFromTrace(const RoutingTrace& trace);

// Whether every rank can hold its experts plus the replicated dense weights in
// per_gpu_budget bytes. ResourceExhausted names the most loaded rank that does not fit
// with its sizes (experts x bytes_per_expert + dense = total vs budget) and how many
// ranks do not fit; InvalidArgument names a negative argument.
absl::Status CheckMemoryFits(const ShardingPlan& plan, int64_t bytes_per_expert,
                             int64_t dense_bytes, int64_t per_gpu_budget);

}  // namespace moe::engine::parallel
