#include "kernels/cpu/linear.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace moe::kernels::cpu {
namespace {

// ifunc resolvers run before ThreadSanitizer's runtime starts, which crashes TSAN
// builds; those build the baseline only.
#if defined(__SANITIZE_THREAD__)
#define MOE_LINEAR_CLONES
#else
#define MOE_LINEAR_CLONES __attribute__((target_clones("arch=haswell", "default")))
#endif

// Weight rows converted at once and reused across all M rows of x.
constexpr int64_t kRowBlock = 8;
constexpr int kLanes = 16;

// Four dot products of one x row against four weight rows, sharing the x loads.
__attribute__((always_inline)) inline void Dot4(const float* x, const float* w0, const float* w1, const float* w2,
                 const float* w3, int64_t n, float out[4]) {
  float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      float xv = x[k + j];
      a0[j] += xv * w0[k + j];
      a1[j] += xv * w1[k + j];
      a2[j] += xv * w2[k + j];
      a3[j] += xv * w3[k + j];
    }
  }
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (int j = 0; j < kLanes; ++j) {
    s0 += a0[j];
    s1 += a1[j];
    s2 += a2[j];
    s3 += a3[j];
  }
  for (; k < n; ++k) {
    s0 += x[k] * w0[k];
    s1 += x[k] * w1[k];
    s2 += x[k] * w2[k];
    s3 += x[k] * w3[k];
  }
  out[0] = s0;
  out[1] = s1;
  out[2] = s2;
  out[3] = s3;
}

}  // namespace

float DotF32(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += a[k + j] * b[k + j];
  }
  float s = 0;
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

void ConvertToF32(const void* src, DType dtype, int64_t n, float* dst) {
  switch (dtype) {
    case DType::kF32:
      std::copy_n(static_cast<const float*>(src), n, dst);
      return;
    case DType::kBF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits = static_cast<uint32_t>(s[i]) << 16;
        std::memcpy(&dst[i], &bits, 4);
      }
      return;
    }
    case DType::kF16: {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(s[i]);
      return;
    }
    default:
      std::fill_n(dst, n, 0.f);
      return;
  }
}

// Weight row blocks [b0, b1) of Linear. Compiled twice: for AVX2+FMA machines and for
// the baseline; the loader picks one at startup (ifunc), so the build stays portable.
MOE_LINEAR_CLONES void LinearBlocks(
    const float* x, int64_t M, int64_t K, const void* w, DType w_dtype, int64_t N,
    const void* bias, DType bias_dtype, float* y, int64_t b0, int64_t b1) {
  const size_t elem = DTypeSize(w_dtype);
  std::vector<float> scratch;
  if (w_dtype != DType::kF32) scratch.resize(static_cast<size_t>(kRowBlock * K));
  const float* rows[kRowBlock];
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t n0 = b * kRowBlock;
    const int64_t nb = std::min(kRowBlock, N - n0);
    for (int64_t j = 0; j < nb; ++j) {
      const char* src = static_cast<const char*>(w) + static_cast<size_t>(n0 + j) * K * elem;
      if (w_dtype == DType::kF32) {
        rows[j] = reinterpret_cast<const float*>(src);
      } else {
        float* dst = scratch.data() + j * K;
        if (w_dtype == DType::kBF16) {
          const uint16_t* s16 = reinterpret_cast<const uint16_t*>(src);
          for (int64_t i = 0; i < K; ++i) {
            uint32_t bits = static_cast<uint32_t>(s16[i]) << 16;
            std::memcpy(&dst[i], &bits, 4);
          }
        } else {
          ConvertToF32(src, w_dtype, K, dst);
        }
        rows[j] = dst;
      }
    }
    float bias_v[kRowBlock] = {};
    if (bias != nullptr) {
      for (int64_t j = 0; j < nb; ++j) bias_v[j] = LoadAsF32(bias, bias_dtype, n0 + j);
    }
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x + m * K;
      float* yr = y + m * N + n0;
      int64_t j = 0;
      for (; j + 4 <= nb; j += 4) {
        float out[4];
        Dot4(xr, rows[j], rows[j + 1], rows[j + 2], rows[j + 3], K, out);
        for (int t = 0; t < 4; ++t) yr[j + t] = out[t] + bias_v[j + t];
      }
      for (; j < nb; ++j) {
        float out[4];
        Dot4(xr, rows[j], rows[j], rows[j], rows[j], K, out);
        yr[j] = out[0] + bias_v[j];
      }
    }
  }
}

void Linear(const float* x, int64_t M, int64_t K, const void* w, DType w_dtype, int64_t N,
            const void* bias, DType bias_dtype, float* y, ThreadPool* pool) {
  if (M <= 0 || N <= 0) return;
  const int64_t num_blocks = (N + kRowBlock - 1) / kRowBlock;
  // Enough blocks per chunk that a chunk does ~128K multiply-adds (tens of microseconds):
  // smaller chunks cost more in thread wake-ups than they save.
  const int64_t min_blocks =
      std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, M * K * kRowBlock));
  ParallelFor(pool, num_blocks, min_blocks, [&](int64_t b0, int64_t b1) {
    LinearBlocks(x, M, K, w, w_dtype, N, bias, bias_dtype, y, b0, b1);
  });
}

}  // namespace moe::kernels::cpu
