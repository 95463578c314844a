#include "kernels/cuda/embedding.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

using detail::bf16;
using detail::f16;

template <typename T>
__global__ void EmbeddingKernel(const int32_t* ids, const T* table, int64_t hidden,
                                float* out) {
  const int64_t t = blockIdx.x;
  const T* row = table + static_cast<int64_t>(ids[t]) * hidden;
  float* o = out + t * hidden;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) o[i] = detail::ToF32(row[i]);
}

// 16-byte copies when the width allows, else element by element.
template <typename T>
__global__ void GatherRowsKernel(const T* src, const int32_t* idx, int64_t width, T* dst) {
  const int64_t r = blockIdx.x;
  const int64_t s = idx[r];
  constexpr int kVec = 16 / sizeof(T);
  if (width % kVec == 0) {
    const uint4* in = reinterpret_cast<const uint4*>(src + s * width);
    uint4* out = reinterpret_cast<uint4*>(dst + r * width);
    for (int64_t i = threadIdx.x; i < width / kVec; i += blockDim.x) out[i] = in[i];
  } else {
    for (int64_t i = threadIdx.x; i < width; i += blockDim.x) dst[r * width + i] = src[s * width + i];
  }
}

}  // namespace

#define MOE_EMBED_OVERLOADS(T)                                                                \
  cudaError_t LaunchEmbedding(const int32_t* ids, int64_t num_tokens, const T* table,         \
                              int64_t hidden, float* out, cudaStream_t stream) {              \
    if (num_tokens <= 0) return cudaSuccess;                                                  \
    EmbeddingKernel<T><<<static_cast<unsigned>(num_tokens), 256, 0, stream>>>(ids, table,     \
                                                                              hidden, out);   \
    return cudaGetLastError();                                                                \
  }                                                                                           \
  cudaError_t LaunchGatherRows(const T* src, const int32_t* idx, int64_t rows, int64_t width, \
                               T* dst, cudaStream_t stream) {                                 \
    if (rows <= 0) return cudaSuccess;                                                        \
    GatherRowsKernel<T><<<static_cast<unsigned>(rows), 128, 0, stream>>>(src, idx, width, dst); \
    return cudaGetLastError();                                                                \
  }
MOE_EMBED_OVERLOADS(bf16)
MOE_EMBED_OVERLOADS(f16)
MOE_EMBED_OVERLOADS(float)

}  // namespace moe::kernels::cuda
