// Token permutation for the expert FFNs on the GPU: group the (token, slot) pairs that
// the router picked by expert, and the weighted un-permute that combines the experts'
// outputs back into token order.
//
// Layout: slot s = t * k + i is token t's i-th pick. The permuted rows are ordered by
// expert, and within an expert by ascending slot (so by ascending token), as the CPU
// backend orders them.
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// topk_idx: device [num_slots] (num_slots = tokens * k), expert ids in [0, num_experts).
// Writes, all device:
//   counts[num_experts]       rows per expert
//   offsets[num_experts + 1]  exclusive prefix sum of counts (offsets[E] = num_slots)
//   row_token[num_slots]      permuted row -> source token (slot / k)
//   slot_row[num_slots]       slot -> permuted row
//   active[num_experts + 1]   optional (may be null): active[0] = number of experts with
//                             rows, active[1..] their ids in ascending order (the device
//                             work list of LaunchSmallBatchExperts)
// num_experts <= 1024; deterministic (no order-dependent atomics: shared atomics only
// sum counts, ranks come from ordered ballots). num_slots <= 2048: one block (counts,
// block scans over the experts, stable ballot scatter). Larger: three launches over
// chunks of 1024 slots (per-chunk counts, one-block scan, per-chunk scatter) that use
// slot_row and counts as their scratch, so no workspace is needed.
// A graph captured with one num_slots must be replayed with the same num_slots.
cudaError_t LaunchMoePermute(const int32_t* topk_idx, int64_t num_slots, int k, int num_experts,
                             int32_t* counts, int32_t* offsets, int32_t* row_token,
                             int32_t* slot_row, cudaStream_t stream, int32_t* active = nullptr);

// Weighted un-permute and combine: out[t, :] = sum_i topk_weight[t*k+i] *
// expert_out[slot_row[t*k+i], :] (slots summed in order i = 0..k-1), overwriting out.
cudaError_t LaunchMoeCombine(const float* expert_out, const int32_t* slot_row,
                             const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                             float* out, cudaStream_t stream);
// The same over expert outputs in the model dtype (RunExpertsOutT, experts.h): each row
// widened to fp32, the sum in fp32 in the same order, out fp32. Vectorised where hidden
// allows (4 elements per thread; expert_out and out aligned for it), else one per thread.
cudaError_t LaunchMoeCombine(const __nv_bfloat16* expert_out, const int32_t* slot_row,
                             const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                             float* out, cudaStream_t stream);
cudaError_t LaunchMoeCombine(const __half* expert_out, const int32_t* slot_row,
                             const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                             float* out, cudaStream_t stream);

}  // namespace moe::kernels::cuda
