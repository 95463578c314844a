// Deterministic pseudo-random weights, counter-based: element i of a tensor is a pure
// function of (seed, tensor name, i), so values do not depend on the order tensors are
// written in, on sharding, or on how the work is split across threads.
//
// Thread safety: pure functions; FillTensorChunk may run concurrently on disjoint ranges.
#pragma once

#include <cstdint>
#include <string>

#include "kernels/dtype.h"
#include "tools/synthetic/tensor_plan.h"

namespace moe::tools {

// A per-tensor key from the model seed and the tensor's name.
uint64_t TensorKey(uint64_t seed, const std::string& name);

// An approximately standard normal value (sum of four uniforms, rescaled to unit
// variance; bounded to ±3.46) for counter `i` under `key`.
float NormalAt(uint64_t key, uint64_t i);

// Writes elements [begin, begin + count) of `t`, converted to `dtype`, to `out`
// (count * DTypeSize(dtype) bytes, little-endian). Uses up to `threads` threads.
void FillTensorChunk(const PlannedTensor& t, uint64_t key, DType dtype, int64_t begin,
                     int64_t count, char* out, int threads = 1);

}  // namespace moe::tools
