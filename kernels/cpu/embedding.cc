#include "kernels/cpu/embedding.h"

#include "kernels/cpu/linear.h"

namespace moe::kernels::cpu {

void EmbeddingLookup(const int32_t* ids, int64_t num_tokens, const void* table, DType dtype,
                     int64_t hidden, float* out, ThreadPool* pool) {
  const size_t row_bytes = static_cast<size_t>(hidden) * DTypeSize(dtype);
  ParallelFor(pool, num_tokens, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const char* row = static_cast<const char*>(table) + static_cast<size_t>(ids[t]) * row_bytes;
      ConvertToF32(row, dtype, hidden, out + t * hidden);
    }
  });
}

}  // namespace moe::kernels::cpu
