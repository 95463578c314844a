#include "kernels/cuda/experts.h"

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/linear.h"

namespace moe::kernels::cuda {

const char* RunExperts(cublasHandle_t handle, cudaStream_t stream, const __nv_bfloat16* x,
                       const int32_t* counts, const int32_t* offsets, int num_experts,
                       const ExpertWeightsBf16* experts, int64_t hidden, int64_t inter,
                       float* gate_up_buf, __nv_bfloat16* act_buf, float* out) {
  if (cublasSetStream(handle, stream) != CUBLAS_STATUS_SUCCESS) return "cublasSetStream failed";
  int64_t total = 0;
  for (int e = 0; e < num_experts; ++e) {
    const int64_t n = counts[e];
    if (n == 0) continue;
    const int64_t r0 = offsets[e];
    total = r0 + n > total ? r0 + n : total;
    if (LinearBf16(handle, x + r0 * hidden, n, hidden, hidden, experts[e].gate_up, 2 * inter,
                   gate_up_buf + r0 * 2 * inter, 2 * inter) != CUBLAS_STATUS_SUCCESS) {
      return "expert gate_up GEMM failed";
    }
  }
  if (total == 0) return nullptr;
  if (LaunchSiluMul(gate_up_buf, total, inter, act_buf, stream) != cudaSuccess) {
    return "expert SiLU*mul launch failed";
  }
  for (int e = 0; e < num_experts; ++e) {
    const int64_t n = counts[e];
    if (n == 0) continue;
    const int64_t r0 = offsets[e];
    if (LinearBf16(handle, act_buf + r0 * inter, n, inter, inter, experts[e].down, hidden,
                   out + r0 * hidden, hidden) != CUBLAS_STATUS_SUCCESS) {
      return "expert down GEMM failed";
    }
  }
  return nullptr;
}

}  // namespace moe::kernels::cuda
