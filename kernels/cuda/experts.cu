#include "kernels/cuda/experts.h"

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/linear.h"

namespace moe::kernels::cuda {

template <typename T>
const char* RunExperts(cublasHandle_t handle, cudaStream_t stream, const T* x,
                       const int32_t* counts, const int32_t* offsets, int num_experts,
                       const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                       float* gate_up_buf, T* act_buf, float* out) {
  if (cublasSetStream(handle, stream) != CUBLAS_STATUS_SUCCESS) return "cublasSetStream failed";
  int64_t total = 0;
  for (int e = 0; e < num_experts; ++e) {
    const int64_t n = counts[e];
    if (n == 0) continue;
    const int64_t r0 = offsets[e];
    total = r0 + n > total ? r0 + n : total;
    if (Linear(handle, x + r0 * hidden, n, hidden, hidden, experts[e].gate_up, 2 * inter,
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
    if (Linear(handle, act_buf + r0 * inter, n, inter, inter, experts[e].down, hidden,
                   out + r0 * hidden, hidden) != CUBLAS_STATUS_SUCCESS) {
      return "expert down GEMM failed";
    }
  }
  return nullptr;
}

#define MOE_EXPERTS_INST(T)                                                                \
  template const char* RunExperts<T>(cublasHandle_t, cudaStream_t, const T*, const int32_t*, \
                                     const int32_t*, int, const ExpertWeights<T>*, int64_t,  \
                                     int64_t, float*, T*, float*);
MOE_EXPERTS_INST(__nv_bfloat16)
MOE_EXPERTS_INST(__half)
MOE_EXPERTS_INST(float)

}  // namespace moe::kernels::cuda
