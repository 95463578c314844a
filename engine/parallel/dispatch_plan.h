// The index math of one MoE layer's expert-parallel exchange for one step: which
// (token, k-slot) rows each rank sends to each other rank, how a rank regroups what it
// receives by local expert for its grouped GEMM, and where each expert output comes back
// for the weighted combine. No data moves here; SimulateAllToAll (all_to_all_sim.h) and,
// later, NCCL move the rows.
//
// The step, for ranks s (sources: where tokens live) and d (destinations: expert owners):
//  1. Source s gathers one row per (token, slot) of its tokens into its send buffer, in
//     `send[s].rows` order: by destination rank, then local expert, then token ascending
//     (a token's slots in slot order).
//  2. All-to-all with send_counts[s][d] (NCCL semantics: d's receive buffer is source
//     rank-major, each source's segment in the order it was sent).
//  3. Destination d regroups its receive buffer into compute order: by local expert, then
//     source rank, then the source's order (so: by token when tokens are partitioned over
//     ranks in contiguous ranges, e.g. all on rank 0). compute row i = recv row
//     recv[d].recv_index[i]; expert_offsets delimit each local expert's rows. The
//     permutation depends only on chunk_counts[s][e] (rows from source s for local expert
//     e), so a distributed runtime can derive it from exchanged counts alone.
//  4. d runs its experts, scatters outputs back to receive order (the inverse of 3), and
//     the return all-to-all uses send counts recv_counts[d][s]: source s gets its rows
//     back in exactly its send order.
//  5. Combine: out[t] = sum over slots j, in slot order, of combine[t*k+j].weight *
//     (row combine[t*k+j].row of rank token_rank[t]'s returned buffer).
// A token listing the same expert in two slots sends two rows; the sum stays exact.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/parallel/expert_sharding.h"

namespace moe::engine::parallel {

// One routed copy of a token: token index in the step's batch and its top-k slot.
struct DispatchRow {
  int32_t token = 0;
  int32_t slot = 0;

  friend bool operator==(DispatchRow a, DispatchRow b) {
    return a.token == b.token && a.slot == b.slot;
  }
};

// What one source rank sends (step 1).
struct SourceSend {
  std::vector<DispatchRow> rows;     // send order
  std::vector<int32_t> local_token;  // [rows]: gather index into the rank's own tokens
};

// What one destination rank receives and computes (steps 2-4).
struct RankDispatch {
  int64_t recv_count = 0;                          // rows received from all sources
  std::vector<DispatchRow> rows;                   // compute order
  std::vector<int32_t> expert_ids;                 // [rows]: global expert id of each row
  std::vector<int64_t> recv_index;                 // [rows]: position in the receive buffer
  std::vector<int64_t> expert_counts;              // [local experts]
  std::vector<int64_t> expert_offsets;             // [local experts + 1]
  std::vector<std::vector<int64_t>> chunk_counts;  // [source][local expert]
};

// Where one (token, slot)'s expert output comes back.
struct CombineEntry {
  int32_t rank = 0;  // the token's own rank (its source)
  int64_t row = 0;   // row in that rank's send / returned buffer
  float weight = 0.0f;
};

struct DispatchPlan {
  int32_t num_ranks = 0;
  int32_t layer = 0;
  int64_t num_tokens = 0;
  int32_t top_k = 0;
  std::vector<int32_t> token_rank;                   // [T]
  std::vector<int32_t> token_local_index;            // [T]: position among its rank's tokens
  std::vector<std::vector<int32_t>> tokens_of_rank;  // [rank]: its tokens, ascending
  std::vector<SourceSend> send;                      // [source rank]
  std::vector<RankDispatch> recv;                    // [destination rank]
  // NCCL all-to-all counts/offsets in rows: rank s passes send_counts[s] and recv_counts[s].
  // recv_counts[d][s] == send_counts[s][d]; the return all-to-all swaps the two.
  std::vector<std::vector<int64_t>> send_counts;   // [source][destination]
  std::vector<std::vector<int64_t>> send_offsets;  // [source][destination] (prefix sums)
  std::vector<std::vector<int64_t>> recv_counts;   // [destination][source]
  std::vector<std::vector<int64_t>> recv_offsets;  // [destination][source]
  std::vector<CombineEntry> combine;               // [T * top_k]
};

// One layer's routing for T tokens: ids and weights are [T, top_k], row-major.
struct LayerRouting {
  int64_t num_tokens = 0;
  int32_t top_k = 0;
  absl::Span<const int32_t> expert_ids;
  absl::Span<const float> weights;
};

// Builds the plan. token_ranks [T] says which rank holds each token (size checked).
// InvalidArgument names the field at fault: layer, top_k, num_tokens, expert_ids, weights,
// token_ranks (with the offending [token, slot] or [token]).
absl::StatusOr<DispatchPlan> BuildDispatchPlan(const LayerRouting& routing,
                                               const ShardingPlan& plan, int32_t layer,
                                               absl::Span<const int32_t> token_ranks);

// Token partitions: every token on one rank; or contiguous ranges, rank r holding
// [r*T/N, (r+1)*T/N) (data-parallel batches; some ranks empty when T < N).
std::vector<int32_t> TokensOnOneRank(int64_t num_tokens, int32_t rank);
std::vector<int32_t> SplitTokensEvenly(int64_t num_tokens, int32_t num_ranks);

// Step 3's permutation from counts alone: chunk_counts[s][e] rows arrive from source s for
// local expert e, each source's segment ordered by local expert. Returns, per compute row
// (local expert, source, position), its index in the source-major receive buffer.
std::vector<int64_t> RegroupIndex(const std::vector<std::vector<int64_t>>& chunk_counts);

}  // namespace moe::engine::parallel
