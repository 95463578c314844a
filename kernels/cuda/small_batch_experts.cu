#include "kernels/cuda/small_batch_experts.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

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


// ---- Tensor-core variant (bf16 / fp16): mma.sync m16n8k16, weights as the A operand ----
//
// A block of kMmaWarps warps owns 16 output rows of one expert (gate/up: the 16 gate rows
// and the matching 16 up rows, i.e. two 16-row A tiles) or 32 down rows (two tiles), and
// splits K over its warps: warp w takes the 32-element K chunks w, w + kMmaWarps, ...
// Within a chunk, lane (g = lane / 4, q = lane % 4) loads one 16-byte vector (elements
// 8q..8q+7 of the chunk) of weight rows g and g + 8 of each tile and the same elements of
// input row g of each 8-row token tile; the dot product's K order is free, so the chunk's
// 32 elements are fed to two k16 MMAs in the order that makes those registers exactly the
// A / B fragments (no shuffles, no shared-memory staging). Each thread keeps kU chunks
// (kU * 2 tiles * 2 rows * 16 B) of weights in flight. Partial sums of the warps are added
// in shared memory (fixed order, deterministic); token rows are taken 8 * NT at a time.
constexpr int kMmaWarps = 8;

__device__ __forceinline__ uint4 LdWeight(const void* p) {
  uint4 r;  // volatile: never speculated past the caller's bounds check
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

__device__ __forceinline__ void Mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                    uint32_t a3, uint32_t b0, uint32_t b1, const detail::bf16*) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void Mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                    uint32_t a3, uint32_t b0, uint32_t b1, const detail::f16*) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Two k16 MMAs over one 32-element chunk: wg / wh hold elements 8q..8q+7 of weight rows g
// and g + 8, xv the same elements of token row g. MMA s uses words 2s (fragment columns
// 2q, 2q+1) and 2s + 1 (columns 2q + 8, 2q + 9) of each: the same K elements in A and B.
template <typename T>
__device__ __forceinline__ void MmaChunk(float (&d)[4], const uint4& wg, const uint4& wh,
                                         const uint4& xv) {
  Mma(d, wg.x, wh.x, wg.y, wh.y, xv.x, xv.y, static_cast<const T*>(nullptr));
  Mma(d, wg.z, wh.z, wg.w, wh.w, xv.z, xv.w, static_cast<const T*>(nullptr));
}

