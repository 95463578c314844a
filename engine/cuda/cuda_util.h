// Helpers shared by the CUDA backend's sources: status-returning checks of CUDA and cuBLAS
// calls, and a growable device buffer.
//
// Thread safety: Scratch is owned by one runner and used by its engine thread only.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::engine::cuda {

#define CU(expr)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (expr);                                                              \
    if (e_ != cudaSuccess) {                                                              \
      return absl::InternalError(absl::StrCat(#expr, ": ", cudaGetErrorString(e_)));      \
    }                                                                                     \
  } while (0)
#define CB(expr)                                                                          \
  do {                                                                                    \
    cublasStatus_t s_ = (expr);                                                           \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                    \
      return absl::InternalError(absl::StrCat(#expr, ": ", cublasGetStatusName(s_)));     \
    }                                                                                     \
  } while (0)
#define RET(expr)               \
  do {                          \
    absl::Status st_ = (expr);  \
    if (!st_.ok()) return st_;  \
  } while (0)

// A growable device buffer (never shrinks; growing moves it).
template <typename T>
struct Scratch {
  T* p = nullptr;
  size_t cap = 0;
  ~Scratch() {
    if (p) cudaFree(p);
  }
  absl::Status Reserve(size_t n, const char* what) {
    if (n <= cap) return absl::OkStatus();
    if (p) cudaFree(p);
    p = nullptr;
    cap = 0;
    cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T));
    if (e != cudaSuccess) {
      return absl::ResourceExhaustedError(
          absl::StrCat("GPU scratch '", what, "' of ", n * sizeof(T), " bytes: ", cudaGetErrorString(e)));
    }
    cap = n;
    return absl::OkStatus();
  }
  template <typename H>
  absl::Status Put(const std::vector<H>& host, const char* what, cudaStream_t s) {
    static_assert(sizeof(H) == sizeof(T));
    RET(Reserve(host.size(), what));
    if (host.empty()) return absl::OkStatus();
    CU(cudaMemcpyAsync(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, s));
    return absl::OkStatus();
  }
};

}  // namespace moe::engine::cuda
