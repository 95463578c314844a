#include "kernels/cuda/norm.h"

#include <cstdlib>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pdl.cuh"

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

// Where the residual add's delta comes from. DeltaArray: a [rows, n] fp32 buffer (null:
// no add). DeltaCombine: LaunchMoeCombine's sum computed on the fly, column c of token t
// being sum_i w[t*k+i] * float(rows[slot_row[t*k+i], c]) accumulated i = 0..k-1 with one
// fused multiply-add each from 0, exactly as moe_permute.cu's combine kernels do; so
// x + delta is bit-identical to the add of the stored combine output.
struct DeltaArray {
  const float* p;
  __device__ __forceinline__ bool present() const { return p != nullptr; }
  __device__ __forceinline__ float At(int64_t /*row*/, int64_t off, int i) const { return p[off + i]; }
  __device__ __forceinline__ float4 At4(int64_t /*row*/, int64_t off, int i4) const {
    return reinterpret_cast<const float4*>(p + off)[i4];
  }
};

template <typename R>
struct DeltaCombine {
  const R* rows;
  const int32_t* slot_row;
  const float* weight;
  int k;
  int n;
  bool vec_rows;  // rows 4-element aligned (hidden % 4 == 0 and an aligned base)
  __device__ __forceinline__ bool present() const { return true; }
  __device__ __forceinline__ float At(int64_t t, int64_t /*off*/, int c) const {
    float acc = 0.f;
    for (int i = 0; i < k; ++i) {
      const int64_t r = slot_row[t * k + i];
      acc = __fmaf_rn(weight[t * k + i], detail::ToF32(rows[r * n + c]), acc);
    }
    return acc;
  }
  __device__ __forceinline__ float4 At4(int64_t t, int64_t /*off*/, int i4) const {
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    const int c = 4 * i4;
    for (int i = 0; i < k; ++i) {
      const int64_t r = slot_row[t * k + i];
      const float w = weight[t * k + i];
      float x[4];
      Load4(rows + r * n + c, x);
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[e] = __fmaf_rn(w, x[e], acc[e]);
    }
    return make_float4(acc[0], acc[1], acc[2], acc[3]);
  }
  __device__ __forceinline__ void Load4(const R* src, float* x) const {
    if (vec_rows) {
      if constexpr (sizeof(R) == 4) {
        const float4 v = *reinterpret_cast<const float4*>(src);
        x[0] = v.x, x[1] = v.y, x[2] = v.z, x[3] = v.w;
        return;
      } else {
        const uint2 u = *reinterpret_cast<const uint2*>(src);
        const R* h = reinterpret_cast<const R*>(&u);
#pragma unroll
        for (int e = 0; e < 4; ++e) x[e] = detail::ToF32(h[e]);
        return;
      }
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) x[e] = detail::ToF32(src[e]);
  }
};

