// Dense projections through cuBLAS: y[M, N] = x[M, K] · W[N, K]^T with bf16 x and W
// (row-major, as checkpoints store them), fp32 accumulation (CUBLAS_COMPUTE_32F) and an
// fp32 or bf16 y. Serves q/k/v/o, the router, the shared-expert gate and lm_head.
//
// Thread safety: enqueues on the handle's stream (set by the caller with
// cublasSetStream); one handle per thread.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <cstdint>

namespace moe::kernels::cuda {

// ldx / ldy are the row strides of x and y (K and N for contiguous). beta = 1 adds to y.
cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, float* y, int64_t ldy,
                          float beta = 0.f);
cublasStatus_t LinearBf16(cublasHandle_t handle, const __nv_bfloat16* x, int64_t M, int64_t K,
                          int64_t ldx, const __nv_bfloat16* w, int64_t N, __nv_bfloat16* y,
                          int64_t ldy);

const char* CublasStatusName(cublasStatus_t s);

}  // namespace moe::kernels::cuda
