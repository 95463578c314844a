#include "kernels/cuda/embedding.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

using detail::bf16;

__global__ void EmbeddingKernel(const int32_t* ids, const bf16* table, int64_t hidden,
                                float* out) {
  const int64_t t = blockIdx.x;
  const bf16* row = table + static_cast<int64_t>(ids[t]) * hidden;
  float* o = out + t * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = __bfloat162float(row[i]);
}

// 16-byte copies when the width allows, else element by element.
__global__ void GatherRowsKernel(const bf16* src, const int32_t* idx, int64_t width, bf16* dst) {
  const int64_t r = blockIdx.x;
  const int64_t s = idx[r];
  if (width % 8 == 0) {
    const uint4* in = reinterpret_cast<const uint4*>(src + s * width);
    uint4* out = reinterpret_cast<uint4*>(dst + r * width);
    for (int64_t i = threadIdx.x; i < width / 8; i += blockDim.x) out[i] = in[i];
  } else {
    for (int64_t i = threadIdx.x; i < width; i += blockDim.x) dst[r * width + i] = src[s * width + i];
  }
}

}  // namespace

cudaError_t LaunchEmbedding(const int32_t* ids, int64_t num_tokens, const bf16* table,
                            int64_t hidden, float* out, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  EmbeddingKernel<<<static_cast<unsigned>(num_tokens), 256, 0, stream>>>(ids, table, hidden, out);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const bf16* src, const int32_t* idx, int64_t rows, int64_t width,
                             bf16* dst, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  GatherRowsKernel<<<static_cast<unsigned>(rows), 128, 0, stream>>>(src, idx, width, dst);
  return cudaGetLastError();
}

}  // namespace moe::kernels::cuda
