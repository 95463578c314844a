// Small elementwise kernels of the decoder layer, in fp32.
//
// Thread safety: pure functions; parallel on `pool` (null: serial).
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace moe::kernels::cpu {

// x[i] = min(max(x[i], -c), c)  (OLMoE's clip_qkv).
void Clamp(float* x, int64_t n, float c, ThreadPool* pool);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). `out` may alias gate or up.
void SiluMul(const float* gate, const float* up, int64_t n, float* out, ThreadPool* pool);

// Qwen2-MoE's shared expert: out[r, :] += sigmoid(gate_logit[r]) * shared[r, :] for
// rows r of length n.
void SigmoidGatedAdd(float* out, const float* gate_logit, const float* shared, int64_t rows,
                     int64_t n, ThreadPool* pool);

// out[r, :] += scale[r] * x[r, :]; used to combine expert outputs.
void ScaledAdd(float* out, const float* x, float scale, int64_t n);

float Sigmoid(float x);

}  // namespace moe::kernels::cpu
