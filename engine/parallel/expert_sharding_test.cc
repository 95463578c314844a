#include "engine/parallel/expert_sharding.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <random>

namespace moe::engine::parallel {
namespace {

ShardingOptions Options(int32_t layers, int32_t experts, int32_t ranks,
                        ShardingStrategy strategy = ShardingStrategy::kContiguous,
                        std::vector<int64_t> loads = {}) {
  ShardingOptions o;
  o.grid = {layers, experts};
  o.num_ranks = ranks;
  o.visible_gpus = 8;
  o.strategy = strategy;
  o.loads = std::move(loads);
  return o;
}

// Every expert has one owner, the owner lists it at its local index, lists are ascending,
// and every rank owns floor(E/N) or ceil(E/N) experts per layer (E mod N of them ceil).
void CheckPlanInvariants(const ShardingPlan& plan) {
  const ExpertGrid& g = plan.grid();
  const int32_t n = plan.num_ranks();
  for (int32_t l = 0; l < g.num_layers; ++l) {
    std::vector<int> seen(g.num_experts, 0);
    int big = 0;
    for (int32_t r = 0; r < n; ++r) {
      absl::Span<const int32_t> mine = plan.ExpertsOf(r, l);
      REQUIRE(std::is_sorted(mine.begin(), mine.end()));
      const int32_t c = static_cast<int32_t>(mine.size());
      REQUIRE(c >= g.num_experts / n);
      REQUIRE(c <= (g.num_experts + n - 1) / n);
      if (c > g.num_experts / n) ++big;
      for (size_t i = 0; i < mine.size(); ++i) {
        ++seen[mine[i]];
        REQUIRE(plan.Owner(l, mine[i]) == r);
        REQUIRE(plan.LocalIndex(l, mine[i]) == static_cast<int32_t>(i));
      }
    }
    REQUIRE(big == g.num_experts % n);
    for (int32_t e = 0; e < g.num_experts; ++e) REQUIRE(seen[e] == 1);
  }
}

int64_t MaxLoad(const ShardingPlan& plan, int32_t layer, const std::vector<int64_t>& loads) {
  absl::StatusOr<std::vector<int64_t>> per_rank = RankLoads(plan, layer, loads);
  REQUIRE(per_rank.ok());
  return *std::max_element(per_rank->begin(), per_rank->end());
}

// The best max rank load over every assignment obeying the count bounds (small E only).
int64_t BruteForceOptimum(const std::vector<int64_t>& load, int32_t n) {
  const int32_t e = static_cast<int32_t>(load.size());
  const int32_t lo = e / n, hi = (e + n - 1) / n;
  int64_t best = std::numeric_limits<int64_t>::max();
  std::vector<int32_t> owner(e, 0);
  while (true) {
    std::vector<int64_t> sum(n, 0);
    std::vector<int32_t> count(n, 0);
    for (int32_t i = 0; i < e; ++i) sum[owner[i]] += load[i], ++count[owner[i]];
    bool ok = true;
    for (int32_t r = 0; r < n; ++r) ok = ok && count[r] >= lo && count[r] <= hi;
    if (ok) best = std::min(best, *std::max_element(sum.begin(), sum.end()));
    int32_t i = 0;
    while (i < e && ++owner[i] == n) owner[i++] = 0;
    if (i == e) return best;
  }
}

TEST_CASE("ParseShardingStrategy accepts the two names and rejects others by field") {
  REQUIRE(*ParseShardingStrategy("contiguous") == ShardingStrategy::kContiguous);
  REQUIRE(*ParseShardingStrategy("balanced") == ShardingStrategy::kBalanced);
  REQUIRE(ShardingStrategyName(ShardingStrategy::kBalanced) == "balanced");
  absl::StatusOr<ShardingStrategy> bad = ParseShardingStrategy("round_robin");
  REQUIRE(bad.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE_THAT(std::string(bad.status().message()), Catch::Contains("expert_sharding") &&
                                                        Catch::Contains("round_robin") &&
                                                        Catch::Contains("contiguous"));
}

TEST_CASE("contiguous sharding gives rank r the experts [r*E/N, (r+1)*E/N)") {
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(Options(2, 8, 4));
  REQUIRE(plan.ok());
  CheckPlanInvariants(*plan);
  REQUIRE(plan->Owner(1, 0) == 0);
  REQUIRE(plan->Owner(1, 5) == 2);
  REQUIRE(plan->LocalIndex(1, 5) == 1);
  REQUIRE(std::vector<int32_t>(plan->ExpertsOf(3, 0).begin(), plan->ExpertsOf(3, 0).end()) ==
          std::vector<int32_t>{6, 7});
}

TEST_CASE("contiguous sharding handles N that does not divide E") {
  for (auto [experts, ranks] : {std::pair{10, 4}, {7, 3}, {60, 8}, {5, 5}, {9, 1}, {3, 2}}) {
    CAPTURE(experts, ranks);
    absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(Options(3, experts, ranks));
    REQUIRE(plan.ok());
    CheckPlanInvariants(*plan);
    // Ranges are contiguous and in rank order.
    int32_t next = 0;
    for (int32_t r = 0; r < ranks; ++r) {
      for (int32_t e : plan->ExpertsOf(r, 2)) REQUIRE(e == next++);
    }
    REQUIRE(next == experts);
  }
  // E=10 over 4: 2, 3, 2, 3 experts per layer.
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(Options(1, 10, 4));
  REQUIRE(plan->NumLocalExperts(0, 0) == 2);
  REQUIRE(plan->NumLocalExperts(1, 0) == 3);
}

TEST_CASE("balanced sharding separates the hot experts that contiguous puts together") {
  // Two hot experts side by side: contiguous gives one rank 20, balanced 11 (optimal).
  std::vector<int64_t> loads = {10, 10, 1, 1};
  absl::StatusOr<ShardingPlan> contiguous = ShardingPlan::Create(Options(1, 4, 2));
  absl::StatusOr<ShardingPlan> balanced =
      ShardingPlan::Create(Options(1, 4, 2, ShardingStrategy::kBalanced, loads));
  REQUIRE(balanced.ok());
  CheckPlanInvariants(*balanced);
  REQUIRE(MaxLoad(*contiguous, 0, loads) == 20);
  REQUIRE(MaxLoad(*balanced, 0, loads) == 11);
  REQUIRE(balanced->Owner(0, 0) != balanced->Owner(0, 1));
}

TEST_CASE("balanced sharding balances each layer on its own") {
  // Layer 0 hot at the front, layer 1 hot at the back.
  std::vector<int64_t> loads = {9, 8, 7, 1, 1, 1,  //
                                1, 1, 1, 7, 8, 9};
  absl::StatusOr<ShardingPlan> plan =
      ShardingPlan::Create(Options(2, 6, 3, ShardingStrategy::kBalanced, loads));
  REQUIRE(plan.ok());
  CheckPlanInvariants(*plan);
  REQUIRE(MaxLoad(*plan, 0, loads) == 10);
  REQUIRE(MaxLoad(*plan, 1, loads) == 10);
}

TEST_CASE("balanced sharding keeps the contiguous split when loads are uniform") {
  std::vector<int64_t> loads(3 * 10, 5);
  absl::StatusOr<ShardingPlan> plan =
      ShardingPlan::Create(Options(3, 10, 4, ShardingStrategy::kBalanced, loads));
  absl::StatusOr<ShardingPlan> contiguous = ShardingPlan::Create(Options(3, 10, 4));
  REQUIRE(plan.ok());
  for (int32_t l = 0; l < 3; ++l) {
    for (int32_t e = 0; e < 10; ++e) REQUIRE(plan->Owner(l, e) == contiguous->Owner(l, e));
  }
}

TEST_CASE("balanced sharding: never worse than contiguous, near the optimum on small cases") {
  std::mt19937_64 rng(7);
  int optimal = 0, cases = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int32_t experts = 3 + static_cast<int32_t>(rng() % 6);  // 3..8
    const int32_t ranks = 1 + static_cast<int32_t>(rng() % std::min(experts, 4));
    std::vector<int64_t> loads(experts);
    for (int64_t& x : loads) x = static_cast<int64_t>(rng() % 100);
    CAPTURE(experts, ranks, loads);
    absl::StatusOr<ShardingPlan> plan =
        ShardingPlan::Create(Options(1, experts, ranks, ShardingStrategy::kBalanced, loads));
    REQUIRE(plan.ok());
    CheckPlanInvariants(*plan);
    const int64_t got = MaxLoad(*plan, 0, loads);
    const int64_t best = BruteForceOptimum(loads, ranks);
    REQUIRE(got <= MaxLoad(*ShardingPlan::Create(Options(1, experts, ranks)), 0, loads));
    REQUIRE(got >= best);
    REQUIRE(got * 3 <= best * 4);  // within 4/3 of the optimum
    optimal += got == best;
    ++cases;
  }
  REQUIRE(optimal * 10 >= cases * 8);  // optimal on at least 80% of these cases
}

TEST_CASE("balanced sharding evens out a skewed trace over many experts") {
  // Zipf-like popularity in a shuffled order per layer, as routing traces show.
  const int32_t layers = 4, experts = 64, ranks = 8;
  std::mt19937_64 rng(3);
  std::vector<int64_t> loads(layers * experts);
  for (int32_t l = 0; l < layers; ++l) {
    std::vector<int32_t> order(experts);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int32_t i = 0; i < experts; ++i) {
      loads[l * experts + order[i]] = static_cast<int64_t>(10000.0 / std::pow(i + 1.0, 0.8));
    }
  }
  absl::StatusOr<ShardingPlan> plan =
      ShardingPlan::Create(Options(layers, experts, ranks, ShardingStrategy::kBalanced, loads));
  absl::StatusOr<ShardingPlan> contiguous = ShardingPlan::Create(Options(layers, experts, ranks));
  REQUIRE(plan.ok());
  CheckPlanInvariants(*plan);
  for (int32_t l = 0; l < layers; ++l) {
    CAPTURE(l);
    // Lower bounds: the mean, and the heaviest expert's rank, which holds at least
    // E/N - 1 other experts.
    std::vector<int64_t> layer_loads(loads.begin() + l * experts,
                                     loads.begin() + (l + 1) * experts);
    std::sort(layer_loads.begin(), layer_loads.end());
    const int64_t total = std::accumulate(layer_loads.begin(), layer_loads.end(), int64_t{0});
    const int64_t heaviest_rank =
        layer_loads.back() +
        std::accumulate(layer_loads.begin(), layer_loads.begin() + experts / ranks - 1, int64_t{0});
    const int64_t bound = std::max((total + ranks - 1) / ranks, heaviest_rank);
    const int64_t got = MaxLoad(*plan, l, loads);
    REQUIRE(got * 100 <= bound * 102);  // within 2% of the lower bound
    REQUIRE(got < MaxLoad(*contiguous, l, loads));
  }
}

TEST_CASE("sharding validation names the field at fault") {
  auto message = [](const ShardingOptions& o) {
    absl::StatusOr<ShardingPlan> p = ShardingPlan::Create(o);
    REQUIRE(p.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(p.status().message());
  };
  REQUIRE_THAT(message(Options(2, 8, 0)), Catch::Contains("num_ranks") &&
                                              Catch::Contains("--expert-parallel") &&
                                              Catch::Contains(">= 1"));
  REQUIRE_THAT(message(Options(2, 8, 9)),
               Catch::Contains("num_ranks") && Catch::Contains("num_experts 8"));
  ShardingOptions few_gpus = Options(2, 8, 4);
  few_gpus.visible_gpus = 2;
  REQUIRE_THAT(message(few_gpus),
               Catch::Contains("num_ranks") && Catch::Contains("2 visible GPUs"));
  ShardingOptions negative_gpus = Options(2, 8, 1);
  negative_gpus.visible_gpus = -1;
  REQUIRE_THAT(message(negative_gpus), Catch::Contains("visible_gpus"));
  REQUIRE_THAT(message(Options(0, 8, 1)), Catch::Contains("grid.num_layers"));
  REQUIRE_THAT(message(Options(2, 0, 1)), Catch::Contains("grid.num_experts"));
  REQUIRE_THAT(
      message(Options(2, 8, 2, ShardingStrategy::kBalanced, std::vector<int64_t>(8, 1))),
      Catch::Contains("loads") && Catch::Contains("has 8 entries") && Catch::Contains("= 16"));
  std::vector<int64_t> negative(16, 1);
  negative[8 + 3] = -2;
  REQUIRE_THAT(message(Options(2, 8, 2, ShardingStrategy::kBalanced, negative)),
               Catch::Contains("loads[layer 1, expert 3]"));
  // Contiguous ignores the load table.
  REQUIRE(ShardingPlan::Create(Options(2, 8, 2, ShardingStrategy::kContiguous, {1})).ok());
}

TEST_CASE("bytes per rank and the memory check report the rank that does not fit") {
  // 2 layers of 10 experts over 4 ranks: 2+3+2+3 per layer -> 4, 6, 4, 6 experts.
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(Options(2, 10, 4));
  REQUIRE(plan.ok());
  REQUIRE(plan->NumExpertsOnRank(1) == 6);
  REQUIRE(plan->BytesPerRank(100) == std::vector<int64_t>{400, 600, 400, 600});
  REQUIRE(CheckMemoryFits(*plan, 100, 50, 650).ok());
  absl::Status tight = CheckMemoryFits(*plan, 100, 50, 600);
  REQUIRE(tight.code() == absl::StatusCode::kResourceExhausted);
  REQUIRE_THAT(std::string(tight.message()),
               Catch::Contains("rank 1") && Catch::Contains("6 experts x 100 B") &&
                   Catch::Contains("dense 50 B = 650 B") && Catch::Contains("600 B") &&
                   Catch::Contains("2 of 4 ranks"));
  REQUIRE_THAT(std::string(CheckMemoryFits(*plan, -1, 0, 1).message()),
               Catch::Contains("bytes_per_expert"));
  REQUIRE_THAT(std::string(CheckMemoryFits(*plan, 1, -1, 1).message()),
               Catch::Contains("dense_bytes"));
  REQUIRE_THAT(std::string(CheckMemoryFits(*plan, 1, 1, -1).message()),
               Catch::Contains("per_gpu_budget"));
  // Sizes that would overflow int64 do not fit, rather than wrapping around.
  absl::Status huge = CheckMemoryFits(*plan, int64_t{1} << 62, 0, int64_t{1} << 62);
  REQUIRE(huge.code() == absl::StatusCode::kResourceExhausted);
  REQUIRE_THAT(std::string(huge.message()), Catch::Contains("overflow"));
}

TEST_CASE("load tables come from routing traces and feed the balanced strategy") {
  RoutingTrace trace;
  trace.grid = {2, 4};
  trace.steps = {{{0, 1}, {3}}, {{0, 1}, {2, 3}}, {{0, 2}, {3}}};
  absl::StatusOr<std::vector<int64_t>> loads = LoadsFromTrace(trace);
  REQUIRE(loads.ok());
  REQUIRE(*loads == std::vector<int64_t>{3, 2, 1, 0, 0, 0, 1, 3});
  ShardingOptions o = Options(2, 4, 2, ShardingStrategy::kBalanced, *loads);
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(o);
  REQUIRE(plan.ok());
  REQUIRE(plan->Owner(0, 0) != plan->Owner(0, 1));  // the two hot experts of layer 0 split
  std::vector<int64_t> per_rank = *RankLoads(*plan, 0, *loads);
  REQUIRE(per_rank.size() == 2);
  REQUIRE(per_rank[0] + per_rank[1] == 6);
  REQUIRE(MaxLoad(*plan, 0, *loads) == 3);
  trace.steps[1][0] = {0, 0};
  REQUIRE(LoadsFromTrace(trace).status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(RankLoads(*plan, 2, *loads).status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(RankLoads(*plan, 0, {1, 2}).status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moe::engine::parallel
