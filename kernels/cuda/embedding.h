// Embedding gather on the GPU: out[t, :] = float(table[ids[t], :]) from a bf16 table.
// Also the row gather the expert path uses to permute tokens.
//
// Thread safety: launchers only enqueue work on `stream`. Ids must be in range: the
// caller checks them on the host.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// ids: device [num_tokens]; table: device [vocab, hidden] (bf16, fp16 or fp32); out: fp32.
// dst[r, :] = src[idx[r], :] for r < rows, rows of `width` elements.
#define MOE_EMBED_DECLS(T)                                                                    \
  cudaError_t LaunchEmbedding(const int32_t* ids, int64_t num_tokens, const T* table,         \
                              int64_t hidden, float* out, cudaStream_t stream);               \
  cudaError_t LaunchGatherRows(const T* src, const int32_t* idx, int64_t rows, int64_t width, \
                               T* dst, cudaStream_t stream);
MOE_EMBED_DECLS(__nv_bfloat16)
MOE_EMBED_DECLS(__half)
MOE_EMBED_DECLS(float)
#undef MOE_EMBED_DECLS

}  // namespace moe::kernels::cuda
