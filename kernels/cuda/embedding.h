// Embedding gather on the GPU: out[t, :] = float(table[ids[t], :]) from a bf16 table.
// Also the row gather the expert path uses to permute tokens.
//
// Thread safety: launchers only enqueue work on `stream`. Ids must be in range: the
// caller checks them on the host.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// ids: device [num_tokens]; table: device [vocab, hidden] bf16; out: device fp32.
cudaError_t LaunchEmbedding(const int32_t* ids, int64_t num_tokens, const __nv_bfloat16* table,
                            int64_t hidden, float* out, cudaStream_t stream);

// dst[r, :] = src[idx[r], :] for r < rows, rows of `width` bf16 elements.
cudaError_t LaunchGatherRows(const __nv_bfloat16* src, const int32_t* idx, int64_t rows,
                             int64_t width, __nv_bfloat16* dst, cudaStream_t stream);

}  // namespace moe::kernels::cuda
