#include "kernels/cuda/linear.h"

namespace moe::kernels::cuda {
namespace {

cudaDataType TypeOf(const __nv_bfloat16*) { return CUDA_R_16BF; }
cudaDataType TypeOf(const __half*) { return CUDA_R_16F; }
cudaDataType TypeOf(const float*) { return CUDA_R_32F; }

cublasStatus_t Gemm(cublasHandle_t handle, const void* x, cudaDataType xw_type, int64_t M,
                    int64_t K, int64_t ldx, const void* w, int64_t N, void* y, cudaDataType y_type,
                    int64_t ldy, float beta) {
  if (M <= 0 || N <= 0) return CUBLAS_STATUS_SUCCESS;
  const float alpha = 1.f;
  // Column-major view: y^T [N, M] = W^T-as-stored [K, N]^T · x^T [K, M].
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                      static_cast<int>(K), &alpha, w, xw_type, static_cast<int>(K), x,
                      xw_type, static_cast<int>(ldx), &beta, y, y_type, static_cast<int>(ldy),
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

}  // namespace

cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, float* y, int64_t ldy,
                          float beta) {
  return Gemm(handle, x, CUDA_R_16BF, M, K, ldx, w, N, y, CUDA_R_32F, ldy, beta);
}

cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, __nv_bfloat16* y,
                          int64_t ldy) {
  return Gemm(handle, x, CUDA_R_16BF, M, K, ldx, w, N, y, CUDA_R_16BF, ldy, 0.f);
}

#define MOE_LINEAR_OVERLOADS(T)                                                             \
  cublasStatus_t Linear(cublasHandle_t handle, const T* x, int64_t M, int64_t K, int64_t ldx, \
                        const T* w, int64_t N, float* y, int64_t ldy, float beta) {           \
    return Gemm(handle, x, TypeOf(x), M, K, ldx, w, N, y, CUDA_R_32F, ldy, beta);             \
  }
#define MOE_LINEAR_OVERLOADS_HALF(T)                                                          \
  MOE_LINEAR_OVERLOADS(T)                                                                     \
  cublasStatus_t Linear(cublasHandle_t handle, const T* x, int64_t M, int64_t K, int64_t ldx, \
                        const T* w, int64_t N, T* y, int64_t ldy) {                           \
    return Gemm(handle, x, TypeOf(x), M, K, ldx, w, N, y, TypeOf(x), ldy, 0.f);               \
  }
MOE_LINEAR_OVERLOADS_HALF(__nv_bfloat16)
MOE_LINEAR_OVERLOADS_HALF(__half)
MOE_LINEAR_OVERLOADS(float)

const char* CublasStatusName(cublasStatus_t s) { return cublasGetStatusName(s); }

}  // namespace moe::kernels::cuda
