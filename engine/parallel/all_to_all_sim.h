// CPU stand-ins for the data movement of an expert-parallel MoE layer: an all-to-all that
// moves rows between simulated ranks exactly as NCCL's grouped send/recv all-to-all with
// the same counts would, and the reference gather / regroup / scatter / combine steps that
// DispatchPlan describes (dispatch_plan.h, steps 1-5). They define what the GPU kernels
// and the NCCL runtime must reproduce, and let tests check a DispatchPlan end to end.
//
// Buffers are vectors of float rows (one RowBuffer per rank). Rows are moved or copied
// as whole vectors; only CombineOutputs requires equal widths.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/parallel/dispatch_plan.h"

namespace moe::engine::parallel {

using RowBuffer = std::vector<std::vector<float>>;

// send[s] holds sum_d send_counts[s][d] rows, the segment for d after those for 0..d-1.
// Returns recv[d]: the segments sent to d, concatenated in source rank order. Errors
// (InvalidArgument) name send_counts (shape, negative count) or send[s] (row count).
absl::StatusOr<std::vector<RowBuffer>> SimulateAllToAll(
    const std::vector<RowBuffer>& send, const std::vector<std::vector<int64_t>>& send_counts);

// Step 1: local_hidden[s] holds rank s's tokens (plan.tokens_of_rank[s] order); returns
// each rank's send buffer in plan.send[s].rows order.
absl::StatusOr<std::vector<RowBuffer>> GatherSendBuffers(
    const DispatchPlan& plan, const std::vector<RowBuffer>& local_hidden);

// Step 3: receive buffer of `rank` (source-major) -> compute order (by local expert).
absl::StatusOr<RowBuffer> RegroupForCompute(const DispatchPlan& plan, int32_t rank,
                                            RowBuffer received);

// Step 4: expert outputs of `rank` in compute order -> receive order, ready to send back
// with plan.recv_counts as the send counts.
absl::StatusOr<RowBuffer> ScatterForReturn(const DispatchPlan& plan, int32_t rank,
                                           RowBuffer computed);

// Step 5: returned[s] is rank s's buffer after the return all-to-all (plan.send[s].rows
// order). Returns, per rank, the combined output of its tokens (tokens_of_rank order):
// out = sum over slots, in slot order, of weight * row, accumulated in float.
absl::StatusOr<std::vector<RowBuffer>> CombineOutputs(const DispatchPlan& plan,
                                                      const std::vector<RowBuffer>& returned);

}  // namespace moe::engine::parallel
