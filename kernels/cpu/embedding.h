// Embedding lookup: out[t, :] = table[ids[t], :] as fp32.
//
// Thread safety: a pure function. Ids must be in [0, rows of table): the caller checks.
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace moe::kernels::cpu {

void EmbeddingLookup(const int32_t* ids, int64_t num_tokens, const void* table, DType dtype,
                     int64_t hidden, float* out, ThreadPool* pool);

}  // namespace moe::kernels::cpu
