#include "tools/gpu/device_rates.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace moe::engine {
namespace {

// Median milliseconds of `op` (timed with CUDA events on the default stream) over `reps`
// runs after `warm` untimed ones.
template <typename Op>
double MedianMs(int warm, int reps, Op op) {
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int i = 0; i < warm; ++i) op();
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(e0);
    op();
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

// Device-to-device copy bandwidth (read + write bytes / s) over a 1 GiB buffer.
double MeasureCopyBandwidth() {
  const size_t n = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) return 0;
  cudaMemset(a, 1, n);
  const double ms = MedianMs(3, 10, [&] { cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice); });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * n / (ms * 1e-3);
}

// Dense bf16 GEMM rate (FLOP / s) of cuBLAS on this device: C[8192, 8192] (fp32) = A · Bᵀ
// with bf16 operands and fp32 accumulation, as the runner's projections run. The
// reference for the prefill row's ratio.
double MeasureGemmFlops() {
  const int n = 8192;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  cublasHandle_t h = nullptr;
  double flops = 0;
  if (cudaMalloc(&a, size_t{2} * n * n) == cudaSuccess && cudaMalloc(&b, size_t{2} * n * n) == cudaSuccess &&
      cudaMalloc(&c, size_t{4} * n * n) == cudaSuccess && cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
    cudaMemset(a, 0x3c, size_t{2} * n * n);  // bf16 ~0.011: finite products
    cudaMemset(b, 0x3c, size_t{2} * n * n);
    const float one = 1.f, zero = 0.f;
    const double ms = MedianMs(3, 10, [&] {
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, b, CUDA_R_16BF, n, a, CUDA_R_16BF, n, &zero, c,
                   CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    });
    flops = 2.0 * n * n * n / (ms * 1e-3);
  }
  if (h) cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return flops;
}

// Pinned host-to-device copy bandwidth (bytes / s) over a 1 GiB buffer.
double MeasurePinnedH2D() {
  const size_t n = size_t{1} << 30;
  void *h = nullptr, *d = nullptr;
  if (cudaHostAlloc(&h, n, cudaHostAllocDefault) != cudaSuccess) return 0;
  if (cudaMalloc(&d, n) != cudaSuccess) {
    cudaFreeHost(h);
    return 0;
  }
  std::memset(h, 1, n);
  const double ms = MedianMs(1, 5, [&] { cudaMemcpy(d, h, n, cudaMemcpyHostToDevice); });
  cudaFreeHost(h);
  cudaFree(d);
  return n / (ms * 1e-3);
}


}  // namespace moe::engine
