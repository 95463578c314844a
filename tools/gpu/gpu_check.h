// Harness for the GPU kernel suite: device buffers, fresh random inputs, NaN poisoning,
// relative-error comparison and a result table. Aborts the process on a failed CUDA /
// cuBLAS call (naming it), so a broken launch can never read as a pass.
//
// Thread safety: single-threaded use only.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/device_query.h"
#include "kernels/dtype.h"

namespace moe::gpu_test {

#define CUDA_OK(expr)                                                                       \
  do {                                                                                      \
    cudaError_t e_ = (expr);                                                                \
    if (e_ != cudaSuccess) {                                                                \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,             \
                   cudaGetErrorString(e_));                                                 \
      std::exit(2);                                                                         \
    }                                                                                       \
  } while (0)

#define CUBLAS_OK(expr)                                                                     \
  do {                                                                                      \
    cublasStatus_t s_ = (expr);                                                             \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                      \
      std::fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,             \
                   cublasGetStatusName(s_));                                                \
      std::exit(2);                                                                         \
    }                                                                                       \
  } while (0)

// Launch + synchronise + check the sticky error.
#define LAUNCH_OK(expr)                       \
  do {                                        \
    CUDA_OK(expr);                            \
    CUDA_OK(cudaStreamSynchronize(nullptr));  \
    CUDA_OK(cudaGetLastError());              \
  } while (0)

template <typename T>
class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t n) : n_(n) { CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&p_), (n ? n : 1) * sizeof(T))); }
  explicit DevBuf(const std::vector<T>& host) : DevBuf(host.size()) { Upload(host); }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void Upload(const std::vector<T>& host) {
    CUDA_OK(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> h(n_);
    CUDA_OK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  // Fill with NaN (0xFF bytes are a NaN in fp32 and bf16; -1 for ints).
  void Poison() { CUDA_OK(cudaMemset(p_, 0xFF, (n_ ? n_ : 1) * sizeof(T))); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

using Bf16 = __nv_bfloat16;

inline Bf16 ToBf16(float f) {
  const uint16_t b = F32ToBf16(f);
  Bf16 r;
  std::memcpy(static_cast<void*>(&r), &b, 2);
  return r;
}
inline float FromBf16(Bf16 v) {
  uint16_t b;
  std::memcpy(&b, static_cast<const void*>(&v), 2);
  return Bf16ToF32(b);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  std::vector<float> Normal(size_t n, float scale = 1.f) {
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(gen_);
    return v;
  }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  std::mt19937_64& gen() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

// Rounds v to bf16 in place and returns the bf16 copy (what the GPU gets).
inline std::vector<Bf16> RoundBf16(std::vector<float>& v) {
  std::vector<Bf16> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    b[i] = ToBf16(v[i]);
    v[i] = FromBf16(b[i]);
  }
  return b;
}
// The raw bf16 bits, as the CPU kernels take a kBF16 weight.
inline std::vector<uint16_t> Bits(const std::vector<Bf16>& b) {
  std::vector<uint16_t> r(b.size());
  std::memcpy(r.data(), static_cast<const void*>(b.data()), b.size() * 2);
  return r;
}
inline std::vector<float> ToF32(const std::vector<Bf16>& b) {
  std::vector<float> r(b.size());
  for (size_t i = 0; i < b.size(); ++i) r[i] = FromBf16(b[i]);
  return r;
}

// ||out - ref|| / ||ref||; NaN/Inf anywhere in out gives +inf. ref == 0 everywhere:
// the absolute norm.
inline double RelErr(const std::vector<float>& out, const std::vector<float>& ref) {
  if (out.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    const double d = static_cast<double>(out[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct Row {
  std::string kernel, shape;
  double err, bound;
  bool pass;
};

class Report {
 public:
  bool Check(const std::string& kernel, const std::string& shape, double err, double bound) {
    const bool pass = std::isfinite(err) && err <= bound;
    rows_.push_back({kernel, shape, err, bound, pass});
    std::printf("%-4s %-28s %-44s err %.3e (bound %.0e)\n", pass ? "ok" : "FAIL", kernel.c_str(),
                shape.c_str(), err, bound);
    std::fflush(stdout);
    return pass;
  }
  int Summary() const {
    int failed = 0;
    std::printf("\n%-28s %5s %5s %12s %8s\n", "kernel", "cases", "fail", "max_rel_err", "bound");
    std::vector<std::string> names;
    for (const Row& r : rows_) {
      bool seen = false;
      for (auto& n : names) seen |= n == r.kernel;
      if (!seen) names.push_back(r.kernel);
    }
    for (const auto& n : names) {
      int cases = 0, fails = 0;
      double worst = 0, bound = 0;
      for (const Row& r : rows_) {
        if (r.kernel != n) continue;
        ++cases;
        fails += !r.pass;
        worst = std::isfinite(r.err) ? std::max(worst, r.err) : INFINITY;
        bound = r.bound;
      }
      failed += fails;
      std::printf("%-28s %5d %5d %12.3e %8.0e\n", n.c_str(), cases, fails, worst, bound);
    }
    std::printf("%zu passed, %d failed\n", rows_.size() - failed, failed);
    return failed == 0 ? 0 : 1;
  }

 private:
  std::vector<Row> rows_;
};

// The start of a GPU suite's main: the seed (`--seed N`, else the clock) and the device
// line that reproduces a run. Returns false (after saying why) when there is no device.
inline bool StartSuite(int argc, char** argv, uint64_t* seed) {
  *seed = std::chrono::steady_clock::now().time_since_epoch().count();
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--seed") *seed = std::stoull(argv[i + 1]);
  const auto info = moe::kernels::cuda::QueryDevices();
  if (info.count == 0) {
    std::fprintf(stderr, "no CUDA device: %s\n", info.error.c_str());
    return false;
  }
  std::printf("device: %s (sm_%d%d, %d SMs), seed %llu\n", info.name.c_str(), info.sm_major,
              info.sm_minor, info.multiprocessors, static_cast<unsigned long long>(*seed));
  return true;
}

}  // namespace moe::gpu_test
