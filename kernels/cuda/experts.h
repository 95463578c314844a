// Expert FFNs over permuted rows (see moe_permute.h) through cuBLAS: for each active
// expert e, its rows [offsets[e], offsets[e] + counts[e]) of x go through
//   gate_up = x · Wgu_e^T    (Wgu_e = [gate; up] stacked, [2 * inter, hidden])
//   act     = silu(gate) * up           (one fused elementwise pass over all rows, T)
//   out     = act · Wdown_e^T  (Wdown_e [hidden, inter]), fp32 (RunExperts) or T
//             (RunExpertsOutT: rounded to the model dtype, as Hugging Face's experts are)
// T operands, fp32 accumulation.
//
// Two ways to run the GEMMs:
//  - grouped (default): one cublasGemmGroupedBatchedEx call per projection for all active
//    experts (cuBLAS >= 12.5), gate_up written in T (half the bytes of fp32 for bf16 /
//    fp16) and read by a T-input SiluMul. The per-expert pointer arrays are written to a
//    small device array owned by this module (one per cuBLAS handle, grown on demand) by
//    one kernel launch whose arguments carry them, so no host buffer outlives the call.
//  - loop: one cublasGemmEx per active expert and projection, gate_up in fp32 (the path
//    before grouped GEMMs existed).
// A projection whose grouped call cuBLAS refuses (an unsupported type combination or GPU)
// runs as the loop instead; the refusal is remembered for the process (per element type
// and projection: gate_up, down to fp32, down to T), so it is paid once. cuBLAS refuses
// the grouped down with fp32 output from 2-byte operands (CUBLAS_STATUS_NOT_SUPPORTED,
// measured on H100 with cuBLAS 13), so only RunExpertsOutT runs down as one grouped call. A call with a pointer not 16-byte aligned (what
// cuBLAS asks of 2-byte grouped operands) also runs as the loop, not remembered.
// MOE_EXPERTS_GEMM=loop in the environment (read once) makes kAuto the loop.
//
// Thread safety: enqueues on `stream` (the handle is bound to it here); one handle per
// thread. Calls sharing a handle must be ordered on the device (one stream per handle, as
// the runner does): they reuse the handle's device pointer array. The support record
// below is safe to read from any thread.
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

enum class ExpertsGemm {
  kAuto,     // kGrouped, or kLoop when MOE_EXPERTS_GEMM=loop
  kLoop,     // one GEMM per expert and projection, fp32 gate_up
  kGrouped,  // one grouped GEMM per projection where cuBLAS accepts it (else the loop)
};

// counts / offsets: HOST copies of LaunchMoePermute's outputs. x: device [rows, hidden] T;
// gate_up_buf: device scratch of at least rows * 2 * inter * sizeof(float) bytes (the loop
// keeps fp32 there, the grouped path T); act_buf: device [rows, inter] T; out: device
// [rows, hidden] fp32, rows of experts with count 0 untouched. Returns the first failing
// call's error as a message (nullptr on success).
template <typename T>
const char* RunExperts(cublasHandle_t handle, cudaStream_t stream, const T* x,
                       const int32_t* counts, const int32_t* offsets, int num_experts,
                       const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                       void* gate_up_buf, T* act_buf, float* out,
                       ExpertsGemm path = ExpertsGemm::kAuto);

// The same with down written in T: out is device [rows, hidden] T (as for the other
// operands, a row start not 16-byte aligned makes the call run as the loop). Grouped: one
// grouped call per projection; loop (or refused): per-expert GEMMs writing T. Feed `out`
// to the T-input LaunchMoeCombine (moe_permute.h). For T = float this is RunExperts.
template <typename T>
const char* RunExpertsOutT(cublasHandle_t handle, cudaStream_t stream, const T* x,
                           const int32_t* counts, const int32_t* offsets, int num_experts,
                           const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                           void* gate_up_buf, T* act_buf, T* out,
                           ExpertsGemm path = ExpertsGemm::kAuto);

// What the grouped path has learned so far in this process, per projection, for element
// type T: not tried yet, accepted by cuBLAS, or refused (with cuBLAS's status).
enum class GroupedGemmState { kUntried, kAccepted, kRefused };
struct ExpertsGroupedSupport {
  GroupedGemmState gate_up = GroupedGemmState::kUntried;
  GroupedGemmState down = GroupedGemmState::kUntried;    // fp32 output (RunExperts)
  GroupedGemmState down_t = GroupedGemmState::kUntried;  // T output (RunExpertsOutT)
  cublasStatus_t gate_up_status = CUBLAS_STATUS_SUCCESS;  // the refusal, when kRefused
  cublasStatus_t down_status = CUBLAS_STATUS_SUCCESS;
  cublasStatus_t down_t_status = CUBLAS_STATUS_SUCCESS;
};
template <typename T>
ExpertsGroupedSupport ExpertsGroupedGemmSupport();

// The path kAuto resolves to in this process (kLoop or kGrouped).
ExpertsGemm ExpertsDefaultGemm();

// Whether a caller choosing between RunExperts and RunExpertsOutT for kAuto should take
// RunExpertsOutT (and the T-input combine): true when kAuto is kGrouped. Fixed for the
// process (the environment is read once).
inline bool ExpertsDefaultOutT() { return ExpertsDefaultGemm() == ExpertsGemm::kGrouped; }

}  // namespace moe::kernels::cuda
