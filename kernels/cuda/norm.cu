#include "kernels/cuda/norm.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

using detail::bf16;
using detail::f16;

int NormThreads(int n) {
  int t = 32;
  while (t < 1024 && t * 4 < n) t *= 2;
  return t;
}

// One block per row. The residual add (if any) is written back before the norm.
template <typename Out, typename W>
__global__ void AddRmsNormKernel(float* residual, const float* delta, const float* x_in,
                                 int64_t in_stride, int groups, int n, const W* weight,
                                 float eps, Out* out, int64_t out_stride) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int64_t t = row / groups;
  const int g = static_cast<int>(row % groups);
  const int64_t in_off = t * in_stride + static_cast<int64_t>(g) * n;
  const int64_t out_off = t * out_stride + static_cast<int64_t>(g) * n;
  const float* x = residual != nullptr ? residual + in_off : x_in + in_off;
  float ss = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = x[i];
    if (residual != nullptr && delta != nullptr) {
      v += delta[in_off + i];
      residual[in_off + i] = v;
    }
    ss += v * v;
  }
  ss = detail::BlockSum(ss, scratch);
  const float r = rsqrtf(ss / static_cast<float>(n) + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    // Each thread re-reads only the elements it wrote itself, so no barrier is needed.
    out[out_off + i] = detail::FromF32<Out>(detail::ToF32(weight[i]) * (x[i] * r));
  }
}

template <typename Out, typename W>
cudaError_t Launch(float* residual, const float* delta, const float* x, int64_t rows, int n,
                   const W* weight, float eps, Out* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  AddRmsNormKernel<Out, W><<<static_cast<unsigned>(rows), NormThreads(n), 0, stream>>>(
      residual, delta, x, n, 1, n, weight, eps, out, n);
  return cudaGetLastError();
}

}  // namespace

#define MOE_NORM_OVERLOADS(W, Out)                                                          \
  cudaError_t LaunchRmsNorm(const float* x, int64_t rows, int n, const W* weight, float eps, \
                            Out* out, cudaStream_t stream) {                                \
    return Launch<Out, W>(nullptr, nullptr, x, rows, n, weight, eps, out, stream);          \
  }                                                                                         \
  cudaError_t LaunchAddRmsNorm(float* residual, const float* delta, int64_t rows, int n,    \
                               const W* weight, float eps, Out* out, cudaStream_t stream) { \
    return Launch<Out, W>(residual, delta, nullptr, rows, n, weight, eps, out, stream);     \
  }
#define MOE_NORM_OVERLOADS_W(W)                                                              \
  MOE_NORM_OVERLOADS(W, bf16)                                                                \
  MOE_NORM_OVERLOADS(W, f16)                                                                 \
  MOE_NORM_OVERLOADS(W, float)                                                               \
  cudaError_t LaunchRmsNormGroups(float* x, int64_t num_tokens, int64_t token_stride,        \
                                  int groups, int n, const W* weight, float eps,             \
                                  cudaStream_t stream) {                                     \
    const int64_t rows = num_tokens * groups;                                                \
    if (rows <= 0) return cudaSuccess;                                                       \
    AddRmsNormKernel<float, W><<<static_cast<unsigned>(rows), NormThreads(n), 0, stream>>>(  \
        nullptr, nullptr, x, token_stride, groups, n, weight, eps, x, token_stride);         \
    return cudaGetLastError();                                                               \
  }
MOE_NORM_OVERLOADS_W(bf16)
MOE_NORM_OVERLOADS_W(f16)
MOE_NORM_OVERLOADS_W(float)

}  // namespace moe::kernels::cuda
