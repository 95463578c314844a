#include "engine/parallel/all_to_all_sim.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::engine::parallel {
namespace {

absl::Status CheckRank(const DispatchPlan& plan, int32_t rank) {
  if (rank < 0 || rank >= plan.num_ranks) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank: ", rank, " outside [0, ", plan.num_ranks, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckRankCount(const char* field, size_t got, int32_t num_ranks) {
  if (got != static_cast<size_t>(num_ranks)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": has ", got, " ranks, expected ", num_ranks));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<RowBuffer>> SimulateAllToAll(
    const std::vector<RowBuffer>& send, const std::vector<std::vector<int64_t>>& send_counts) {
  const size_t n = send.size();
  if (send_counts.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("send_counts: has ", send_counts.size(),
                                                   " rows, expected one per rank (", n, ")"));
  }
  for (size_t s = 0; s < n; ++s) {
    if (send_counts[s].size() != n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "send_counts[", s, "]: has ", send_counts[s].size(), " entries, expected ", n));
    }
    int64_t total = 0;
    for (size_t d = 0; d < n; ++d) {
      if (send_counts[s][d] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("send_counts[", s, "][", d, "]: negative (", send_counts[s][d], ")"));
      }
      total += send_counts[s][d];
    }
    if (total != static_cast<int64_t>(send[s].size())) {
      return absl::InvalidArgumentError(absl::StrCat("send[", s, "]: has ", send[s].size(),
                                                     " rows, send_counts[", s, "] sum to ", total));
    }
  }
  std::vector<RowBuffer> recv(n);
  for (size_t s = 0; s < n; ++s) {
    int64_t at = 0;
    for (size_t d = 0; d < n; ++d) {
      for (int64_t j = 0; j < send_counts[s][d]; ++j) recv[d].push_back(send[s][at + j]);
      at += send_counts[s][d];
    }
  }
  return recv;
}

absl::StatusOr<std::vector<RowBuffer>> GatherSendBuffers(
    const DispatchPlan& plan, const std::vector<RowBuffer>& local_hidden) {
  if (absl::Status s = CheckRankCount("local_hidden", local_hidden.size(), plan.num_ranks);
      !s.ok()) {
    return s;
  }
  std::vector<RowBuffer> send(plan.num_ranks);
  for (int32_t s = 0; s < plan.num_ranks; ++s) {
    if (local_hidden[s].size() != plan.tokens_of_rank[s].size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("local_hidden[", s, "]: has ", local_hidden[s].size(), " rows, rank ", s,
                       " holds ", plan.tokens_of_rank[s].size(), " tokens"));
    }
    send[s].reserve(plan.send[s].rows.size());
    for (int32_t local : plan.send[s].local_token) send[s].push_back(local_hidden[s][local]);
  }
  return send;
}

absl::StatusOr<RowBuffer> RegroupForCompute(const DispatchPlan& plan, int32_t rank,
                                            RowBuffer received) {
  if (absl::Status s = CheckRank(plan, rank); !s.ok()) return s;
  const RankDispatch& r = plan.recv[rank];
  if (static_cast<int64_t>(received.size()) != r.recv_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "received: rank ", rank, " has ", received.size(), " rows, plan expects ", r.recv_count));
  }
  RowBuffer compute(received.size());
  for (size_t i = 0; i < r.recv_index.size(); ++i) {
    compute[i] = std::move(received[r.recv_index[i]]);
  }
  return compute;
}

absl::StatusOr<RowBuffer> ScatterForReturn(const DispatchPlan& plan, int32_t rank,
                                           RowBuffer computed) {
  if (absl::Status s = CheckRank(plan, rank); !s.ok()) return s;
  const RankDispatch& r = plan.recv[rank];
  if (static_cast<int64_t>(computed.size()) != r.recv_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "computed: rank ", rank, " has ", computed.size(), " rows, plan expects ", r.recv_count));
  }
  RowBuffer back(computed.size());
  for (size_t i = 0; i < r.recv_index.size(); ++i) {
    back[r.recv_index[i]] = std::move(computed[i]);
  }
  return back;
}

absl::StatusOr<std::vector<RowBuffer>> CombineOutputs(const DispatchPlan& plan,
                                                      const std::vector<RowBuffer>& returned) {
  if (absl::Status s = CheckRankCount("returned", returned.size(), plan.num_ranks); !s.ok()) {
    return s;
  }
  for (int32_t s = 0; s < plan.num_ranks; ++s) {
    if (returned[s].size() != plan.send[s].rows.size()) {
      return absl::InvalidArgumentError(absl::StrCat("returned[", s, "]: has ", returned[s].size(),
                                                     " rows, rank ", s, " sent ",
                                                     plan.send[s].rows.size()));
    }
  }
  std::vector<RowBuffer> out(plan.num_ranks);
  for (int32_t s = 0; s < plan.num_ranks; ++s) out[s].resize(plan.tokens_of_rank[s].size());
  for (int64_t t = 0; t < plan.num_tokens; ++t) {
    std::vector<float>& acc = out[plan.token_rank[t]][plan.token_local_index[t]];
    for (int32_t j = 0; j < plan.top_k; ++j) {
      const CombineEntry& c = plan.combine[static_cast<size_t>(t) * plan.top_k + j];
      const std::vector<float>& row = returned[c.rank][c.row];
      if (j == 0) {
        acc.assign(row.size(), 0.0f);
      } else if (row.size() != acc.size()) {
        return absl::InvalidArgumentError(absl::StrCat("returned[", c.rank, "][", c.row,
                                                       "]: width ", row.size(), ", token ", t,
                                                       " slot 0 had width ", acc.size()));
      }
      for (size_t i = 0; i < row.size(); ++i) acc[i] += c.weight * row[i];
    }
  }
  return out;
}

}  // namespace moe::engine::parallel
