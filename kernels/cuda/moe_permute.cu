#include "kernels/cuda/moe_permute.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

constexpr int kThreads = 1024;

// Pass 1: counts with shared atomics. Pass 2: scan. Pass 3: each slot's rank within its
// expert = number of earlier slots with the same expert, counted in chunks of kThreads
// slots with a per-chunk shared histogram walk (stable, deterministic).
__global__ void PermuteKernel(const int32_t* topk_idx, int64_t num_slots, int k,
                              int num_experts, int32_t* counts, int32_t* offsets,
                              int32_t* row_token, int32_t* slot_row, int32_t* active) {
  __shared__ int32_t s_count[kThreads];
  __shared__ int32_t s_next[kThreads];  // next free row of each expert
  __shared__ int32_t s_chunk[kThreads];
  for (int e = threadIdx.x; e < num_experts; e += kThreads) s_count[e] = 0;
  __syncthreads();
  for (int64_t s = threadIdx.x; s < num_slots; s += kThreads) atomicAdd(&s_count[topk_idx[s]], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t acc = 0, num_active = 0;
    for (int e = 0; e < num_experts; ++e) {
      offsets[e] = acc;
      s_next[e] = acc;
      counts[e] = s_count[e];
      acc += s_count[e];
      if (active != nullptr && s_count[e] > 0) active[1 + num_active++] = e;
    }
    offsets[num_experts] = acc;
    if (active != nullptr) active[0] = num_active;
  }
  __syncthreads();
  for (int64_t base = 0; base < num_slots; base += kThreads) {
    const int64_t s = base + threadIdx.x;
    const int e = s < num_slots ? topk_idx[s] : -1;
    s_chunk[threadIdx.x] = e;
    __syncthreads();
    if (e >= 0) {
      int rank = 0;
      for (int j = 0; j < static_cast<int>(threadIdx.x); ++j) rank += (s_chunk[j] == e);
      const int32_t row = s_next[e] + rank;
      slot_row[s] = row;
      row_token[row] = static_cast<int32_t>(s / k);
    }
    __syncthreads();
    // Advance each expert's next row by its count in this chunk.
    for (int ee = threadIdx.x; ee < num_experts; ee += kThreads) {
      int c = 0;
      const int64_t n = num_slots - base < kThreads ? num_slots - base : kThreads;
      for (int j = 0; j < n; ++j) c += (s_chunk[j] == ee);
      s_next[ee] += c;
    }
    __syncthreads();
  }
}

__global__ void CombineKernel(const float* expert_out, const int32_t* slot_row,
                              const float* topk_weight, int k, int64_t hidden, float* out) {
  const int64_t t = blockIdx.y;
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= hidden) return;
  float acc = 0.f;
  for (int i = 0; i < k; ++i) {
    const int64_t r = slot_row[t * k + i];
    acc += topk_weight[t * k + i] * expert_out[r * hidden + c];
  }
  out[t * hidden + c] = acc;
}

}  // namespace

cudaError_t LaunchMoePermute(const int32_t* topk_idx, int64_t num_slots, int k, int num_experts,
                             int32_t* counts, int32_t* offsets, int32_t* row_token,
                             int32_t* slot_row, cudaStream_t stream, int32_t* active) {
  if (num_experts > kThreads || num_experts < 1 || k < 1) return cudaErrorInvalidValue;
  PermuteKernel<<<1, kThreads, 0, stream>>>(topk_idx, num_slots, k, num_experts, counts, offsets,
                                            row_token, slot_row, active);
  return cudaGetLastError();
}

cudaError_t LaunchMoeCombine(const float* expert_out, const int32_t* slot_row,
                             const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                             float* out, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  dim3 grid(detail::CeilDiv(hidden, 256), static_cast<unsigned>(num_tokens));
  CombineKernel<<<grid, 256, 0, stream>>>(expert_out, slot_row, topk_weight, k, hidden, out);
  return cudaGetLastError();
}

}  // namespace moe::kernels::cuda
