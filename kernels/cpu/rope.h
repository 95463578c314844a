// Rotary position embedding, rotate-half (GPT-NeoX) style, as Hugging Face transformers
// computes it in fp32:
//   inv_freq[i] = 1 / theta^(2i / rotary_dim)       (fp32, i = 0 .. rotary_dim/2 - 1)
//   linear scaling: inv_freq[i] /= factor            (transformers' "linear" rope type)
//   angle = float(position) * inv_freq[i]            (fp32 product)
//   x1' = x1 * cos - x2 * sin,  x2' = x2 * cos + x1 * sin
// where x1 / x2 are the first / second halves of each head's first rotary_dim elements;
// the remaining head_dim - rotary_dim elements pass through (partial rotary).
//
// Thread safety: pure functions; parallel over tokens on `pool` (null: serial).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/thread_pool.h"

namespace moe::kernels::cpu {

// rotary_dim = int(head_dim * partial_rotary_factor); must be even.
std::vector<float> RopeInvFreq(int rotary_dim, double theta, double linear_factor = 1.0);

// x: [num_tokens, row_stride] with heads of head_dim starting at column 0 of each row
// (num_heads * head_dim <= row_stride). positions[t] is token t's position.
void ApplyRope(float* x, int64_t num_tokens, int64_t row_stride, int num_heads, int head_dim,
               int rotary_dim, const int32_t* positions, const float* inv_freq,
               ThreadPool* pool);

}  // namespace moe::kernels::cpu
