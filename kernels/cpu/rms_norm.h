// RMSNorm as Hugging Face transformers computes it in fp32:
//   out = weight * (x * rsqrt(mean(x^2) + eps))
// over rows of length n. The same function serves the decoder norms (n = hidden), the
// per-head q/k norms (rows = tokens * heads, n = head_dim) and the whole-projection q/k
// norms (n = heads * head_dim).
//
// Thread safety: pure functions; parallel over rows on `pool` (null: serial).
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace moe::kernels::cpu {

// `out` may equal `x` (in place). `weight` has n elements of `w_dtype`.
void RmsNorm(const float* x, int64_t rows, int64_t n, const void* weight, DType w_dtype,
             float eps, float* out, ThreadPool* pool);

// Fused residual add + RMSNorm: residual += delta (if delta is not null), then
// out = RmsNorm(residual). `out` must not alias `residual` or `delta`.
void AddRmsNorm(float* residual, const float* delta, int64_t rows, int64_t n,
                const void* weight, DType w_dtype, float eps, float* out, ThreadPool* pool);

}  // namespace moe::kernels::cpu
