#include "kernels/cuda/moe_permute.h"

#include <climits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/permute_tiny.cuh"

namespace moe::kernels::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarpsPerBlock = kThreads / 32;
// Slots per block of the multi-block path; also the single-block path's limit.
constexpr int kChunk = 1024;
constexpr int kSmallMaxSlots = 2048;

// Exclusive prefix sum over the block (kThreads threads); *total gets the sum. Starts and
// ends with a barrier, so back-to-back calls may share `scratch` (32 ints).
__device__ int BlockExclusiveScan(int v, int* scratch, int* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int t = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += t;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    int w = scratch[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int t = __shfl_up_sync(0xffffffffu, w, o);
      if (lane >= o) w += t;
    }
    scratch[lane] = w;  // inclusive over warps
  }
  __syncthreads();
  *total = scratch[kWarpsPerBlock - 1];
  const int prefix = (warp > 0 ? scratch[warp - 1] : 0) + inc - v;
  __syncthreads();
  return prefix;
}

// Counts per expert -> counts, offsets, active (thread e of the block owns expert e);
// s_base[e] = offsets[e]. num_experts <= kThreads.
__device__ void ScanExperts(const int* s_count, int num_experts, int32_t* counts,
                            int32_t* offsets, int32_t* active, int* s_base, int* scratch) {
  const int e = threadIdx.x;
  const int c = e < num_experts ? s_count[e] : 0;
  int total = 0, num_active = 0;
  const int off = BlockExclusiveScan(c, scratch, &total);
  const int apos = BlockExclusiveScan(c > 0 ? 1 : 0, scratch, &num_active);
  if (e < num_experts) {
    counts[e] = c;
    offsets[e] = off;
    s_base[e] = off;
    if (active != nullptr && c > 0) active[1 + apos] = e;
  }
  if (e == 0) {
    offsets[num_experts] = total;
    if (active != nullptr) active[0] = num_active;
  }
}

// Stable scatter of n slots (global slots slot0 .. slot0 + n - 1, expert ids in s_idx):
// warp w walks experts w, w + 32, ...; for each, the slots in ascending order 32 at a
// time, ranking matches with a ballot. s_cnt[e]: how many of the n slots pick e (the walk
// stops once all are placed); s_base[e]: the permuted row of e's first one.
__device__ void ScatterSlots(const int* s_idx, int n, int64_t slot0, int k, int num_experts,
                             const int* s_cnt, const int* s_base, int32_t* slot_row,
                             int32_t* row_token) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned lt = (1u << lane) - 1u;
  for (int e = warp; e < num_experts; e += kWarpsPerBlock) {
    const int want = s_cnt[e];
    const int base = s_base[e];
    int done = 0;
    for (int j0 = 0; j0 < n && done < want; j0 += 32) {  // warp-uniform
      const int j = j0 + lane;
      const bool hit = j < n && s_idx[j] == e;
      const unsigned mask = __ballot_sync(0xffffffffu, hit);
      if (hit) {
        const int row = base + done + __popc(mask & lt);
        const int64_t slot = slot0 + j;
        slot_row[slot] = row;
        row_token[row] = static_cast<int32_t>(slot / k);
      }
      done += __popc(mask);
    }
  }
}

// Single block, num_slots <= kSmallMaxSlots: counts (shared atomics: order-free sums),
// block scans, stable ballot scatter.
__global__ void __launch_bounds__(kThreads)
    PermuteSmallKernel(const int32_t* topk_idx, int num_slots, int k, int num_experts,
                       int32_t* counts, int32_t* offsets, int32_t* row_token,
                       int32_t* slot_row, int32_t* active) {
  __shared__ int s_idx[kSmallMaxSlots];
  __shared__ int s_count[kThreads];
  __shared__ int s_base[kThreads];
  __shared__ int scratch[32];
  if (threadIdx.x < num_experts) s_count[threadIdx.x] = 0;
  for (int s = threadIdx.x; s < num_slots; s += kThreads) s_idx[s] = topk_idx[s];
  __syncthreads();
  for (int s = threadIdx.x; s < num_slots; s += kThreads) atomicAdd(&s_count[s_idx[s]], 1);
  __syncthreads();
  ScanExperts(s_count, num_experts, counts, offsets, active, s_base, scratch);
  __syncthreads();
  ScatterSlots(s_idx, num_slots, 0, k, num_experts, s_count, s_base, slot_row, row_token);
}

__global__ void __launch_bounds__(32)
    PermuteTinyKernel(const int32_t* topk_idx, int num_slots, int k, int num_experts,
                      int32_t* counts, int32_t* offsets, int32_t* row_token,
                      int32_t* slot_row, int32_t* active) {
  permute_detail::PermuteTinyWarp(topk_idx, num_slots, k, num_experts, counts, offsets,
                                  row_token, slot_row, active);
}