// One block per row. The residual add (if any) is written back before the norm.
template <typename Out, typename W, typename D>
__global__ void AddRmsNormKernel(float* residual, const D delta, const float* x_in,
                                 int64_t in_stride, int groups, int n, const W* weight,
                                 float eps, Out* out, int64_t out_stride) {
  __shared__ float scratch[32];
  pdl::WaitPredecessor();
  const NormRow at = RowOf(blockIdx.x, groups, n, in_stride, out_stride);
  const int64_t in_off = at.in_off, out_off = at.out_off;
  const float* x = residual != nullptr ? residual + in_off : x_in + in_off;
  float ss = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float v = x[i];
    if (residual != nullptr && delta.present()) {
      v += delta.At(blockIdx.x, in_off, i);
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

template <typename Out, typename W, typename D>
__global__ void AddRmsNormVecKernel(float* residual, const D delta, const float* x_in,
                                    int64_t in_stride, int groups, int n, const W* weight,
                                    float eps, Out* out, int64_t out_stride) {
  __shared__ float scratch[32];
  pdl::WaitPredecessor();
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
      if (residual != nullptr && delta.present()) {
        const float4 d = delta.At4(blockIdx.x, in_off, i);
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
// delta_aligned: the delta source allows float4 reads (an aligned buffer, or none; a
// DeltaCombine passes true so it picks the kernel LaunchAddRmsNorm picks for an aligned
// delta buffer: the same reduction, hence the same bits).
template <typename Out, typename W, typename D>
cudaError_t LaunchNorm(int64_t rows, float* residual, const D& delta, bool delta_aligned,
                const float* x, int64_t in_stride, int groups, int n, const W* weight,
                float eps, Out* out, int64_t out_stride, cudaStream_t stream) {
  auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int nv = n / 4;
  const bool vec = n % 4 == 0 && in_stride % 4 == 0 && out_stride % 4 == 0 &&
                   nv <= kVecPerThread * 1024 && al(residual) && delta_aligned && al(x) &&
                   al(out);
  if (vec) {
    int threads = (nv + kVecPerThread - 1) / kVecPerThread;
    // Small rows: one float4 a thread (more threads, shorter chains) up to 1024.
    threads = nv <= 1024 ? nv : threads;
    threads = (threads + 31) / 32 * 32;
    return pdl::Launch(AddRmsNormVecKernel<Out, W, D>, dim3(static_cast<unsigned>(rows)),
                       dim3(threads), 0, stream, residual, delta, x, in_stride, groups, n,
                       weight, eps, out, out_stride);
  }
  return pdl::Launch(AddRmsNormKernel<Out, W, D>, dim3(static_cast<unsigned>(rows)),
                     dim3(NormThreads(n)), 0, stream, residual, delta, x, in_stride, groups, n,
                     weight, eps, out, out_stride);
}

template <typename Out, typename W>
cudaError_t Launch(float* residual, const float* delta, const float* x, int64_t rows, int n,
                   const W* weight, float eps, Out* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return LaunchNorm<Out, W>(rows, residual, DeltaArray{delta}, al(delta), x, n, 1, n, weight, eps,
                            out, n, stream);
}

template <typename R, typename W, typename Out>
cudaError_t LaunchCombineNorm(const R* expert_out, const int32_t* slot_row,
                              const float* topk_weight, int k, float* residual, int64_t rows,
                              int n, const W* weight, float eps, Out* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (residual == nullptr || k < 1) return cudaErrorInvalidValue;
  const bool vec_rows = n % 4 == 0 && reinterpret_cast<uintptr_t>(expert_out) % (4 * sizeof(R)) == 0;
  const DeltaCombine<R> d{expert_out, slot_row, topk_weight, k, n, vec_rows};
  return LaunchNorm<Out, W>(rows, residual, d, true, nullptr, n, 1, n, weight, eps, out, n, stream);
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
    return LaunchNorm<float, W>(rows, nullptr, DeltaArray{nullptr}, true, x, token_stride,     \
                                groups, n, weight, eps, x, token_stride, stream);            \
  }
MOE_NORM_OVERLOADS_W(bf16)
MOE_NORM_OVERLOADS_W(f16)
MOE_NORM_OVERLOADS_W(float)

#define MOE_COMBINE_NORM_OVERLOAD(R, T)                                                       \
  cudaError_t LaunchMoeCombineAddRmsNorm(const R* expert_out, const int32_t* slot_row,        \
                                         const float* topk_weight, int k, float* residual,    \
                                         int64_t rows, int n, const T* weight, float eps,     \
                                         T* out, cudaStream_t stream) {                       \
    return LaunchCombineNorm<R, T, T>(expert_out, slot_row, topk_weight, k, residual, rows,   \
                                      n, weight, eps, out, stream);                           \
  }
MOE_COMBINE_NORM_OVERLOAD(float, bf16)
MOE_COMBINE_NORM_OVERLOAD(bf16, bf16)
MOE_COMBINE_NORM_OVERLOAD(float, f16)
MOE_COMBINE_NORM_OVERLOAD(f16, f16)
MOE_COMBINE_NORM_OVERLOAD(float, float)
#undef MOE_COMBINE_NORM_OVERLOAD

bool MoeCombineNormFusedDefault() {
  static const bool on = [] {
    const char* v = std::getenv("MOE_COMBINE_FUSED");
    if (v == nullptr || *v == '\0') return true;
    return !(v[0] == '0' || v[0] == 'n' || v[0] == 'N' || v[0] == 'f' || v[0] == 'F');
  }();
  return on;
}

}  // namespace moe::kernels::cuda