// kSwiGlu: weights [2N, K], tile 0 = gate rows row0.., tile 1 = up rows N + row0..,
// output act (T). Else weights [N, K], tiles = rows row0.. and row0 + 16.., output fp32.
// Accumulator element i of a thread: weight row g + 8 * (i / 2), token column 2q + i % 2.
template <typename T, int NT, int kU, bool kSwiGlu>
__global__ void __launch_bounds__(kMmaWarps * 32, 2)
    ExpertMmaKernel(const T* __restrict__ x, const int32_t* __restrict__ row_token,
                    const int32_t* __restrict__ counts, const int32_t* __restrict__ offsets,
                    const int32_t* __restrict__ active, const T* const* __restrict__ weights,
                    int64_t N, int64_t K, T* __restrict__ out_act, float* __restrict__ out_f) {
  constexpr int MT = 2;  // 16-row weight tiles per block
  constexpr int kRows = kSwiGlu ? 16 : 16 * MT;
  __shared__ float s_red[kMmaWarps][NT * MT * 4][32];
  const int slot = blockIdx.y;
  if (slot >= active[0]) return;
  const int e = active[1 + slot];
  const int n = counts[e], r0 = offsets[e];
  if (n == 0) return;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, q = lane & 3;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const T* W = weights[e];
  const T* wrow[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t local = kSwiGlu ? row0 + g + 8 * h : row0 + 16 * mt + g + 8 * h;
      const int64_t row = min(local, N - 1) + (kSwiGlu ? mt * N : 0);  // past N: never stored
      wrow[mt][h] = W + row * K + q * 8;
    }
  const int64_t nchunks = (K + 31) / 32;
  for (int t0 = 0; t0 < n; t0 += 8 * NT) {
    const T* xrow[NT];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int t = t0 + 8 * nt + g;
      const int r = r0 + min(t, n - 1);  // rows past n read a copy; their columns are dropped
      const int64_t src = row_token != nullptr ? row_token[r] : r;
      xrow[nt] = x + src * K + q * 8;
    }
    float acc[NT][MT][4];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[nt][mt][i] = 0.f;
    for (int64_t c0 = warp; c0 < nchunks; c0 += kMmaWarps * kU) {
      uint4 w[kU][MT][2], xv[kU][NT];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int64_t k = (c0 + u * kMmaWarps) * 32;
        const bool in = k + q * 8 < K;  // K % 8 == 0: a vector is wholly in or out
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) w[u][mt][h] = in ? LdWeight(wrow[mt][h] + k) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          xv[u][nt] = in && t0 + 8 * nt < n ? __ldg(reinterpret_cast<const uint4*>(xrow[nt] + k))
                                            : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kU; ++u)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          if (t0 + 8 * nt >= n) continue;  // warp-uniform
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) MmaChunk<T>(acc[nt][mt], w[u][mt][0], w[u][mt][1], xv[u][nt]);
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int i = 0; i < 4; ++i) s_red[warp][(nt * MT + mt) * 4 + i][lane] = acc[nt][mt][i];
    __syncthreads();
    // Output (nt, mt, i, ln): weight row 16 * mt + (ln / 4) + 8 * (i / 2) of the block
    // (gate/up: mt is gate vs up), token t0 + 8 * nt + 2 * (ln % 4) + i % 2.
    constexpr int kOut = NT * (kSwiGlu ? 1 : MT) * 4 * 32;
    for (int o = threadIdx.x; o < kOut; o += kMmaWarps * 32) {
      const int ln = o & 31, i = (o >> 5) & 3, rest = o >> 7;
      const int mt = kSwiGlu ? 0 : rest % MT, nt = kSwiGlu ? rest : rest / MT;
      const int tok = t0 + 8 * nt + 2 * (ln & 3) + (i & 1);
      const int64_t col = row0 + (kSwiGlu ? 0 : 16 * mt) + (ln >> 2) + 8 * (i >> 1);
      float a = 0.f, b = 0.f;
#pragma unroll
      for (int w = 0; w < kMmaWarps; ++w) {
        a += s_red[w][(nt * MT + mt) * 4 + i][ln];
        if (kSwiGlu) b += s_red[w][(nt * MT + 1) * 4 + i][ln];
      }
      if (tok < n && col < N) {
        const int64_t out_row = r0 + tok;
        if (kSwiGlu) {
          const float silu = a / (1.f + __expf(-a));
          out_act[out_row * N + col] = detail::FromF32<T>(silu * b);
        } else {
          out_f[out_row * N + col] = a;
        }
      }
    }
    __syncthreads();  // s_red is reused by the next token tile
  }
}

template <typename T, bool kSwiGlu>
cudaError_t LaunchMma(int64_t rows, const T* x, const int32_t* row_token, const int32_t* counts,
                      const int32_t* offsets, const int32_t* active, int max_active,
                      const T* const* weights, int64_t N, int64_t K, T* out_act, float* out_f,
                      cudaStream_t stream) {
  const dim3 grid(detail::CeilDiv(N, kSwiGlu ? 16 : 32), static_cast<unsigned>(max_active));
  if (rows <= 8) {
    ExpertMmaKernel<T, 1, 4, kSwiGlu><<<grid, kMmaWarps * 32, 0, stream>>>(
        x, row_token, counts, offsets, active, weights, N, K, out_act, out_f);
  } else {
    ExpertMmaKernel<T, 2, 3, kSwiGlu><<<grid, kMmaWarps * 32, 0, stream>>>(
        x, row_token, counts, offsets, active, weights, N, K, out_act, out_f);
  }
  return cudaGetLastError();
}

// ---- launch-time choice ----

