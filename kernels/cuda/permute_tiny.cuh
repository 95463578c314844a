// LaunchMoePermute's one-warp path (<= 32 slots) as a device routine, so a kernel fusing
// the permutation with its neighbours matches moe_permute.cu exactly. Call from one full
// warp.
#pragma once

#include <climits>
#include <cstdint>

namespace moe::kernels::cuda::permute_detail {

// One warp, num_slots <= 32 (decode at batch 1–4): lane j holds slot j's expert. No
// shared memory, no barriers: counts and first rows by ballots, the stable row of a slot
// by a match mask, the active list by ranking each expert's first slot.
__device__ __forceinline__ void PermuteTinyWarp(const int32_t* topk_idx, int num_slots, int k,
                                                int num_experts, int32_t* counts,
                                                int32_t* offsets, int32_t* row_token,
                                                int32_t* slot_row, int32_t* active) {
  const int lane = threadIdx.x & 31;
  const bool live = lane < num_slots;
  const int mine = live ? topk_idx[lane] : INT_MAX;
  const unsigned lt = (1u << lane) - 1u;
  // Per-expert counts and first rows: lane handles experts e0 + lane.
  for (int e0 = 0; e0 < num_experts; e0 += 32) {
    const int e = e0 + lane;
    int below = 0, same = 0;
    for (int j = 0; j < num_slots; ++j) {
      const int v = __shfl_sync(0xffffffffu, mine, j);
      below += v < e ? 1 : 0;
      same += v == e ? 1 : 0;
    }
    if (e < num_experts) {
      counts[e] = same;
      offsets[e] = below;
    }
  }
  if (lane == 0) offsets[num_experts] = num_slots;
  const unsigned peers = __match_any_sync(0xffffffffu, mine);
  if (live) {
    int below = 0;  // slots with a smaller expert id
    for (int j = 0; j < 32; ++j) below += __shfl_sync(0xffffffffu, mine, j) < mine ? 1 : 0;
    const int row = below + __popc(peers & lt);
    slot_row[lane] = row;
    row_token[row] = lane / k;
  } else {
    for (int j = 0; j < 32; ++j) (void)__shfl_sync(0xffffffffu, mine, j);
  }
  if (active != nullptr) {
    // The first slot of each expert ranks it among the distinct experts.
    const bool leader = live && (peers & lt) == 0;
    const unsigned leaders = __ballot_sync(0xffffffffu, leader);
    int rank = 0;
    for (int j = 0; j < 32; ++j) {
      const int v = __shfl_sync(0xffffffffu, mine, j);
      rank += ((leaders >> j) & 1u) && v < mine ? 1 : 0;
    }
    if (leader) active[1 + rank] = mine;
    if (lane == 0) active[0] = __popc(leaders);
  }
}

}  // namespace moe::kernels::cuda::permute_detail
