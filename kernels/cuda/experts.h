// Expert FFNs over permuted rows (see moe_permute.h) through cuBLAS: for each active
// expert e, its rows [offsets[e], offsets[e] + counts[e]) of x go through
//   gate_up = x · Wgu_e^T    (Wgu_e = [gate; up] stacked, [2 * inter, hidden], bf16)
//   act     = silu(gate) * up           (one fused elementwise pass over all rows, bf16)
//   out     = act · Wdown_e^T  (Wdown_e [hidden, inter], bf16), fp32
// bf16 operands, fp32 accumulation.
//
// Thread safety: enqueues on `stream` (the handle is bound to it here); one handle per
// thread.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// T is the storage type of weights and GEMM inputs: __nv_bfloat16, __half or float
// (explicitly instantiated for those three).
template <typename T>
struct ExpertWeights {
  const T* gate_up = nullptr;  // [2 * inter, hidden]
  const T* down = nullptr;     // [hidden, inter]
};
using ExpertWeightsBf16 = ExpertWeights<__nv_bfloat16>;

// counts / offsets: HOST copies of LaunchMoePermute's outputs. x: device [rows, hidden]
// bf16; gate_up_buf: device [rows, 2 * inter] fp32; act_buf: device [rows, inter] bf16;
// out: device [rows, hidden] fp32. Returns the first failing call's error as a message
// (nullptr on success).
template <typename T>
const char* RunExperts(cublasHandle_t handle, cudaStream_t stream, const T* x,
                       const int32_t* counts, const int32_t* offsets, int num_experts,
                       const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                       float* gate_up_buf, T* act_buf, float* out);

}  // namespace moe::kernels::cuda
