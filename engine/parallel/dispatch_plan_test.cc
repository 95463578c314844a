#include "engine/parallel/dispatch_plan.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <tuple>

namespace moe::engine::parallel {
namespace {

ShardingPlan Contiguous(int32_t layers, int32_t experts, int32_t ranks) {
  ShardingOptions o;
  o.grid = {layers, experts};
  o.num_ranks = ranks;
  o.visible_gpus = ranks;
  absl::StatusOr<ShardingPlan> plan = ShardingPlan::Create(o);
  REQUIRE(plan.ok());
  return *std::move(plan);
}

std::vector<DispatchRow> Rows(std::initializer_list<std::pair<int, int>> list) {
  std::vector<DispatchRow> rows;
  for (auto [t, j] : list) rows.push_back({t, j});
  return rows;
}

TEST_CASE("dispatch plan of a small layer, all tokens on rank 0") {
  // Rank 0 owns experts {0, 1}, rank 1 owns {2, 3}. Token 1 lists expert 1 twice.
  ShardingPlan sharding = Contiguous(2, 4, 2);
  std::vector<int32_t> ids = {3, 0, 1, 1, 2, 0};
  std::vector<float> w = {0.6f, 0.4f, 0.5f, 0.5f, 0.7f, 0.3f};
  absl::StatusOr<DispatchPlan> p =
      BuildDispatchPlan({3, 2, ids, w}, sharding, 1, TokensOnOneRank(3, 0));
  REQUIRE(p.ok());
  // Send order: by destination, local expert, token.
  REQUIRE(p->send[0].rows == Rows({{0, 1}, {2, 1}, {1, 0}, {1, 1}, {2, 0}, {0, 0}}));
  REQUIRE(p->send[0].local_token == std::vector<int32_t>{0, 2, 1, 1, 2, 0});
  REQUIRE(p->send[1].rows.empty());
  REQUIRE(p->send_counts == std::vector<std::vector<int64_t>>{{4, 2}, {0, 0}});
  REQUIRE(p->recv_counts == std::vector<std::vector<int64_t>>{{4, 0}, {2, 0}});
  REQUIRE(p->send_offsets == std::vector<std::vector<int64_t>>{{0, 4}, {0, 0}});
  REQUIRE(p->recv[0].recv_count == 4);
  REQUIRE(p->recv[0].expert_counts == std::vector<int64_t>{2, 2});
  REQUIRE(p->recv[0].expert_offsets == std::vector<int64_t>{0, 2, 4});
  REQUIRE(p->recv[0].expert_ids == std::vector<int32_t>{0, 0, 1, 1});
  REQUIRE(p->recv[1].rows == Rows({{2, 0}, {0, 0}}));
  REQUIRE(p->recv[1].expert_ids == std::vector<int32_t>{2, 3});
  REQUIRE(p->recv[1].recv_index == std::vector<int64_t>{0, 1});
  // Combine: token 0 slot 0 (expert 3) comes back as row 5 of rank 0's buffer.
  REQUIRE(p->combine[0].rank == 0);
  REQUIRE(p->combine[0].row == 5);
  REQUIRE(p->combine[0].weight == 0.6f);
  REQUIRE(p->combine[1].row == 0);
  REQUIRE(p->combine[2].row == 2);
  REQUIRE(p->combine[3].row == 3);
}

TEST_CASE("received rows are regrouped by local expert across sources") {
  // Two sources both route to rank 1's experts {2, 3}; receive order is source-major,
  // compute order is expert-major.
  ShardingPlan sharding = Contiguous(1, 4, 2);
  std::vector<int32_t> ids = {3, 2, 3, 2};  // k = 1; tokens 0,1 on rank 0, 2,3 on rank 1
  std::vector<float> w(4, 1.0f);
  absl::StatusOr<DispatchPlan> p =
      BuildDispatchPlan({4, 1, ids, w}, sharding, 0, SplitTokensEvenly(4, 2));
  REQUIRE(p.ok());
  REQUIRE(p->recv_counts[1] == std::vector<int64_t>{2, 2});
  REQUIRE(p->recv[1].chunk_counts == std::vector<std::vector<int64_t>>{{1, 1}, {1, 1}});
  // Receive buffer: [t1 (e2), t0 (e3)] from rank 0, then [t3 (e2), t2 (e3)] from rank 1.
  REQUIRE(p->recv[1].rows == Rows({{1, 0}, {3, 0}, {0, 0}, {2, 0}}));
  REQUIRE(p->recv[1].recv_index == std::vector<int64_t>{0, 2, 1, 3});
  REQUIRE(p->recv[1].expert_offsets == std::vector<int64_t>{0, 2, 4});
  REQUIRE(p->recv[0].recv_count == 0);
  REQUIRE(p->recv[0].expert_offsets == std::vector<int64_t>{0, 0, 0});
  REQUIRE(p->token_local_index == std::vector<int32_t>{0, 1, 0, 1});
}

TEST_CASE("RegroupIndex is computable from chunk counts alone") {
  // Source 0 sends 2 rows of expert 0 and 1 of expert 1; source 1 sends 0 and 2.
  REQUIRE(RegroupIndex({{2, 1}, {0, 2}}) == std::vector<int64_t>{0, 1, 2, 3, 4});
  REQUIRE(RegroupIndex({{1, 2}, {2, 1}}) == std::vector<int64_t>{0, 3, 4, 1, 2, 5});
  REQUIRE(RegroupIndex({}).empty());
}

TEST_CASE("dispatch plans of random routings are consistent") {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 40; ++trial) {
    const int32_t experts = 1 + static_cast<int32_t>(rng() % 16);
    const int32_t ranks = 1 + static_cast<int32_t>(rng() % std::min(experts, 5));
    const int32_t k = 1 + static_cast<int32_t>(rng() % 4);
    const int64_t tokens = static_cast<int64_t>(rng() % 40);
    CAPTURE(trial, experts, ranks, k, tokens);
    ShardingPlan sharding = Contiguous(2, experts, ranks);
    std::vector<int32_t> ids(tokens * k);
    for (int32_t& e : ids) e = static_cast<int32_t>(rng() % experts);
    std::vector<float> w(tokens * k, 0.25f);
    std::vector<int32_t> where(tokens);
    for (int32_t& r : where) r = static_cast<int32_t>(rng() % ranks);
    absl::StatusOr<DispatchPlan> p = BuildDispatchPlan({tokens, k, ids, w}, sharding, 1, where);
    REQUIRE(p.ok());
    std::vector<int> seen(tokens * k, 0);
    for (int32_t d = 0; d < ranks; ++d) {
      const RankDispatch& r = p->recv[d];
      int64_t from_sources = 0;
      for (int32_t s = 0; s < ranks; ++s) {
        REQUIRE(p->recv_counts[d][s] == p->send_counts[s][d]);
        from_sources += p->send_counts[s][d];
      }
      REQUIRE(r.recv_count == from_sources);
      REQUIRE(static_cast<int64_t>(r.rows.size()) == r.recv_count);
      REQUIRE(r.expert_offsets.back() == r.recv_count);
      std::vector<int64_t> sorted_index = r.recv_index;
      std::sort(sorted_index.begin(), sorted_index.end());
      for (size_t i = 0; i < sorted_index.size(); ++i) REQUIRE(sorted_index[i] == int64_t(i));
      for (int32_t e = 0; e < sharding.NumLocalExperts(d, 1); ++e) {
        for (int64_t i = r.expert_offsets[e]; i < r.expert_offsets[e + 1]; ++i) {
          const DispatchRow row = r.rows[i];
          // Routed to the owner, grouped under the right local expert.
          REQUIRE(ids[row.token * k + row.slot] == sharding.ExpertsOf(d, 1)[e]);
          REQUIRE(r.expert_ids[i] == sharding.ExpertsOf(d, 1)[e]);
          ++seen[row.token * k + row.slot];
          if (i > r.expert_offsets[e]) {  // then by source rank, then token
            const DispatchRow prev = r.rows[i - 1];
            REQUIRE(std::tie(where[prev.token], prev.token, prev.slot) <
                    std::tie(where[row.token], row.token, row.slot));
          }
        }
      }
    }
    for (int x : seen) REQUIRE(x == 1);  // every (token, slot) dispatched exactly once
    for (int64_t t = 0; t < tokens; ++t) {
      for (int32_t j = 0; j < k; ++j) {
        const CombineEntry& c = p->combine[t * k + j];
        REQUIRE(c.rank == where[t]);
        REQUIRE(p->send[c.rank].rows[c.row] == DispatchRow{int32_t(t), j});
        REQUIRE(p->tokens_of_rank[c.rank][p->send[c.rank].local_token[c.row]] == t);
      }
    }
  }
}

TEST_CASE("dispatch plan validation names the field at fault") {
  ShardingPlan sharding = Contiguous(2, 4, 2);
  std::vector<int32_t> ids = {0, 1, 2, 3};
  std::vector<float> w(4, 0.5f);
  std::vector<int32_t> where = {0, 1};
  auto message = [&](const LayerRouting& r, int32_t layer, absl::Span<const int32_t> ranks) {
    absl::StatusOr<DispatchPlan> p = BuildDispatchPlan(r, sharding, layer, ranks);
    REQUIRE(p.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(p.status().message());
  };
  REQUIRE(BuildDispatchPlan({2, 2, ids, w}, sharding, 0, where).ok());
  REQUIRE_THAT(message({2, 2, ids, w}, 2, where), Catch::Contains("layer: 2"));
  REQUIRE_THAT(message({2, 0, {}, {}}, 0, where), Catch::Contains("top_k"));
  REQUIRE_THAT(message({-1, 2, ids, w}, 0, where), Catch::Contains("num_tokens"));
  REQUIRE_THAT(message({3, 2, ids, w}, 0, where), Catch::Contains("expert_ids: has 4"));
  REQUIRE_THAT(message({2, 2, ids, absl::MakeConstSpan(w).subspan(1)}, 0, where),
               Catch::Contains("weights: has 3"));
  REQUIRE_THAT(message({2, 2, ids, w}, 0, std::vector<int32_t>{0}),
               Catch::Contains("token_ranks: has 1"));
  REQUIRE_THAT(message({2, 2, ids, w}, 0, std::vector<int32_t>{0, 2}),
               Catch::Contains("token_ranks[1]: 2"));
  std::vector<int32_t> bad_ids = {0, 1, 4, 3};
  REQUIRE_THAT(message({2, 2, bad_ids, w}, 0, where),
               Catch::Contains("expert_ids[1, 0]: 4") && Catch::Contains("layer 0"));
}

TEST_CASE("token partitions") {
  REQUIRE(TokensOnOneRank(3, 2) == std::vector<int32_t>{2, 2, 2});
  REQUIRE(SplitTokensEvenly(5, 2) == std::vector<int32_t>{0, 0, 1, 1, 1});
  REQUIRE(SplitTokensEvenly(2, 4) == std::vector<int32_t>{1, 3});  // ranks 0, 2 empty
  REQUIRE(SplitTokensEvenly(0, 3).empty());
}

}  // namespace
}  // namespace moe::engine::parallel
