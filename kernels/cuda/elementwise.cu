#include "kernels/cuda/elementwise.h"

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

using detail::bf16;
using detail::f16;
using detail::CeilDiv;

constexpr int kThreads = 256;

unsigned Blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}

__global__ void ClampKernel(float* x, int64_t n, float c) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    x[i] = fminf(fmaxf(x[i], -c), c);
  }
}

template <typename Out>
__global__ void SiluMulKernel(const float* gu, int64_t rows, int64_t width, Out* out) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t r = i / width, c = i - r * width;
    const float g = gu[r * 2 * width + c];
    const float u = gu[r * 2 * width + width + c];
    out[i] = detail::FromF32<Out>(g / (1.0f + expf(-g)) * u);
  }
}

template <typename In, typename Out>
__global__ void SiluMulTypedKernel(const In* gu, int64_t rows, int64_t width, Out* out) {
  const int64_t n = rows * width;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t r = i / width, c = i - r * width;
    const float g = detail::ToF32(gu[r * 2 * width + c]);
    const float u = detail::ToF32(gu[r * 2 * width + width + c]);
    out[i] = detail::FromF32<Out>(g / (1.0f + expf(-g)) * u);
  }
}

// 8 columns of one row per thread through 16-byte loads and stores (2-byte types only;
// width % 8 == 0 and 16-byte-aligned buffers, checked by the launcher).
template <typename H>
__global__ void SiluMulVec8Kernel(const H* gu, int64_t rows, int64_t width, H* out) {
  union Pack {
    uint4 v;
    H h[8];
  };
  const int64_t w8 = width / 8, n = rows * w8;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t r = i / w8, c = (i - r * w8) * 8;
    Pack g, u, o;
    g.v = *reinterpret_cast<const uint4*>(gu + r * 2 * width + c);
    u.v = *reinterpret_cast<const uint4*>(gu + r * 2 * width + width + c);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float gf = detail::ToF32(g.h[j]);
      o.h[j] = detail::FromF32<H>(gf / (1.0f + expf(-gf)) * detail::ToF32(u.h[j]));
    }
    *reinterpret_cast<uint4*>(out + r * width + c) = o.v;
  }
}

__global__ void SigmoidGatedAddKernel(float* out, const float* gate_logit, const float* shared,
                                      int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * kThreads) {
    const float s = 1.0f / (1.0f + expf(-gate_logit[i / n]));
    out[i] += s * shared[i];
  }
}

template <typename B>
__global__ void AddBiasKernel(float* y, int64_t rows, int64_t n, int64_t stride,
                              const B* bias) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < total;
       i += int64_t{gridDim.x} * kThreads) {
    const int64_t r = i / n, c = i - r * n;
    y[r * stride + c] += detail::ToF32(bias[c]);
  }
}

__global__ void CastKernel(const float* x, int64_t n, bf16* out) {
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * kThreads) {
    out[i] = __float2bfloat16_rn(x[i]);
  }
}

template <typename Out>
cudaError_t SiluMul(const float* gu, int64_t rows, int64_t width, Out* out, cudaStream_t s) {
  if (rows * width <= 0) return cudaSuccess;
  SiluMulKernel<Out><<<Blocks(rows * width), kThreads, 0, s>>>(gu, rows, width, out);
  return cudaGetLastError();
}

template <typename H>
cudaError_t SiluMulTyped(const H* gu, int64_t rows, int64_t width, H* out, cudaStream_t s) {
  if (rows * width <= 0) return cudaSuccess;
  const bool aligned = reinterpret_cast<uintptr_t>(gu) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(out) % 16 == 0;
  if (width % 8 == 0 && aligned) {
    SiluMulVec8Kernel<H><<<Blocks(rows * width / 8), kThreads, 0, s>>>(gu, rows, width, out);
  } else {
    SiluMulTypedKernel<H, H><<<Blocks(rows * width), kThreads, 0, s>>>(gu, rows, width, out);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchClamp(float* x, int64_t n, float c, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ClampKernel<<<Blocks(n), kThreads, 0, stream>>>(x, n, c);
  return cudaGetLastError();
}

cudaError_t LaunchSiluMul(const float* gate_up, int64_t rows, int64_t width, bf16* out,
                          cudaStream_t stream) {
  return SiluMul<bf16>(gate_up, rows, width, out, stream);
}
cudaError_t LaunchSiluMul(const float* gate_up, int64_t rows, int64_t width, float* out,
                          cudaStream_t stream) {
  return SiluMul<float>(gate_up, rows, width, out, stream);
}

cudaError_t LaunchSigmoidGatedAdd(float* out, const float* gate_logit, const float* shared,
                                  int64_t rows, int64_t n, cudaStream_t stream) {
  if (rows * n <= 0) return cudaSuccess;
  SigmoidGatedAddKernel<<<Blocks(rows * n), kThreads, 0, stream>>>(out, gate_logit, shared,
                                                                   rows, n);
  return cudaGetLastError();
}

template <typename B>
cudaError_t AddBias(float* y, int64_t rows, int64_t n, int64_t stride, const B* bias,
                    cudaStream_t stream) {
  if (rows * n <= 0) return cudaSuccess;
  AddBiasKernel<B><<<Blocks(rows * n), kThreads, 0, stream>>>(y, rows, n, stride, bias);
  return cudaGetLastError();
}
cudaError_t LaunchAddBias(float* y, int64_t rows, int64_t n, int64_t stride, const bf16* bias,
                          cudaStream_t stream) {
  return AddBias(y, rows, n, stride, bias, stream);
}
cudaError_t LaunchAddBias(float* y, int64_t rows, int64_t n, int64_t stride, const f16* bias,
                          cudaStream_t stream) {
  return AddBias(y, rows, n, stride, bias, stream);
}
cudaError_t LaunchAddBias(float* y, int64_t rows, int64_t n, int64_t stride, const float* bias,
                          cudaStream_t stream) {
  return AddBias(y, rows, n, stride, bias, stream);
}
cudaError_t LaunchSiluMul(const float* gate_up, int64_t rows, int64_t width, f16* out,
                          cudaStream_t stream) {
  return SiluMul<f16>(gate_up, rows, width, out, stream);
}
cudaError_t LaunchSiluMul(const bf16* gate_up, int64_t rows, int64_t width, bf16* out,
                          cudaStream_t stream) {
  return SiluMulTyped<bf16>(gate_up, rows, width, out, stream);
}
cudaError_t LaunchSiluMul(const f16* gate_up, int64_t rows, int64_t width, f16* out,
                          cudaStream_t stream) {
  return SiluMulTyped<f16>(gate_up, rows, width, out, stream);
}

cudaError_t LaunchCastToBf16(const float* x, int64_t n, bf16* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  CastKernel<<<Blocks(n), kThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

}  // namespace moe::kernels::cuda
