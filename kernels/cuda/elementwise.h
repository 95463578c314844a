// Small elementwise kernels of the decoder layer on the GPU, fp32 arithmetic.
//
// Thread safety: launchers only enqueue work on `stream`; buffers are caller-owned device
// memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// x[i] = min(max(x[i], -c), c)  (OLMoE's clip_qkv), in place.
cudaError_t LaunchClamp(float* x, int64_t n, float c, cudaStream_t stream);

// SwiGLU of a fused gate/up projection: row r of `gate_up` is [gate (width) | up (width)]
// (row stride 2 * width); out[r, i] = silu(gate[r, i]) * up[r, i], silu(g) = g / (1 +
// exp(-g)), written as bf16 (the down projection's input) or fp32.
cudaError_t LaunchSiluMul(const float* gate_up, int64_t rows, int64_t width, __nv_bfloat16* out,
                          cudaStream_t stream);
cudaError_t LaunchSiluMul(const float* gate_up, int64_t rows, int64_t width, __half* out,
                          cudaStream_t stream);
cudaError_t LaunchSiluMul(const float* gate_up, int64_t rows, int64_t width, float* out,
                          cudaStream_t stream);
// The same with gate_up stored in the activation type (a GEMM that wrote bf16 / fp16 with
// fp32 accumulation): half the bytes of an fp32 gate_up. Rows of 16-byte-aligned buffers
// with width % 8 == 0 take a vectorised kernel (8 columns per thread); any other shape a
// scalar one. Same arithmetic either way (fp32, then one rounding of the product).
cudaError_t LaunchSiluMul(const __nv_bfloat16* gate_up, int64_t rows, int64_t width,
                          __nv_bfloat16* out, cudaStream_t stream);
cudaError_t LaunchSiluMul(const __half* gate_up, int64_t rows, int64_t width, __half* out,
                          cudaStream_t stream);

// Qwen2-MoE's shared expert: out[r, :] += sigmoid(gate_logit[r]) * shared[r, :].
cudaError_t LaunchSigmoidGatedAdd(float* out, const float* gate_logit, const float* shared,
                                  int64_t rows, int64_t n, cudaStream_t stream);

// y[r, :] += bias[:] for a [rows, n] buffer of row stride `stride` (bias bf16, fp16 or fp32).
cudaError_t LaunchAddBias(float* y, int64_t rows, int64_t n, int64_t stride,
                          const __nv_bfloat16* bias, cudaStream_t stream);
cudaError_t LaunchAddBias(float* y, int64_t rows, int64_t n, int64_t stride, const __half* bias,
                          cudaStream_t stream);
cudaError_t LaunchAddBias(float* y, int64_t rows, int64_t n, int64_t stride, const float* bias,
                          cudaStream_t stream);

// out[i] = bf16(x[i]).
cudaError_t LaunchCastToBf16(const float* x, int64_t n, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace moe::kernels::cuda
