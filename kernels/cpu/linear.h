// Linear layer on the CPU: y[M, N] = x[M, K] · W[N, K]^T (+ bias[N]), fp32 arithmetic on
// weights of type F32, F16 or BF16 read in place (converted to fp32 on the fly, one
// weight row at a time, and reused across all M rows).
//
// Thread safety: a pure function; parallel over N on `pool` (null: serial).
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace moe::kernels::cpu {

// `x` has row stride K, `y` row stride N. `bias` (may be null) has N elements of
// `bias_dtype`. `w_dtype` and `bias_dtype` must be float weight types (F32/F16/BF16).
void Linear(const float* x, int64_t M, int64_t K, const void* w, DType w_dtype, int64_t N,
            const void* bias, DType bias_dtype, float* y, ThreadPool* pool);

// Converts n elements of a float weight buffer to fp32.
void ConvertToF32(const void* src, DType dtype, int64_t n, float* dst);

// Dot product of two fp32 vectors with fp32 accumulation (several partial sums, so the
// loop vectorises).
float DotF32(const float* a, const float* b, int64_t n);

}  // namespace moe::kernels::cpu
