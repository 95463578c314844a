#include "engine/parallel/all_to_all_sim.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>

namespace moe::engine::parallel {
namespace {

TEST_CASE("SimulateAllToAll delivers each source's segment, in source rank order") {
  // Rows are tagged 10*source + position.
  std::vector<RowBuffer> send = {{{0}, {1}, {2}}, {}, {{20}, {21}}};
  std::vector<std::vector<int64_t>> counts = {{1, 0, 2}, {0, 0, 0}, {1, 1, 0}};
  absl::StatusOr<std::vector<RowBuffer>> recv = SimulateAllToAll(send, counts);
  REQUIRE(recv.ok());
  REQUIRE((*recv)[0] == RowBuffer{{0}, {20}});
  REQUIRE((*recv)[1] == RowBuffer{{21}});
  REQUIRE((*recv)[2] == RowBuffer{{1}, {2}});
}

TEST_CASE("SimulateAllToAll rejects counts that do not match the buffers") {
  std::vector<RowBuffer> send = {{{0}}, {{1}}};
  auto message = [&](const std::vector<std::vector<int64_t>>& counts) {
    absl::StatusOr<std::vector<RowBuffer>> r = SimulateAllToAll(send, counts);
    REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  REQUIRE_THAT(message({{1, 0}}), Catch::Contains("send_counts: has 1 rows"));
  REQUIRE_THAT(message({{1, 0}, {1}}), Catch::Contains("send_counts[1]: has 1"));
  REQUIRE_THAT(message({{2, -1}, {0, 1}}), Catch::Contains("send_counts[0][1]: negative"));
  REQUIRE_THAT(message({{1, 1}, {0, 1}}), Catch::Contains("send[0]: has 1 rows"));
}

// The toy expert: out = row * (expert + 1) + layer, elementwise.
std::vector<float> ToyExpert(int32_t layer, int32_t expert, const std::vector<float>& row) {
  std::vector<float> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) {
    out[i] = row[i] * static_cast<float>(expert + 1) + static_cast<float>(layer);
  }
  return out;
}

struct Case {
  int64_t tokens;
  int32_t experts;
  int32_t k;
  int32_t ranks;
  ShardingStrategy strategy;
  std::string partition;  // "rank0", "last", "even", "random", "one_rank_empty"
  uint64_t seed;
};

// Runs one MoE layer through dispatch -> all-to-all -> per-rank experts -> all-to-all back
// -> combine, and compares with the single-GPU computation. Returns the worst difference.
float RunCase(const Case& c, bool force_duplicates = false) {
  const int32_t layers = 3, layer = 2, dim = 5;
  std::mt19937_64 rng(c.seed);
  ShardingOptions o;
  o.grid = {layers, c.experts};
  o.num_ranks = c.ranks;
  o.visible_gpus = c.ranks;
  o.strategy = c.strategy;
  o.loads.resize(o.grid.size());
  for (int64_t& x : o.loads) x = static_cast<int64_t>(rng() % 1000);
  absl::StatusOr<ShardingPlan> sharding = ShardingPlan::Create(o);
  REQUIRE(sharding.ok());

  std::vector<int32_t> ids(c.tokens * c.k);
  std::vector<float> w(c.tokens * c.k);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t t = 0; t < c.tokens; ++t) {
    const int32_t first = static_cast<int32_t>(rng() % c.experts);
    for (int32_t j = 0; j < c.k; ++j) {
      ids[t * c.k + j] = force_duplicates ? first : static_cast<int32_t>(rng() % c.experts);
      w[t * c.k + j] = u(rng);
    }
  }
  std::vector<std::vector<float>> hidden(c.tokens, std::vector<float>(dim));
  for (auto& row : hidden) {
    for (float& x : row) x = u(rng);
  }
  std::vector<int32_t> where;
  if (c.partition == "rank0") where = TokensOnOneRank(c.tokens, 0);
  if (c.partition == "last") where = TokensOnOneRank(c.tokens, c.ranks - 1);
  if (c.partition == "even") where = SplitTokensEvenly(c.tokens, c.ranks);
  if (c.partition == "random" || c.partition == "one_rank_empty") {
    const int32_t usable = c.partition == "random" ? c.ranks : std::max(1, c.ranks - 1);
    for (int64_t t = 0; t < c.tokens; ++t) where.push_back(static_cast<int32_t>(rng() % usable));
  }
  REQUIRE(static_cast<int64_t>(where.size()) == c.tokens);

  // Single GPU: every expert local.
  std::vector<std::vector<float>> expected(c.tokens, std::vector<float>(dim, 0.0f));
  for (int64_t t = 0; t < c.tokens; ++t) {
    for (int32_t j = 0; j < c.k; ++j) {
      std::vector<float> y = ToyExpert(layer, ids[t * c.k + j], hidden[t]);
      for (int i = 0; i < dim; ++i) expected[t][i] += w[t * c.k + j] * y[i];
    }
  }

