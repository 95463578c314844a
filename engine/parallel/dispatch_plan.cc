#include "engine/parallel/dispatch_plan.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moe::engine::parallel {
namespace {

absl::Status ValidateInputs(const LayerRouting& r, const ShardingPlan& plan, int32_t layer,
                            absl::Span<const int32_t> token_ranks) {
  const ExpertGrid& g = plan.grid();
  if (layer < 0 || layer >= g.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: ", layer, " outside [0, ", g.num_layers, ")"));
  }
  if (r.top_k < 1) {
    return absl::InvalidArgumentError(absl::StrCat("top_k: must be >= 1, got ", r.top_k));
  }
  if (r.num_tokens < 0 || r.num_tokens > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_tokens: must be in [0, 2^31), got ", r.num_tokens));
  }
  const size_t n = static_cast<size_t>(r.num_tokens) * r.top_k;
  if (r.expert_ids.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expert_ids: has ", r.expert_ids.size(),
        " entries, expected num_tokens * top_k = ", r.num_tokens, " * ", r.top_k, " = ", n));
  }
  if (r.weights.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights: has ", r.weights.size(), " entries, expected num_tokens * top_k = ", r.num_tokens,
        " * ", r.top_k, " = ", n));
  }
  if (token_ranks.size() != static_cast<size_t>(r.num_tokens)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token_ranks: has ", token_ranks.size(), " entries, expected num_tokens = ", r.num_tokens));
  }
  for (int64_t t = 0; t < r.num_tokens; ++t) {
    if (token_ranks[t] < 0 || token_ranks[t] >= plan.num_ranks()) {
      return absl::InvalidArgumentError(absl::StrCat("token_ranks[", t, "]: ", token_ranks[t],
                                                     " outside [0, ", plan.num_ranks(), ")"));
    }
    for (int32_t j = 0; j < r.top_k; ++j) {
      const int32_t e = r.expert_ids[t * r.top_k + j];
      if (e < 0 || e >= g.num_experts) {
        return absl::InvalidArgumentError(absl::StrCat("expert_ids[", t, ", ", j, "]: ", e,
                                                       " outside [0, ", g.num_experts,
                                                       ") at layer ", layer));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<std::vector<int64_t>> PrefixSums(const std::vector<std::vector<int64_t>>& counts) {
  std::vector<std::vector<int64_t>> offsets(counts.size());
  for (size_t i = 0; i < counts.size(); ++i) {
    offsets[i].resize(counts[i].size());
    int64_t at = 0;
    for (size_t j = 0; j < counts[i].size(); ++j) {
      offsets[i][j] = at;
      at += counts[i][j];
    }
  }
  return offsets;
}

}  // namespace

std::vector<int64_t> RegroupIndex(const std::vector<std::vector<int64_t>>& chunk_counts) {
  const size_t sources = chunk_counts.size();
  size_t experts = 0;
  for (const auto& c : chunk_counts) experts = std::max(experts, c.size());
  // Where source s's segment, and its chunk for local expert e, start in the receive buffer.
  std::vector<std::vector<int64_t>> chunk_start(sources);
  int64_t at = 0;
  for (size_t s = 0; s < sources; ++s) {
    chunk_start[s].resize(chunk_counts[s].size());
    for (size_t e = 0; e < chunk_counts[s].size(); ++e) {
      chunk_start[s][e] = at;
      at += chunk_counts[s][e];
    }
  }
  std::vector<int64_t> index;
  index.reserve(at);
  for (size_t e = 0; e < experts; ++e) {
    for (size_t s = 0; s < sources; ++s) {
      if (e >= chunk_counts[s].size()) continue;
      for (int64_t j = 0; j < chunk_counts[s][e]; ++j) index.push_back(chunk_start[s][e] + j);
    }
  }
  return index;
}

absl::StatusOr<DispatchPlan> BuildDispatchPlan(const LayerRouting& routing,
                                               const ShardingPlan& plan, int32_t layer,
                                               absl::Span<const int32_t> token_ranks) {
  if (absl::Status s = ValidateInputs(routing, plan, layer, token_ranks); !s.ok()) return s;
  const int32_t n = plan.num_ranks();
  const int32_t k = routing.top_k;
  DispatchPlan p;
  p.num_ranks = n;
  p.layer = layer;
  p.num_tokens = routing.num_tokens;
  p.top_k = k;
  p.token_rank.assign(token_ranks.begin(), token_ranks.end());
  p.token_local_index.resize(routing.num_tokens);
  p.tokens_of_rank.resize(n);
  for (int32_t t = 0; t < routing.num_tokens; ++t) {
    std::vector<int32_t>& mine = p.tokens_of_rank[token_ranks[t]];
    p.token_local_index[t] = static_cast<int32_t>(mine.size());
    mine.push_back(t);
  }

  // bucket[s][d][e]: rows source s sends to destination d for d's local expert e, by token.
  std::vector<std::vector<std::vector<std::vector<DispatchRow>>>> bucket(n);
  for (int32_t s = 0; s < n; ++s) {
    bucket[s].resize(n);
    for (int32_t d = 0; d < n; ++d) bucket[s][d].resize(plan.NumLocalExperts(d, layer));
    for (int32_t t : p.tokens_of_rank[s]) {
      for (int32_t j = 0; j < k; ++j) {
        const int32_t e = routing.expert_ids[static_cast<size_t>(t) * k + j];
        bucket[s][plan.Owner(layer, e)][plan.LocalIndex(layer, e)].push_back({t, j});
      }
    }
  }

  p.send.resize(n);
  p.send_counts.assign(n, std::vector<int64_t>(n, 0));
  p.combine.resize(static_cast<size_t>(routing.num_tokens) * k);
  for (int32_t s = 0; s < n; ++s) {
    SourceSend& out = p.send[s];
    for (int32_t d = 0; d < n; ++d) {
      for (const auto& chunk : bucket[s][d]) {
        for (DispatchRow row : chunk) {
          const size_t flat = static_cast<size_t>(row.token) * k + row.slot;
          p.combine[flat] = {s, static_cast<int64_t>(out.rows.size()), routing.weights[flat]};
          out.rows.push_back(row);
          out.local_token.push_back(p.token_local_index[row.token]);
        }
        p.send_counts[s][d] += static_cast<int64_t>(chunk.size());
      }
    }
  }
  p.recv_counts.assign(n, std::vector<int64_t>(n, 0));
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t d = 0; d < n; ++d) p.recv_counts[d][s] = p.send_counts[s][d];
  }
  p.send_offsets = PrefixSums(p.send_counts);
  p.recv_offsets = PrefixSums(p.recv_counts);

  p.recv.resize(n);
  for (int32_t d = 0; d < n; ++d) {
    RankDispatch& r = p.recv[d];
    const int32_t local = plan.NumLocalExperts(d, layer);
    absl::Span<const int32_t> ids = plan.ExpertsOf(d, layer);
    r.chunk_counts.assign(n, std::vector<int64_t>(local, 0));
    r.expert_counts.assign(local, 0);
    for (int32_t s = 0; s < n; ++s) {
      for (int32_t e = 0; e < local; ++e) {
        r.chunk_counts[s][e] = static_cast<int64_t>(bucket[s][d][e].size());
        r.expert_counts[e] += r.chunk_counts[s][e];
      }
      r.recv_count += p.recv_counts[d][s];
    }
    r.expert_offsets.assign(local + 1, 0);
    for (int32_t e = 0; e < local; ++e) {
      r.expert_offsets[e + 1] = r.expert_offsets[e] + r.expert_counts[e];
    }
    for (int32_t e = 0; e < local; ++e) {
      for (int32_t s = 0; s < n; ++s) {
        for (DispatchRow row : bucket[s][d][e]) {
          r.rows.push_back(row);
          r.expert_ids.push_back(ids[e]);
        }
      }
    }
    r.recv_index = RegroupIndex(r.chunk_counts);
  }
  return p;
}

std::vector<int32_t> TokensOnOneRank(int64_t num_tokens, int32_t rank) {
  return std::vector<int32_t>(static_cast<size_t>(std::max<int64_t>(num_tokens, 0)), rank);
}

std::vector<int32_t> SplitTokensEvenly(int64_t num_tokens, int32_t num_ranks) {
  std::vector<int32_t> ranks(static_cast<size_t>(std::max<int64_t>(num_tokens, 0)), 0);
  if (num_ranks < 1) return ranks;
  for (int32_t r = 0; r < num_ranks; ++r) {
    for (int64_t t = num_tokens * r / num_ranks; t < num_tokens * (r + 1) / num_ranks; ++t) {
      ranks[t] = r;
    }
  }
  return ranks;
}

}  // namespace moe::engine::parallel
