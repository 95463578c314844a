#include "kernels/cuda/linear.h"

namespace moe::kernels::cuda {
namespace {

cublasStatus_t Gemm(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                    int64_t ldx, const __nv_bfloat16* w, int64_t N, void* y, cudaDataType y_type,
                    int64_t ldy, float beta) {
  if (M <= 0 || N <= 0) return CUBLAS_STATUS_SUCCESS;
  const float alpha = 1.f;
  // Column-major view: y^T [N, M] = W^T-as-stored [K, N]^T · x^T [K, M].
  return cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(N), static_cast<int>(M),
                      static_cast<int>(K), &alpha, w, CUDA_R_16BF, static_cast<int>(K), x,
                      CUDA_R_16BF, static_cast<int>(ldx), &beta, y, y_type, static_cast<int>(ldy),
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

}  // namespace

cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, float* y, int64_t ldy,
                          float beta) {
  return Gemm(handle, x, M, K, ldx, w, N, y, CUDA_R_32F, ldy, beta);
}

cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, __nv_bfloat16* y,
                          int64_t ldy) {
  return Gemm(handle, x, M, K, ldx, w, N, y, CUDA_R_16BF, ldy, 0.f);
}

const char* CublasStatusName(cublasStatus_t s) { return cublasGetStatusName(s); }

}  // namespace moe::kernels::cuda