// Multi-block path, chunks of kChunk slots; F = num_slots / kChunk full chunks, then a
// tail of num_slots % kChunk. Scratch without a workspace: full chunk c keeps its
// per-expert counts (later: its first rows) in slot_row[c * kChunk + e] (its own slots,
// num_experts <= kChunk), the tail's counts sit in `counts` until pass B.
// Pass A, one block per chunk: per-chunk counts.
__global__ void __launch_bounds__(kThreads)
    PermuteCountKernel(const int32_t* topk_idx, int64_t num_slots, int num_experts,
                       int32_t* counts, int32_t* slot_row) {
  __shared__ int s_count[kThreads];
  const int64_t s0 = static_cast<int64_t>(blockIdx.x) * kChunk;
  const int64_t rem = num_slots - s0;
  const int n = rem < kChunk ? static_cast<int>(rem) : kChunk;
  if (threadIdx.x < num_experts) s_count[threadIdx.x] = 0;
  __syncthreads();
  if (static_cast<int>(threadIdx.x) < n) atomicAdd(&s_count[topk_idx[s0 + threadIdx.x]], 1);
  __syncthreads();
  if (threadIdx.x < num_experts) {
    if (n == kChunk) {
      slot_row[s0 + threadIdx.x] = s_count[threadIdx.x];
    } else {
      counts[threadIdx.x] = s_count[threadIdx.x];
    }
  }
}

// Pass B, one block: per expert, running sums over the full chunks (replacing each
// chunk's count by its first row), totals, scans, and the tail chunk's scatter.
__global__ void __launch_bounds__(kThreads)
    PermuteScanKernel(const int32_t* topk_idx, int64_t num_slots, int k, int num_experts,
                      int32_t* counts, int32_t* offsets, int32_t* row_token, int32_t* slot_row,
                      int32_t* active) {
  __shared__ int s_idx[kChunk];
  __shared__ int s_total[kThreads];
  __shared__ int s_base[kThreads];
  __shared__ int s_tail[kThreads];
  __shared__ int scratch[32];
  const int64_t full = num_slots / kChunk;
  const int tail = static_cast<int>(num_slots - full * kChunk);
  const int e = threadIdx.x;
  int run = 0;
  if (e < num_experts) {
    for (int64_t c = 0; c < full; ++c) {
      const int v = slot_row[c * kChunk + e];
      slot_row[c * kChunk + e] = run;
      run += v;
    }
    s_tail[e] = tail > 0 ? counts[e] : 0;
    s_total[e] = run + s_tail[e];
  }
  if (e < tail) s_idx[e] = topk_idx[full * kChunk + e];
  __syncthreads();
  ScanExperts(s_total, num_experts, counts, offsets, active, s_base, scratch);
  if (e < num_experts) {
    const int off = s_base[e];
    for (int64_t c = 0; c < full; ++c) slot_row[c * kChunk + e] += off;
    s_base[e] = off + run;  // the tail's first row of expert e
  }
  __syncthreads();
  if (tail > 0) {
    ScatterSlots(s_idx, tail, full * kChunk, k, num_experts, s_tail, s_base, slot_row,
                 row_token);
  }
}

// Pass C, one block per full chunk: read the chunk's first rows, then scatter its slots.
__global__ void __launch_bounds__(kThreads)
    PermuteScatterKernel(const int32_t* topk_idx, int k, int num_experts, int32_t* row_token,
                         int32_t* slot_row) {
  __shared__ int s_idx[kChunk];
  __shared__ int s_count[kThreads];
  __shared__ int s_base[kThreads];
  const int64_t s0 = static_cast<int64_t>(blockIdx.x) * kChunk;
  if (threadIdx.x < num_experts) {
    s_count[threadIdx.x] = 0;
    s_base[threadIdx.x] = slot_row[s0 + threadIdx.x];
  }
  s_idx[threadIdx.x] = topk_idx[s0 + threadIdx.x];
  __syncthreads();
  atomicAdd(&s_count[s_idx[threadIdx.x]], 1);
  __syncthreads();  // every first row read before any slot_row of the chunk is written
  ScatterSlots(s_idx, kChunk, s0, k, num_experts, s_count, s_base, slot_row, row_token);
}

__global__ void CombineKernel(const float* expert_out, const int32_t* slot_row,
                              const float* topk_weight, int k, int64_t hidden, float* out) {
  const int64_t t = blockIdx.y;
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= hidden) return;
  float acc = 0.f;
  for (int i = 0; i < k; ++i) {
    const int64_t r = slot_row[t * k + i];
    // Explicit FMA: LaunchMoeCombineAddRmsNorm (norm.h) repeats this sum bit for bit.
    acc = __fmaf_rn(topk_weight[t * k + i], expert_out[r * hidden + c], acc);
  }
  out[t * hidden + c] = acc;
}

