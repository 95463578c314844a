#include "kernels/cuda/norm.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

using detail::bf16;
using detail::f16;

// Block b normalises group (b % groups) of token (b / groups): where its input and output
// start.
struct NormRow {
  int64_t in_off, out_off;
};
__device__ __forceinline__ NormRow RowOf(int64_t row, int groups, int n, int64_t in_stride,
                                         int64_t out_stride) {
  const int64_t t = row / groups;
  const int64_t g = row % groups;
  return {t * in_stride + g * n, t * out_stride + g * n};
}

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
  const NormRow at = RowOf(blockIdx.x, groups, n, in_stride, out_stride);
  const int64_t in_off = at.in_off, out_off = at.out_off;
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

// Vector fast path: rows of n % 4 == 0 floats, 16-byte aligned; each thread keeps up to
// kVecPerThread float4 of the row in registers (read once, weight loaded before the
// reduction), so n <= 4 * kVecPerThread * blockDim.x.
constexpr int kVecPerThread = 4;

template <typename W>
__device__ __forceinline__ void LoadW4(const W* w, int i, float* f) {
#pragma unroll
  for (int e = 0; e < 4; ++e) f[e] = detail::ToF32(w[i + e]);
}
template <typename Out>
__device__ __forceinline__ void Store4(Out* o, const float* f) {
#pragma unroll
  for (int e = 0; e < 4; ++e) o[e] = detail::FromF32<Out>(f[e]);
}
template <>
__device__ __forceinline__ void Store4<float>(float* o, const float* f) {
  *reinterpret_cast<float4*>(o) = make_float4(f[0], f[1], f[2], f[3]);
}

template <typename Out, typename W>
__global__ void AddRmsNormVecKernel(float* residual, const float* delta, const float* x_in,
                                    int64_t in_stride, int groups, int n, const W* weight,
                                    float eps, Out* out, int64_t out_stride) {
  __shared__ float scratch[32];
  const NormRow at = RowOf(blockIdx.x, groups, n, in_stride, out_stride);
  const int64_t in_off = at.in_off, out_off = at.out_off;
  const float* x = residual != nullptr ? residual + in_off : x_in + in_off;
  const int nv = n / 4;
  float4 v[kVecPerThread];
  float w[kVecPerThread][4];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kVecPerThread; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nv) {
      v[j] = reinterpret_cast<const float4*>(x)[i];
      if (residual != nullptr && delta != nullptr) {
        const float4 d = reinterpret_cast<const float4*>(delta + in_off)[i];
        v[j].x += d.x;
        v[j].y += d.y;
        v[j].z += d.z;
        v[j].w += d.w;
        reinterpret_cast<float4*>(residual + in_off)[i] = v[j];
      }
      LoadW4(weight, 4 * i, w[j]);
      ss += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
    }
  }
  ss = detail::BlockSum(ss, scratch);
  const float r = rsqrtf(ss / static_cast<float>(n) + eps);
#pragma unroll
  for (int j = 0; j < kVecPerThread; ++j) {
    const int i = threadIdx.x + j * blockDim.x;
    if (i < nv) {
      const float y[4] = {w[j][0] * (v[j].x * r), w[j][1] * (v[j].y * r), w[j][2] * (v[j].z * r),
                          w[j][3] * (v[j].w * r)};
      Store4(out + out_off + 4 * i, y);
    }
  }
}

// Launches the vector kernel when the shapes and pointers allow, else the scalar one.
template <typename Out, typename W>
void LaunchNorm(int64_t rows, float* residual, const float* delta, const float* x,
                int64_t in_stride, int groups, int n, const W* weight, float eps, Out* out,
                int64_t out_stride, cudaStream_t stream) {
  auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int nv = n / 4;
  const bool vec = n % 4 == 0 && in_stride % 4 == 0 && out_stride % 4 == 0 &&
                   nv <= kVecPerThread * 1024 && al(residual) && al(delta) && al(x) && al(out);
  if (vec) {
    int threads = (nv + kVecPerThread - 1) / kVecPerThread;
    // Small rows: one float4 a thread (more threads, shorter chains) up to 1024.
    threads = nv <= 1024 ? nv : threads;
    threads = (threads + 31) / 32 * 32;
    AddRmsNormVecKernel<Out, W><<<static_cast<unsigned>(rows), threads, 0, stream>>>(
        residual, delta, x, in_stride, groups, n, weight, eps, out, out_stride);
  } else {
    AddRmsNormKernel<Out, W><<<static_cast<unsigned>(rows), NormThreads(n), 0, stream>>>(
        residual, delta, x, in_stride, groups, n, weight, eps, out, out_stride);
  }
}

template <typename Out, typename W>
cudaError_t Launch(float* residual, const float* delta, const float* x, int64_t rows, int n,
                   const W* weight, float eps, Out* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  LaunchNorm<Out, W>(rows, residual, delta, x, n, 1, n, weight, eps, out, n, stream);
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
    LaunchNorm<float, W>(rows, nullptr, nullptr, x, token_stride, groups, n, weight, eps, x, \
                         token_stride, stream);                                              \
    return cudaGetLastError();                                                               \
  }
MOE_NORM_OVERLOADS_W(bf16)
MOE_NORM_OVERLOADS_W(f16)
MOE_NORM_OVERLOADS_W(float)

}  // namespace moe::kernels::cuda