  absl::StatusOr<DispatchPlan> plan =
      BuildDispatchPlan({c.tokens, c.k, ids, w}, *sharding, layer, where);
  REQUIRE(plan.ok());
  // Each rank holds only its own tokens.
  std::vector<RowBuffer> local(c.ranks);
  for (int32_t s = 0; s < c.ranks; ++s) {
    for (int32_t t : plan->tokens_of_rank[s]) local[s].push_back(hidden[t]);
  }
  absl::StatusOr<std::vector<RowBuffer>> send = GatherSendBuffers(*plan, local);
  REQUIRE(send.ok());
  absl::StatusOr<std::vector<RowBuffer>> received = SimulateAllToAll(*send, plan->send_counts);
  REQUIRE(received.ok());
  std::vector<RowBuffer> back(c.ranks);
  for (int32_t d = 0; d < c.ranks; ++d) {
    absl::StatusOr<RowBuffer> rows = RegroupForCompute(*plan, d, (*received)[d]);
    REQUIRE(rows.ok());
    // The rank knows only its own experts and the per-local-expert offsets.
    const RankDispatch& r = plan->recv[d];
    absl::Span<const int32_t> mine = sharding->ExpertsOf(d, layer);
    REQUIRE(r.expert_offsets.size() == mine.size() + 1);
    RowBuffer computed(rows->size());
    for (size_t e = 0; e < mine.size(); ++e) {
      for (int64_t i = r.expert_offsets[e]; i < r.expert_offsets[e + 1]; ++i) {
        computed[i] = ToyExpert(layer, mine[e], (*rows)[i]);
      }
    }
    absl::StatusOr<RowBuffer> scattered = ScatterForReturn(*plan, d, std::move(computed));
    REQUIRE(scattered.ok());
    back[d] = *std::move(scattered);
  }
  // The return trip: rank d sends recv_counts[d][s] rows to s.
  absl::StatusOr<std::vector<RowBuffer>> returned = SimulateAllToAll(back, plan->recv_counts);
  REQUIRE(returned.ok());
  absl::StatusOr<std::vector<RowBuffer>> out = CombineOutputs(*plan, *returned);
  REQUIRE(out.ok());

  float worst = 0.0f;
  for (int32_t s = 0; s < c.ranks; ++s) {
    REQUIRE((*out)[s].size() == plan->tokens_of_rank[s].size());
    for (size_t i = 0; i < (*out)[s].size(); ++i) {
      const int32_t t = plan->tokens_of_rank[s][i];
      REQUIRE((*out)[s][i].size() == static_cast<size_t>(dim));
      for (int j = 0; j < dim; ++j) {
        worst = std::max(worst, std::abs((*out)[s][i][j] - expected[t][j]));
      }
    }
  }
  return worst;
}

TEST_CASE("dispatch, exchange, compute, return and combine equal the single-GPU layer") {
  const std::vector<std::string> partitions = {"rank0", "last", "even", "random", "one_rank_empty"};
  uint64_t seed = 1;
  int cases = 0;
  for (int64_t tokens : {0, 1, 3, 17, 64}) {
    for (auto [experts, k, ranks] :
         {std::tuple{4, 1, 1}, {8, 2, 3}, {8, 2, 8}, {10, 3, 4}, {60, 4, 8}, {64, 8, 5}}) {
      for (ShardingStrategy strategy :
           {ShardingStrategy::kContiguous, ShardingStrategy::kBalanced}) {
        for (const std::string& partition : partitions) {
          Case c{tokens, experts, k, ranks, strategy, partition, seed++};
          CAPTURE(c.tokens, c.experts, c.k, c.ranks, c.partition, c.seed,
                  ShardingStrategyName(strategy));
          // Same float operations in the same order: exact.
          REQUIRE(RunCase(c) == 0.0f);
          ++cases;
        }
      }
    }
  }
  REQUIRE(cases == 5 * 6 * 2 * 5);
}

TEST_CASE("a token that lists the same expert in every slot still combines correctly") {
  for (auto [experts, k, ranks] : {std::tuple{4, 2, 2}, {8, 4, 3}, {2, 3, 2}}) {
    Case c{23, experts, k, ranks, ShardingStrategy::kContiguous, "random", 99};
    CAPTURE(experts, k, ranks);
    REQUIRE(RunCase(c, /*force_duplicates=*/true) == 0.0f);
  }
}

TEST_CASE("reference steps reject buffers that do not match the plan") {
  ShardingOptions o;
  o.grid = {1, 4};
  o.num_ranks = 2;
  o.visible_gpus = 2;
  absl::StatusOr<ShardingPlan> sharding = ShardingPlan::Create(o);
  std::vector<int32_t> ids = {0, 3};
  std::vector<float> w = {1.0f, 1.0f};
  absl::StatusOr<DispatchPlan> plan =
      BuildDispatchPlan({2, 1, ids, w}, *sharding, 0, SplitTokensEvenly(2, 2));
  REQUIRE(plan.ok());
  REQUIRE_THAT(std::string(GatherSendBuffers(*plan, {{{1.0f}}}).status().message()),
               Catch::Contains("local_hidden: has 1 ranks"));
  REQUIRE_THAT(std::string(GatherSendBuffers(*plan, {{}, {{1.0f}}}).status().message()),
               Catch::Contains("local_hidden[0]: has 0 rows"));
  REQUIRE_THAT(std::string(RegroupForCompute(*plan, 2, {}).status().message()),
               Catch::Contains("rank: 2"));
  REQUIRE_THAT(std::string(RegroupForCompute(*plan, 0, {}).status().message()),
               Catch::Contains("received: rank 0 has 0 rows"));
  REQUIRE_THAT(std::string(ScatterForReturn(*plan, 1, {{}, {}}).status().message()),
               Catch::Contains("computed: rank 1 has 2 rows"));
  REQUIRE_THAT(std::string(CombineOutputs(*plan, {{}, {}}).status().message()),
               Catch::Contains("returned[0]: has 0 rows"));
}

}  // namespace
}  // namespace moe::engine::parallel
