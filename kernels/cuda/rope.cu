#include "kernels/cuda/rope.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

// One block per token; threads walk (head, i) pairs of both q and k.
__global__ void RopeKernel(float* q, int64_t q_stride, int num_heads, float* k, int64_t k_stride,
                           int num_kv_heads, int head_dim, int half, const int32_t* positions,
                           const float* inv_freq) {
  const int64_t t = blockIdx.x;
  const float pos = static_cast<float>(positions[t]);
  const int total = (num_heads + num_kv_heads) * half;
  for (int j = threadIdx.x; j < total; j += blockDim.x) {
    const int h = j / half, i = j - h * half;
    float* v = h < num_heads ? q + t * q_stride + static_cast<int64_t>(h) * head_dim
                             : k + t * k_stride + static_cast<int64_t>(h - num_heads) * head_dim;
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
    const float x1 = v[i], x2 = v[i + half];
    v[i] = x1 * c - x2 * s;
    v[i + half] = x2 * c + x1 * s;
  }
}

}  // namespace

cudaError_t LaunchRopeQk(float* q, int64_t q_stride, int num_heads, float* k, int64_t k_stride,
                         int num_kv_heads, int64_t num_tokens, int head_dim, int rotary_dim,
                         const int32_t* positions, const float* inv_freq, cudaStream_t stream) {
  if (num_tokens <= 0 || rotary_dim < 2) return cudaSuccess;
  RopeKernel<<<static_cast<unsigned>(num_tokens), 128, 0, stream>>>(
      q, q_stride, num_heads, k, k_stride, num_kv_heads, head_dim, rotary_dim / 2, positions,
      inv_freq);
  return cudaGetLastError();
}

cudaError_t LaunchRope(float* x, int64_t num_tokens, int64_t row_stride, int num_heads,
                       int head_dim, int rotary_dim, const int32_t* positions,
                       const float* inv_freq, cudaStream_t stream) {
  return LaunchRopeQk(x, row_stride, num_heads, nullptr, 0, 0, num_tokens, head_dim, rotary_dim,
                      positions, inv_freq, stream);
}

}  // namespace moe::kernels::cuda
