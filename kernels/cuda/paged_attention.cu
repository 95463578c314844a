// The prefill path and the KV cache writer of the paged attention kernels (declared in
// paged_attention.h). The decode path is in paged_attention_decode.cu.
//
// Prefill over bf16 / fp16 caches with head_dim 64, 80, 96 or 128 runs the tensor-core
// kernel (paged_attention_prefill_mma.cu); other head sizes, fp32 caches, and any call
// while the environment holds MOE_ATTN_PREFILL=simt (for comparison) run the CUDA-core
// kernel below.
#include "kernels/cuda/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/paged_attention_common.cuh"
#include "kernels/cuda/paged_attention_prefill_mma.cuh"

namespace moe::kernels::cuda {
namespace {

using attn::CacheRow;
using attn::kKeyTile;
using attn::kWarps;
using attn::PickDpl;
using detail::bf16;
using detail::f16;

constexpr int kQPerWarp = kPrefillTileRows / kWarps;

template <typename T>
__global__ void WriteKvKernel(const float* k, const float* v, int64_t src_stride,
                              const int32_t* slots, int kv_row, T* k_cache, T* v_cache) {
  const int64_t t = blockIdx.x;
  const int64_t dst = static_cast<int64_t>(slots[t]) * kv_row;
  for (int i = threadIdx.x; i < kv_row; i += blockDim.x) {
    k_cache[dst + i] = detail::FromF32<T>(k[t * src_stride + i]);
    v_cache[dst + i] = detail::FromF32<T>(v[t * src_stride + i]);
  }
}

// ---------------------------------------------------------------------------------------
// Prefill, CUDA cores: grid (num_tiles, num_heads), kWarps warps, each warp kQPerWarp
// queries.
template <typename T, int DPL>
__global__ void __launch_bounds__(kWarps * 32)
    PrefillKernel(const PagedAttentionParamsT<T> p, const int32_t* tiles) {
  extern __shared__ float smem[];
  const int hd = p.head_dim;
  const int kstride = hd + (hd % 2 == 0 ? 1 : 0);  // odd stride: conflict-free rows
  float* sq = smem;                                 // [kPrefillTileRows][hd]
  float* sk = sq + kPrefillTileRows * hd;           // [kKeyTile][kstride]
  float* sv = sk + kKeyTile * kstride;              // [kKeyTile][hd]

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const CudaAttnSeq seq = p.seqs[tiles[2 * blockIdx.x]];
  const int row0 = tiles[2 * blockIdx.x + 1];
  const int h = blockIdx.y;
  const int kvh = h / (p.num_heads / p.num_kv_heads);
  const int32_t* table = p.block_tables + seq.block_table_offset;
  const int rows = min(kPrefillTileRows, seq.num_tokens - row0);

  for (int i = threadIdx.x; i < kPrefillTileRows * hd; i += blockDim.x) {
    const int r = i / hd, d = i - r * hd;
    sq[i] = r < rows ? p.q[(seq.token_begin + row0 + r) * p.q_stride + h * hd + d] * p.scale
                     : 0.f;
  }
  const int first_pos = seq.start_pos + row0;
  const int last_pos = first_pos + rows - 1;
  int kv_lo = 0;
  if (p.sliding_window > 0) kv_lo = max(0, first_pos - p.sliding_window + 1);
  const int kv_hi = last_pos + 1;

  float m[kQPerWarp], l[kQPerWarp], acc[kQPerWarp][DPL];
#pragma unroll
  for (int qi = 0; qi < kQPerWarp; ++qi) {
    m[qi] = -INFINITY;
    l[qi] = 0.f;
#pragma unroll
    for (int j = 0; j < DPL; ++j) acc[qi][j] = 0.f;
  }

  for (int base = kv_lo; base < kv_hi; base += kKeyTile) {
    __syncthreads();  // previous tile consumed (and sq written, first time)
    for (int i = threadIdx.x; i < kKeyTile * hd; i += blockDim.x) {
      const int key = i / hd, d = i - key * hd;
      const int pos = base + key;
      float kx = 0.f, vx = 0.f;
      if (pos < kv_hi) {
        const int64_t off = CacheRow(p, table, pos, kvh) + d;
        kx = detail::ToF32(p.k_cache[off]);
        vx = detail::ToF32(p.v_cache[off]);
      }
      sk[key * kstride + d] = kx;
      sv[key * hd + d] = vx;
    }
    __syncthreads();
    const int kpos = base + lane;
#pragma unroll
    for (int qi = 0; qi < kQPerWarp; ++qi) {
      const int r = warp * kQPerWarp + qi;
      if (r >= rows) continue;  // warp-uniform
      const int qpos = first_pos + r;
      const float* qr = sq + r * hd;
      const float* kr = sk + lane * kstride;
      float s = 0.f;
      for (int d = 0; d < hd; ++d) s += qr[d] * kr[d];
      bool ok = kpos <= qpos && kpos < kv_hi;
      if (p.sliding_window > 0 && qpos - kpos >= p.sliding_window) ok = false;
      s = ok ? s : -INFINITY;
      const float m_new = fmaxf(m[qi], detail::WarpMax(s));
      if (m_new == -INFINITY) continue;  // warp-uniform: nothing visible yet
      const float corr = expf(m[qi] - m_new);
      const float pr = ok ? expf(s - m_new) : 0.f;
      l[qi] = l[qi] * corr + detail::WarpSum(pr);
      m[qi] = m_new;
#pragma unroll
      for (int j = 0; j < DPL; ++j) acc[qi][j] *= corr;
      for (int key = 0; key < kKeyTile; ++key) {
        const float pk = __shfl_sync(0xffffffffu, pr, key);
        const float* vr = sv + key * hd;
#pragma unroll
        for (int j = 0; j < DPL; ++j) {
          const int d = lane + 32 * j;
          if (d < hd) acc[qi][j] += pk * vr[d];
        }
      }
    }
  }
#pragma unroll
  for (int qi = 0; qi < kQPerWarp; ++qi) {
    const int r = warp * kQPerWarp + qi;
    if (r >= rows) continue;
    T* o = p.out + (seq.token_begin + row0 + r) * p.out_stride + h * hd;
    const float inv = 1.f / l[qi];
#pragma unroll
    for (int j = 0; j < DPL; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) o[d] = detail::FromF32<T>(acc[qi][j] * inv);
    }
  }
}

template <typename T, int DPL>
cudaError_t Prefill(const PagedAttentionParamsT<T>& p, const int32_t* tiles, int num_tiles,
                    cudaStream_t stream) {
  const int hd = p.head_dim;
  const int kstride = hd + (hd % 2 == 0 ? 1 : 0);
  const size_t smem = sizeof(float) * (kPrefillTileRows * hd + kKeyTile * kstride + kKeyTile * hd);
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(PrefillKernel<T, DPL>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  PrefillKernel<T, DPL><<<dim3(num_tiles, p.num_heads), kWarps * 32, smem, stream>>>(p, tiles);
  return cudaGetLastError();
}

template <typename T>
cudaError_t WriteKvCache(const float* k, const float* v, int64_t src_stride,
                         int64_t num_tokens, const int32_t* slots, int kv_row,
                         T* k_cache, T* v_cache, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  WriteKvKernel<T><<<static_cast<unsigned>(num_tokens), 256, 0, stream>>>(k, v, src_stride, slots,
                                                                       kv_row, k_cache, v_cache);
  return cudaGetLastError();
}

// MOE_ATTN_PREFILL=simt keeps the CUDA-core kernel (read at every launch, so a benchmark
// can switch with setenv between launches; nothing else may setenv concurrently).
bool PrefillSimtRequested() {
  const char* e = std::getenv("MOE_ATTN_PREFILL");
  return e != nullptr && std::strcmp(e, "simt") == 0;
}

template <typename T>
cudaError_t PrefillAttention(const PagedAttentionParamsT<T>& p, const int32_t* tiles,
                             int num_tiles, cudaStream_t stream) {
  if (num_tiles <= 0) return cudaSuccess;
  if (p.head_dim <= 0 || p.head_dim > kMaxHeadDim || p.num_kv_heads <= 0 ||
      p.num_heads % p.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  if constexpr (!std::is_same_v<T, float>) {
    if (!PrefillSimtRequested() && attn::PrefillMmaSupports(p.head_dim, p.k_cache, p.v_cache)) {
      return attn::LaunchPrefillMma(p, tiles, num_tiles, stream);
    }
  }
  switch (PickDpl(p.head_dim)) {
    case 2: return Prefill<T, 2>(p, tiles, num_tiles, stream);
    case 3: return Prefill<T, 3>(p, tiles, num_tiles, stream);
    case 4: return Prefill<T, 4>(p, tiles, num_tiles, stream);
    default: return Prefill<T, 8>(p, tiles, num_tiles, stream);
  }
}

}  // namespace

#define MOE_ATTN_OVERLOADS(T)                                                               \
  cudaError_t LaunchWriteKvCache(const float* k, const float* v, int64_t src_stride,          \
                                 int64_t num_tokens, const int32_t* slots, int kv_row,        \
                                 T* k_cache, T* v_cache, cudaStream_t stream) {               \
    return WriteKvCache<T>(k, v, src_stride, num_tokens, slots, kv_row, k_cache, v_cache,     \
                           stream);                                                           \
  }                                                                                           \
  cudaError_t LaunchPrefillAttention(const PagedAttentionParamsT<T>& p, const int32_t* tiles, \
                                     int num_tiles, cudaStream_t stream) {                    \
    return PrefillAttention<T>(p, tiles, num_tiles, stream);                                  \
  }
MOE_ATTN_OVERLOADS(bf16)
MOE_ATTN_OVERLOADS(f16)
MOE_ATTN_OVERLOADS(float)
#undef MOE_ATTN_OVERLOADS

}  // namespace moe::kernels::cuda
