// Dense projections through cuBLAS: y[M, N] = x[M, K] · W[N, K]^T with bf16 x and W
// (row-major, as checkpoints store them), fp32 accumulation (CUBLAS_COMPUTE_32F) and an
// fp32 or bf16 y. Serves q/k/v/o, the router, the shared-expert gate and lm_head.
//
// Thread safety: enqueues on the handle's stream (set by the caller with
// cublasSetStream); one handle per thread.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace moe::kernels::cuda {

// ldx / ldy are the row strides of x and y (K and N for contiguous). beta = 1 adds to y.
cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, float* y, int64_t ldy,
                          float beta = 0.f);
cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, __nv_bfloat16* y,
                          int64_t ldy);

// The same for x and W both bf16, fp16 or fp32 (fp32: a true fp32 GEMM, CUBLAS_COMPUTE_32F
// without TF32), y fp32 or of the operands' type.
#define MOE_LINEAR_DECLS(T)                                                                   \
  cublasStatus_t Linear(cublasHandle_t handle, const T* x, int64_t M, int64_t K, int64_t ldx, \
                        const T* w, int64_t N, float* y, int64_t ldy, float beta = 0.f);
#define MOE_LINEAR_DECLS_HALF(T)                                                              \
  MOE_LINEAR_DECLS(T)                                                                         \
  cublasStatus_t Linear(cublasHandle_t handle, const T* x, int64_t M, int64_t K, int64_t ldx, \
                        const T* w, int64_t N, T* y, int64_t ldy);
MOE_LINEAR_DECLS_HALF(__nv_bfloat16)
MOE_LINEAR_DECLS_HALF(__half)
MOE_LINEAR_DECLS(float)
#undef MOE_LINEAR_DECLS_HALF
#undef MOE_LINEAR_DECLS

const char* CublasStatusName(cublasStatus_t s);

}  // namespace moe::kernels::cuda