// MOE_SBE_KERNEL=fma|mma (read once); unset: mma for 16-bit types.
SmallBatchExpertsKernel EnvKernel() {
  static const SmallBatchExpertsKernel k = [] {
    const char* v = std::getenv("MOE_SBE_KERNEL");
    if (v != nullptr && std::strcmp(v, "fma") == 0) return SmallBatchExpertsKernel::kFma;
    if (v != nullptr && std::strcmp(v, "mma") == 0) return SmallBatchExpertsKernel::kMma;
    return SmallBatchExpertsKernel::kDefault;
  }();
  return k;
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
cudaError_t LaunchSmallBatchExpertsVariant(
    const T* x, const int32_t* row_token, const int32_t* counts, const int32_t* offsets,
    const int32_t* active, int max_active, int64_t max_rows_per_expert, const T* const* gate_up,
    const T* const* down, int64_t hidden, int64_t inter, T* act_buf, float* out,
    SmallBatchExpertsKernel kernel, int stages, cudaStream_t stream) {
  if (!SmallBatchExpertsSupported(hidden, inter, sizeof(T)) || max_active > 65535) {
    return cudaErrorInvalidValue;
  }
  if (max_active <= 0 || max_rows_per_expert <= 0) return cudaSuccess;
  if (kernel == SmallBatchExpertsKernel::kDefault) kernel = EnvKernel();
  const bool mma = sizeof(T) == 2 && kernel != SmallBatchExpertsKernel::kFma;
  cudaError_t e = cudaSuccess;
  if (stages & kSmallBatchExpertsGateUp) {
    // FMA path: 2 output rows (4 weight rows) per warp.
    if constexpr (sizeof(T) == 2) {
      if (mma) {
        e = LaunchMma<T, true>(max_rows_per_expert, x, row_token, counts, offsets, active,
                               max_active, gate_up, inter, hidden, act_buf, nullptr, stream);
      }
    }
    if (!mma) {
      e = LaunchOne<T, 2, true>(PickTT(max_rows_per_expert, hidden, sizeof(T)), x, row_token,
                                counts, offsets, active, max_active, gate_up, inter, hidden,
                                act_buf, nullptr, stream);
    }
    if (e != cudaSuccess) return e;
  }
  if (stages & kSmallBatchExpertsDown) {
    // FMA path: 4 rows per warp.
    if constexpr (sizeof(T) == 2) {
      if (mma) {
        e = LaunchMma<T, false>(max_rows_per_expert, act_buf, nullptr, counts, offsets, active,
                                max_active, down, hidden, inter, nullptr, out, stream);
      }
    }
    if (!mma) {
      e = LaunchOne<T, 4, false>(PickTT(max_rows_per_expert, inter, sizeof(T)), act_buf, nullptr,
                                 counts, offsets, active, max_active, down, hidden, inter,
                                 nullptr, out, stream);
    }
  }
  return e;
}

template <typename T>
cudaError_t LaunchSmallBatchExperts(const T* x, const int32_t* row_token, const int32_t* counts,
                                    const int32_t* offsets, const int32_t* active, int max_active,
                                    int64_t max_rows_per_expert, const T* const* gate_up,
                                    const T* const* down, int64_t hidden, int64_t inter,
                                    T* act_buf, float* out, cudaStream_t stream) {
  return LaunchSmallBatchExpertsVariant(
      x, row_token, counts, offsets, active, max_active, max_rows_per_expert, gate_up, down,
      hidden, inter, act_buf, out, SmallBatchExpertsKernel::kDefault,
      kSmallBatchExpertsGateUp | kSmallBatchExpertsDown, stream);
}

#define MOE_SBE_INST(T)                                                                   \
  template cudaError_t LaunchSmallBatchExperts<T>(                                        \
      const T*, const int32_t*, const int32_t*, const int32_t*, const int32_t*, int, int64_t, \
      const T* const*, const T* const*, int64_t, int64_t, T*, float*, cudaStream_t);     \
  template cudaError_t LaunchSmallBatchExpertsVariant<T>(                                 \
      const T*, const int32_t*, const int32_t*, const int32_t*, const int32_t*, int, int64_t, \
      const T* const*, const T* const*, int64_t, int64_t, T*, float*,                     \
      SmallBatchExpertsKernel, int, cudaStream_t);
MOE_SBE_INST(__nv_bfloat16)
MOE_SBE_INST(__half)
MOE_SBE_INST(float)

}  // namespace moe::kernels::cuda
