#include "kernels/cuda/small_batch_experts.h"

#include <algorithm>

#include "kernels/cuda/common.cuh"

namespace moe::kernels::cuda {
namespace {

constexpr int kWarps = 8;   // output rows per block

template <typename T>
struct Vec {
  static constexpr int kN = 16 / sizeof(T);
};

__device__ __forceinline__ void Unpack(const uint4& u, float (&f)[8], const detail::bf16*) {
  const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __bfloat1622float2(p[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void Unpack(const uint4& u, float (&f)[8], const detail::f16*) {
  const __half2* p = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 v = __half22float2(p[i]);
    f[2 * i] = v.x;
    f[2 * i + 1] = v.y;
  }
}
__device__ __forceinline__ void Unpack(const uint4& u, float (&f)[4], const float*) {
  f[0] = __uint_as_float(u.x);
  f[1] = __uint_as_float(u.y);
  f[2] = __uint_as_float(u.z);
  f[3] = __uint_as_float(u.w);
}

// Block = kWarps warps over kWarps * R consecutive output rows of expert e (for gate/up:
// R gate rows and the matching R up rows per warp). The expert's rows are taken TT at a
// time: their inputs are staged once in shared memory (TT * K * sizeof(T) bytes), then
// each lane streams its 16-byte weight vectors and reuses every staged input vector for
// all R (x2) weight rows. kSwiGlu: weights [2N, K], output act (T) = silu(g) * u; else
// weights [N, K], output fp32.
template <typename T, int TT, int R, bool kSwiGlu>
__global__ void __launch_bounds__(kWarps * 32)
    ExpertGemvKernel(const T* __restrict__ x, const int32_t* __restrict__ row_token,
                     const int32_t* __restrict__ counts, const int32_t* __restrict__ offsets,
                     const int32_t* __restrict__ active, const T* const* __restrict__ weights,
                     int64_t N, int64_t K, T* __restrict__ out_act, float* __restrict__ out_f) {
  constexpr int V = Vec<T>::kN;
  constexpr int M = kSwiGlu ? 2 : 1;  // weight rows per output row
  extern __shared__ uint4 s_x[];      // [TT][K / V]
  const int slot = blockIdx.y;
  if (slot >= active[0]) return;
  const int e = active[1 + slot];
  const int n = counts[e], r0 = offsets[e];
  if (n == 0) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * R;
  const T* W = weights[e];
  const int64_t nv = K / V;
  const uint4* wp[R][M];
#pragma unroll
  for (int j = 0; j < R; ++j) {
    const int64_t row = min(row0 + j, N - 1);  // rows past N compute a copy, never stored
    wp[j][0] = reinterpret_cast<const uint4*>(W + row * K);
    if (kSwiGlu) wp[j][M - 1] = reinterpret_cast<const uint4*>(W + (row + N) * K);
  }
  const bool warp_live = row0 < N;
  for (int t0 = 0; t0 < n; t0 += TT) {
    const int nt = min(TT, n - t0);
    __syncthreads();  // the previous chunk's readers are done with s_x
    for (int64_t i = threadIdx.x; i < nt * nv; i += kWarps * 32) {
      const int t = static_cast<int>(i / nv);
      const int64_t v = i - t * nv;
      const int r = r0 + t0 + t;
      const int64_t src = row_token != nullptr ? row_token[r] : r;
      s_x[i] = __ldg(reinterpret_cast<const uint4*>(x + src * K) + v);
    }
    __syncthreads();
    if (!warp_live) continue;
    float acc[R][M][TT];
#pragma unroll
    for (int j = 0; j < R; ++j)
#pragma unroll
      for (int m = 0; m < M; ++m)
#pragma unroll
        for (int t = 0; t < TT; ++t) acc[j][m][t] = 0.f;
#pragma unroll 2
    for (int64_t v = lane; v < nv; v += 32) {
      uint4 uw[R][M];
#pragma unroll
      for (int j = 0; j < R; ++j)
#pragma unroll
        for (int m = 0; m < M; ++m) uw[j][m] = __ldg(wp[j][m] + v);
      float fw[R][M][V];
#pragma unroll
      for (int j = 0; j < R; ++j)
#pragma unroll
        for (int m = 0; m < M; ++m) Unpack(uw[j][m], fw[j][m], static_cast<const T*>(nullptr));
#pragma unroll
      for (int t = 0; t < TT; ++t) {
        if (t < nt) {
          float fx[V];
          Unpack(s_x[t * nv + v], fx, static_cast<const T*>(nullptr));
#pragma unroll
          for (int j = 0; j < R; ++j)
#pragma unroll
            for (int m = 0; m < M; ++m)
#pragma unroll
              for (int i = 0; i < V; ++i) acc[j][m][t] = fmaf(fw[j][m][i], fx[i], acc[j][m][t]);
        }
      }
    }
#pragma unroll
    for (int t = 0; t < TT; ++t) {
      if (t >= nt) continue;
      const int64_t out_row = r0 + t0 + t;
#pragma unroll
      for (int j = 0; j < R; ++j) {
        const float a = detail::WarpSum(acc[j][0][t]);
        const float b = kSwiGlu ? detail::WarpSum(acc[j][M - 1][t]) : 0.f;
        if (lane == 0 && row0 + j < N) {
          if (kSwiGlu) {
            const float silu = a / (1.f + __expf(-a));
            out_act[out_row * N + row0 + j] = detail::FromF32<T>(silu * b);
          } else {
            out_f[out_row * N + row0 + j] = a;
          }
        }
      }
    }
  }
}

constexpr size_t kMaxStageBytes = 48 * 1024;  // static shared-memory limit, no opt-in

// Largest rows-per-pass TT in {1, 2, 4, 8} not above `rows` whose staging fits.
int PickTT(int64_t rows, int64_t K, size_t elem) {
  int tt = 1;
  for (int c : {2, 4, 8}) {
    if (c <= rows * 2 - 1 && static_cast<size_t>(c) * K * elem <= kMaxStageBytes) tt = c;
  }
  return tt;
}

template <typename T, int R, bool kSwiGlu>
cudaError_t LaunchOne(int tt, const T* x, const int32_t* row_token, const int32_t* counts,
                      const int32_t* offsets, const int32_t* active, int max_active,
                      const T* const* weights, int64_t N, int64_t K, T* out_act, float* out_f,
                      cudaStream_t stream) {
  const dim3 grid(detail::CeilDiv(N, kWarps * R), static_cast<unsigned>(max_active));
  const size_t smem = static_cast<size_t>(tt) * K * sizeof(T);
#define MOE_SBE_CASE(TTV)                                                                  \
  case TTV:                                                                                \
    ExpertGemvKernel<T, TTV, R, kSwiGlu><<<grid, kWarps * 32, smem, stream>>>(            \
        x, row_token, counts, offsets, active, weights, N, K, out_act, out_f);            \
    break;
  switch (tt) {
    MOE_SBE_CASE(1)
    MOE_SBE_CASE(2)
    MOE_SBE_CASE(4)
    MOE_SBE_CASE(8)
    default: return cudaErrorInvalidValue;
  }
#undef MOE_SBE_CASE
  return cudaGetLastError();
}

}  // namespace

bool SmallBatchExpertsSupported(int64_t hidden, int64_t inter, size_t elem_size) {
  if (elem_size != 2 && elem_size != 4) return false;
  const int64_t v = 16 / static_cast<int64_t>(elem_size);
  return hidden > 0 && inter > 0 && hidden % v == 0 && inter % v == 0 &&
         static_cast<size_t>(std::max(hidden, inter)) * elem_size <= kMaxStageBytes;
}

template <typename T>
cudaError_t LaunchSmallBatchExperts(const T* x, const int32_t* row_token, const int32_t* counts,
                                    const int32_t* offsets, const int32_t* active, int max_active,
                                    int64_t max_rows_per_expert, const T* const* gate_up,
                                    const T* const* down, int64_t hidden, int64_t inter,
                                    T* act_buf, float* out, cudaStream_t stream) {
  if (!SmallBatchExpertsSupported(hidden, inter, sizeof(T)) || max_active > 65535) {
    return cudaErrorInvalidValue;
  }
  if (max_active <= 0 || max_rows_per_expert <= 0) return cudaSuccess;
  // gate/up: 2 output rows (4 weight rows) per warp; down: 4 rows per warp.
  cudaError_t e = LaunchOne<T, 2, true>(PickTT(max_rows_per_expert, hidden, sizeof(T)), x,
                                        row_token, counts, offsets, active, max_active, gate_up,
                                        inter, hidden, act_buf, nullptr, stream);
  if (e != cudaSuccess) return e;
  return LaunchOne<T, 4, false>(PickTT(max_rows_per_expert, inter, sizeof(T)), act_buf, nullptr,
                                counts, offsets, active, max_active, down, hidden, inter, nullptr,
                                out, stream);
}

#define MOE_SBE_INST(T)                                                                   \
  template cudaError_t LaunchSmallBatchExperts<T>(                                        \
      const T*, const int32_t*, const int32_t*, const int32_t*, const int32_t*, int, int64_t, \
      const T* const*, const T* const*, int64_t, int64_t, T*, float*, cudaStream_t);
MOE_SBE_INST(__nv_bfloat16)
MOE_SBE_INST(__half)
MOE_SBE_INST(float)

}  // namespace moe::kernels::cuda
