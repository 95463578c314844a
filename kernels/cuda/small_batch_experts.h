// Expert FFNs for decode-sized steps without a host round trip: the expert assignment
// (LaunchMoePermute's counts / offsets / active list) is read on the device, and each
// active expert's weights are streamed once per step with 16-byte coalesced loads
// (re-read from L2 only when an expert has more than 8 rows).
//
//   act[r, :]  = silu(x_r · gate_e^T) * (x_r · up_e^T)   stored as T (fp32 accumulation)
//   out[r, :]  = act[r, :] · down_e^T                     fp32
// for every permuted row r of expert e (rows [offsets[e], offsets[e] + counts[e])), where
// x_r = x[row_token[r], :] (no gather pass). The same function as RunExperts (experts.h)
// after LaunchGatherRows; feed `out` to LaunchMoeCombine.
//
// Two kernel variants (the same function; outputs agree to fp32 summation order):
// - mma (default for bf16 / fp16): tensor cores (mma.sync m16n8k16, the weights as the
//   A operand loaded straight from global memory into fragments, token rows as B, fp32
//   accumulation). A block of 8 warps owns 16 gate/up output rows (32 weight rows) or 32
//   down rows of one expert and splits K over its warps (partial sums added in shared
//   memory); every thread keeps 12-16 16-byte weight loads in flight. Token rows are
//   taken 8 or 16 at a time (weights re-read, mostly from L2, past that).
// - fma (fp32 always; bf16 / fp16 with MOE_SBE_KERNEL=fma): CUDA cores. A block of 8
//   warps owns 16 gate/up output rows or 32 down rows; the expert's input rows are staged
//   in shared memory up to 8 at a time (at most 48 KB) and every staged 16-byte input
//   vector is reused for all of the warp's weight rows.
// Either way: grid (output-row tiles, active-expert slots); a block whose slot is past the
// number of active experts exits at once.
//
// Thread safety: launchers only enqueue work on `stream`; safe under CUDA graph capture.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace moe::kernels::cuda {

// The runner uses this path for steps of at most kSmallBatchExpertsMaxTokens tokens (a
// host bound on the rows any one expert can get); past kSmallBatchExpertsAlwaysTokens only
// while the expected rows per expert (tokens * k / experts) stay within
// kSmallBatchExpertsMaxMeanRows: each pass of a block over its weight rows serves 16
// tokens, so many rows per expert (few experts, big batches) belong to the grouped GEMM.
constexpr int64_t kSmallBatchExpertsMaxTokens = 256;
constexpr int64_t kSmallBatchExpertsAlwaysTokens = 64;
constexpr int64_t kSmallBatchExpertsMaxMeanRows = 32;

// True when hidden and inter are multiples of 16 / elem_size (16-byte rows) and one input
// row fits the 48 KB staging buffer. Weight and activation base pointers must also be
// 16-byte aligned (cudaMalloc's are).
bool SmallBatchExpertsSupported(int64_t hidden, int64_t inter, size_t elem_size);

// x: device [tokens, hidden]; row_token / counts / offsets / active: LaunchMoePermute's
// device outputs (active[0] = number of experts with rows, active[1..] their ids);
// max_active: grid bound on active experts (min(num_experts, tokens * k));
// max_rows_per_expert: host bound on any expert's rows (the step's token count), picks
// the kernel variant. gate_up / down: DEVICE arrays of num_experts weight pointers
// ([2 * inter, hidden] and [hidden, inter]). act_buf: device [tokens * k, inter];
// out: device [tokens * k, hidden] fp32 (permuted order).
// Returns cudaErrorInvalidValue when the shapes are unsupported.
template <typename T>
cudaError_t LaunchSmallBatchExperts(const T* x, const int32_t* row_token, const int32_t* counts,
                                    const int32_t* offsets, const int32_t* active, int max_active,
                                    int64_t max_rows_per_expert, const T* const* gate_up,
                                    const T* const* down, int64_t hidden, int64_t inter,
                                    T* act_buf, float* out, cudaStream_t stream);

// Benchmark / comparison hook: the same as LaunchSmallBatchExperts with the kernel variant
// (kDefault: env MOE_SBE_KERNEL=fma|mma, read once per process, else mma for 16-bit T;
// fp32 always runs fma) and the stages (a mask of kSmallBatchExpertsGateUp / ...Down;
// running Down alone reads act_buf as left by an earlier GateUp) chosen by the caller.
enum class SmallBatchExpertsKernel { kDefault, kFma, kMma };
constexpr int kSmallBatchExpertsGateUp = 1;
constexpr int kSmallBatchExpertsDown = 2;

template <typename T>
cudaError_t LaunchSmallBatchExpertsVariant(
    const T* x, const int32_t* row_token, const int32_t* counts, const int32_t* offsets,
    const int32_t* active, int max_active, int64_t max_rows_per_expert, const T* const* gate_up,
    const T* const* down, int64_t hidden, int64_t inter, T* act_buf, float* out,
    SmallBatchExpertsKernel kernel, int stages, cudaStream_t stream);

}  // namespace moe::kernels::cuda