// CombineKernel over 2-byte expert rows, V consecutive columns per thread (V = 1, or 4
// with hidden % 4 == 0 and 8-byte aligned rows / 16-byte aligned out): acc[j] +=
// w_i * float(row[c + j]) for i = 0..k-1, as CombineKernel does per column.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};
template <typename T, int V>
__global__ void CombineTKernel(const T* expert_out, const int32_t* slot_row,
                               const float* topk_weight, int k, int64_t hidden, float* out) {
  const int64_t t = blockIdx.y;
  const int64_t c = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) * V;
  if (c >= hidden) return;
  float acc[V];
#pragma unroll
  for (int j = 0; j < V; ++j) acc[j] = 0.f;
  for (int i = 0; i < k; ++i) {
    const int64_t r = slot_row[t * k + i];
    const float w = topk_weight[t * k + i];
    const Pack<T, V> p = *reinterpret_cast<const Pack<T, V>*>(expert_out + r * hidden + c);
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] = __fmaf_rn(w, detail::ToF32(p.v[j]), acc[j]);
  }
  if constexpr (V == 4) {
    *reinterpret_cast<float4*>(out + t * hidden + c) = make_float4(acc[0], acc[1], acc[2], acc[3]);
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) out[t * hidden + c + j] = acc[j];
  }
}

template <typename T>
cudaError_t LaunchCombineT(const T* expert_out, const int32_t* slot_row,
                           const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                           float* out, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  constexpr int kThreadsCombine = 256;
  const bool vec = hidden % 4 == 0 &&
                   reinterpret_cast<uintptr_t>(expert_out) % (4 * sizeof(T)) == 0 &&
                   reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (vec) {
    dim3 grid(detail::CeilDiv(hidden / 4, kThreadsCombine), static_cast<unsigned>(num_tokens));
    CombineTKernel<T, 4><<<grid, kThreadsCombine, 0, stream>>>(expert_out, slot_row, topk_weight,
                                                               k, hidden, out);
  } else {
    dim3 grid(detail::CeilDiv(hidden, kThreadsCombine), static_cast<unsigned>(num_tokens));
    CombineTKernel<T, 1><<<grid, kThreadsCombine, 0, stream>>>(expert_out, slot_row, topk_weight,
                                                               k, hidden, out);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchMoePermute(const int32_t* topk_idx, int64_t num_slots, int k, int num_experts,
                             int32_t* counts, int32_t* offsets, int32_t* row_token,
                             int32_t* slot_row, cudaStream_t stream, int32_t* active) {
  if (num_experts > kThreads || num_experts < 1 || k < 1 || num_slots < 0) {
    return cudaErrorInvalidValue;
  }
  if (num_slots <= 32) {
    PermuteTinyKernel<<<1, 32, 0, stream>>>(topk_idx, static_cast<int>(num_slots), k, num_experts,
                                            counts, offsets, row_token, slot_row, active);
    return cudaGetLastError();
  }
  if (num_slots <= kSmallMaxSlots) {
    PermuteSmallKernel<<<1, kThreads, 0, stream>>>(topk_idx, static_cast<int>(num_slots), k,
                                                   num_experts, counts, offsets, row_token,
                                                   slot_row, active);
    return cudaGetLastError();
  }
  const int64_t full = num_slots / kChunk;
  PermuteCountKernel<<<detail::CeilDiv(num_slots, kChunk), kThreads, 0, stream>>>(
      topk_idx, num_slots, num_experts, counts, slot_row);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  PermuteScanKernel<<<1, kThreads, 0, stream>>>(topk_idx, num_slots, k, num_experts, counts,
                                                offsets, row_token, slot_row, active);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  PermuteScatterKernel<<<static_cast<unsigned>(full), kThreads, 0, stream>>>(
      topk_idx, k, num_experts, row_token, slot_row);
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

cudaError_t LaunchMoeCombine(const __nv_bfloat16* expert_out, const int32_t* slot_row,
                             const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                             float* out, cudaStream_t stream) {
  return LaunchCombineT(expert_out, slot_row, topk_weight, num_tokens, k, hidden, out, stream);
}

cudaError_t LaunchMoeCombine(const __half* expert_out, const int32_t* slot_row,
                             const float* topk_weight, int64_t num_tokens, int k, int64_t hidden,
                             float* out, cudaStream_t stream) {
  return LaunchCombineT(expert_out, slot_row, topk_weight, num_tokens, k, hidden, out, stream);
}

}  // namespace moe::kernels::cuda
