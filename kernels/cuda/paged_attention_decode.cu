// The decode path of the paged attention kernels (declared in paged_attention.h): one query
// per sequence, the context split into num_splits parts (flash-decoding). A vectorised
// kernel (16-byte K/V loads) where head_dim and the caches' alignment allow, a scalar
// kernel otherwise. With more than one split (or the scalar kernel) the splits' partial
// results are merged either by the split blocks themselves (the last block of each
// (sequence, head) to finish, found with a counter in the workspace: the default) or by a
// second kernel (MOE_ATTN_DECODE_MERGE=kernel). Both merges run MergeSplits below, so
// their outputs are bit-identical.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/paged_attention_common.cuh"
#include "kernels/cuda/pdl.cuh"

namespace moe::kernels::cuda {
namespace {

using attn::CacheRow;
using attn::kKeyTile;
using attn::kWarps;
using attn::PickDpl;
using detail::bf16;
using detail::f16;

// Partials of one (sequence, head): num_splits records of (m, l, acc[hd]), hd + 2 floats.
// Record of split `split` for decode entry di, head h (after the counter words).
__device__ __forceinline__ float* PartialRecord(float* ws, int di, int num_heads, int h,
                                               int num_splits, int split, int hd) {
  return ws + kDecodeMergeCounters +
         ((static_cast<int64_t>(di) * num_heads + h) * num_splits + split) * (hd + 2);
}

// Merges the num_splits partial records at `part` into out[0, hd) (run by a whole block of
// kWarps warps; s_w: num_splits floats of shared memory). Warp 0 finds the max and the
// softmax denominator over the splits once; every thread then sums its dims' partials
// with those weights, splits in ascending order. The loads bypass L1 (__ldcg): in the
// in-kernel merge the records were written by other blocks of the same launch.
template <typename T>
__device__ __forceinline__ void MergeSplits(const float* part, int num_splits, int hd,
                                            float* s_w, T* o) {
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    float mm = -INFINITY;
    for (int s = lane; s < num_splits; s += 32) mm = fmaxf(mm, __ldcg(part + s * (hd + 2)));
    mm = detail::WarpMax(mm);
    float ll = 0.f;
    for (int s = lane; s < num_splits; s += 32) {
      const float ms = __ldcg(part + s * (hd + 2));
      const float w = ms == -INFINITY ? 0.f : expf(ms - mm);
      s_w[s] = w;
      ll += __ldcg(part + s * (hd + 2) + 1) * w;
    }
    ll = detail::WarpSum(ll);
    __syncwarp();
    const float inv = 1.f / ll;
    for (int s = lane; s < num_splits; s += 32) s_w[s] *= inv;
  }
  __syncthreads();
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < num_splits; ++s) {
      const float w = s_w[s];
      if (w != 0.f) a += __ldcg(part + s * (hd + 2) + 2 + d) * w;
    }
    o[d] = detail::FromF32<T>(a);
  }
}

// The in-kernel merge: called by every block of a split launch after it wrote its
// partial record (all threads). Each block's writes are fenced, then one thread bumps
// the (sequence, head) counter with atomicInc, which wraps to 0 at the last arrival (so
// the counter is back at 0 for the next launch or graph replay); that last block merges.
constexpr int kMergeMaxSplits = 64;  // s_w of the in-kernel merge; more: the merge kernel

template <typename T>
__device__ __forceinline__ void MergeIfLast(const PagedAttentionParamsT<T>& p, float* ws,
                                            int di, int h, int num_splits,
                                            const CudaAttnSeq& seq) {
  __shared__ float s_w[kMergeMaxSplits];
  __shared__ bool s_last;
  __threadfence();  // this block's record is visible device-wide before the count
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* counter = reinterpret_cast<unsigned*>(ws) + (di * p.num_heads + h);
    const unsigned prev = atomicInc(counter, static_cast<unsigned>(num_splits - 1));
    s_last = prev == static_cast<unsigned>(num_splits - 1);
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();  // the other blocks' records are read after their counts
  const float* part = PartialRecord(ws, di, p.num_heads, h, num_splits, 0, p.head_dim);
  T* o = p.out + static_cast<int64_t>(seq.token_begin) * p.out_stride +
         static_cast<int64_t>(h) * p.head_dim;
  MergeSplits<T>(part, num_splits, p.head_dim, s_w, o);
}

// ---------------------------------------------------------------------------------------
// Decode: grid (num_heads, num_decode, num_splits). Each warp takes tiles of 32 keys in
// turn; lane i scores key i, then the warp accumulates P·V with lanes owning dims.
// Partial results (m, l, unnormalised acc[hd]) go to the workspace.
template <typename T, int DPL>
__global__ void __launch_bounds__(kWarps * 32)
    DecodeKernel(const PagedAttentionParamsT<T> p, const int32_t* decode_seqs, int num_splits,
                 float* ws, bool merge_here) {
  __shared__ float sq[kMaxHeadDim];
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][kMaxHeadDim];
  pdl::WaitPredecessor();
  const int hd = p.head_dim;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int h = blockIdx.x, di = blockIdx.y, split = blockIdx.z;
  const CudaAttnSeq seq = p.seqs[decode_seqs[di]];
  const int kvh = h / (p.num_heads / p.num_kv_heads);
  const int32_t* table = p.block_tables + seq.block_table_offset;
  const int qpos = seq.start_pos;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    sq[d] = p.q[static_cast<int64_t>(seq.token_begin) * p.q_stride + h * hd + d] * p.scale;
  }
  __syncthreads();
  const int ctx = qpos + 1;
  int lo = 0;
  if (p.sliding_window > 0) lo = max(0, qpos - p.sliding_window + 1);
  const int span = ctx - lo;
  const int per_split = (span + num_splits - 1) / num_splits;
  const int s_lo = lo + split * per_split;
  const int s_hi = min(ctx, s_lo + per_split);

  float m = -INFINITY, l = 0.f, acc[DPL];
#pragma unroll
  for (int j = 0; j < DPL; ++j) acc[j] = 0.f;
  for (int base = s_lo + warp * kKeyTile; base < s_hi; base += kWarps * kKeyTile) {
    const int kpos = base + lane;
    const bool ok = kpos < s_hi;
    int64_t row = 0;
    float s = -INFINITY;
    if (ok) {
      row = CacheRow(p, table, kpos, kvh);
      const T* kr = p.k_cache + row;
      float dot = 0.f;
      if constexpr (!std::is_same_v<T, bf16>) {
        for (int d = 0; d < hd; ++d) dot += sq[d] * detail::ToF32(kr[d]);
      } else if (hd % 8 == 0) {
        for (int d = 0; d < hd; d += 8) {
          const uint4 u = *reinterpret_cast<const uint4*>(kr + d);
          const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float2 f = __bfloat1622float2(b[e]);
            dot += sq[d + 2 * e] * f.x + sq[d + 2 * e + 1] * f.y;
          }
        }
      } else {
        for (int d = 0; d < hd; ++d) dot += sq[d] * detail::ToF32(kr[d]);
      }
      s = dot;
    }
    const float m_new = fmaxf(m, detail::WarpMax(s));
    const float corr = expf(m - m_new);  // m_new is finite: key s_lo.. is visible
    const float pr = ok ? expf(s - m_new) : 0.f;
    l = l * corr + detail::WarpSum(pr);
    m = m_new;
#pragma unroll
    for (int j = 0; j < DPL; ++j) acc[j] *= corr;
    const int nkeys = min(kKeyTile, s_hi - base);
    for (int key = 0; key < nkeys; ++key) {
      const float pk = __shfl_sync(0xffffffffu, pr, key);
      const int64_t vrow = __shfl_sync(0xffffffffu, row, key);
      const T* vr = p.v_cache + vrow;
#pragma unroll
      for (int j = 0; j < DPL; ++j) {
        const int d = lane + 32 * j;
        if (d < hd) acc[j] += pk * detail::ToF32(vr[d]);
      }
    }
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int j = 0; j < DPL; ++j) {
    const int d = lane + 32 * j;
    if (d < hd) s_acc[warp][d] = acc[j];
  }
  __syncthreads();
  float mm = -INFINITY;
  for (int w = 0; w < kWarps; ++w) mm = fmaxf(mm, s_m[w]);
  float* out = PartialRecord(ws, di, p.num_heads, h, num_splits, split, hd);
  if (mm == -INFINITY) {  // empty split
    for (int d = threadIdx.x; d < hd + 2; d += blockDim.x) out[d] = d == 0 ? -INFINITY : 0.f;
  } else {
    float ll = 0.f;
    for (int w = 0; w < kWarps; ++w) ll += s_m[w] == -INFINITY ? 0.f : s_l[w] * expf(s_m[w] - mm);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      float a = 0.f;
      for (int w = 0; w < kWarps; ++w) {
        if (s_m[w] != -INFINITY) a += s_acc[w][d] * expf(s_m[w] - mm);
      }
      out[2 + d] = a;
    }
    if (threadIdx.x == 0) {
      out[0] = mm;
      out[1] = ll;
    }
  }
  if (merge_here) MergeIfLast(p, ws, di, h, num_splits, seq);
}

// ---------------------------------------------------------------------------------------
// Vectorised decode: grid (num_heads, num_decode, num_splits), kWarps warps. A "group" of
// TPK lanes owns one key at a time; lane `sub` of a group holds 16-byte chunks sub,
// sub + TPK, ... (CPL of them) of q, K and V, so each K / V row is read with 16-byte
// loads. Each group walks kDecodeUnroll consecutive keys per iteration (all their K and
// V loads issued together) with its own online softmax in registers; the groups are
// merged through shared memory at the end. With num_splits == 1 the block writes the
// normalised output directly (no reduce pass).
constexpr int kDecodeUnroll = 4;

template <typename T>
struct Vec16 {
  static constexpr int kN = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void Unpack16(const uint4& u, float* f) {
  if constexpr (std::is_same_v<T, bf16>) {
    const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __bfloat1622float2(b[e]);
      f[2 * e] = x.x;
      f[2 * e + 1] = x.y;
    }
  } else if constexpr (std::is_same_v<T, f16>) {
    const __half2* b = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float2 x = __half22float2(b[e]);
      f[2 * e] = x.x;
      f[2 * e + 1] = x.y;
    }
  } else {
    f[0] = __uint_as_float(u.x);
    f[1] = __uint_as_float(u.y);
    f[2] = __uint_as_float(u.z);
    f[3] = __uint_as_float(u.w);
  }
}

template <typename T, int TPK, int CPL>
__global__ void __launch_bounds__(kWarps * 32)
    DecodeVecKernel(const PagedAttentionParamsT<T> p, const int32_t* decode_seqs, int num_splits,
                    float* ws, bool merge_here) {
  constexpr int VEC = Vec16<T>::kN;
  constexpr int EPL = CPL * VEC;          // elements per lane
  constexpr int G = kWarps * 32 / TPK;    // key groups per block
  constexpr int U = kDecodeUnroll;
  constexpr int ROW = TPK * EPL;          // >= head_dim
  __shared__ float s_m[G], s_l[G], s_f[G];
  __shared__ float s_acc[G * ROW];
  pdl::WaitPredecessor();
  const int hd = p.head_dim;
  const int chunks = hd / VEC;
  const int lane = threadIdx.x & 31;
  const int sub = lane & (TPK - 1);
  const int grp = threadIdx.x / TPK;
  const int h = blockIdx.x, di = blockIdx.y, split = blockIdx.z;
  const CudaAttnSeq seq = p.seqs[decode_seqs[di]];
  const int kvh = h / (p.num_heads / p.num_kv_heads);
  const int32_t* table = p.block_tables + seq.block_table_offset;
  const int qpos = seq.start_pos;

  float q[EPL];
  const float* qrow = p.q + static_cast<int64_t>(seq.token_begin) * p.q_stride +
                      static_cast<int64_t>(h) * hd;
#pragma unroll
  for (int j = 0; j < CPL; ++j) {
    const int c = sub + TPK * j;
#pragma unroll
    for (int e = 0; e < VEC; ++e) q[j * VEC + e] = c < chunks ? qrow[c * VEC + e] * p.scale : 0.f;
  }

  const int ctx = qpos + 1;
  int lo = 0;
  if (p.sliding_window > 0) lo = max(0, qpos - p.sliding_window + 1);
  const int span = ctx - lo;
  const int per_split = (span + num_splits - 1) / num_splits;
  const int s_lo = lo + split * per_split;
  const int s_hi = min(ctx, s_lo + per_split);

  float m = -INFINITY, l = 0.f, acc[EPL];
#pragma unroll
  for (int e = 0; e < EPL; ++e) acc[e] = 0.f;
  const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);
  for (int base = s_lo; base < s_hi; base += G * U) {  // block-uniform trip count
    uint4 kv[U][CPL], vv[U][CPL];
    bool ok[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int pos = base + grp * U + u;
      ok[u] = pos < s_hi;
      const int64_t row = ok[u] ? CacheRow(p, table, pos, kvh) : 0;
#pragma unroll
      for (int j = 0; j < CPL; ++j) {
        const int c = sub + TPK * j;
        const bool ld = ok[u] && c < chunks;
        kv[u][j] = ld ? *reinterpret_cast<const uint4*>(p.k_cache + row + c * VEC) : zero4;
        vv[u][j] = ld ? *reinterpret_cast<const uint4*>(p.v_cache + row + c * VEC) : zero4;
      }
    }
    float s[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float dot = 0.f;
#pragma unroll
      for (int j = 0; j < CPL; ++j) {
        float f[VEC];
        Unpack16<T>(kv[u][j], f);
#pragma unroll
        for (int e = 0; e < VEC; ++e) dot += q[j * VEC + e] * f[e];
      }
#pragma unroll
      for (int o = TPK / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      s[u] = ok[u] ? dot : -INFINITY;
    }
    float m_new = m;
#pragma unroll
    for (int u = 0; u < U; ++u) m_new = fmaxf(m_new, s[u]);
    if (m_new == -INFINITY) continue;  // group-uniform: no visible key yet
    const float corr = expf(m - m_new);
    l *= corr;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[e] *= corr;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const float pr = ok[u] ? expf(s[u] - m_new) : 0.f;
      l += pr;
#pragma unroll
      for (int j = 0; j < CPL; ++j) {
        float f[VEC];
        Unpack16<T>(vv[u][j], f);
#pragma unroll
        for (int e = 0; e < VEC; ++e) acc[j * VEC + e] += pr * f[e];
      }
    }
    m = m_new;
  }

  if (sub == 0) {
    s_m[grp] = m;
    s_l[grp] = l;
  }
#pragma unroll
  for (int j = 0; j < CPL; ++j) {
    const int c = sub + TPK * j;
    if (c < chunks) {
#pragma unroll
      for (int e = 0; e < VEC; ++e) s_acc[grp * ROW + c * VEC + e] = acc[j * VEC + e];
    }
  }
  __syncthreads();
  float mm = -INFINITY;
  for (int g = 0; g < G; ++g) mm = fmaxf(mm, s_m[g]);
  if (threadIdx.x < G) {
    const float mg = s_m[threadIdx.x];
    s_f[threadIdx.x] = mg == -INFINITY ? 0.f : expf(mg - mm);
  }
  __syncthreads();
  const bool direct = num_splits == 1;
  float* out = PartialRecord(ws, di, p.num_heads, h, num_splits, split, hd);
  if (mm == -INFINITY) {  // empty split (never with num_splits == 1: key qpos is visible)
    for (int d = threadIdx.x; d < hd + 2; d += blockDim.x) out[d] = d == 0 ? -INFINITY : 0.f;
  } else {
    float ll = 0.f;
    for (int g = 0; g < G; ++g) ll += s_l[g] * s_f[g];
    T* o = p.out + static_cast<int64_t>(seq.token_begin) * p.out_stride + static_cast<int64_t>(h) * hd;
    const float inv = 1.f / ll;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      float a = 0.f;
      for (int g = 0; g < G; ++g) a += s_acc[g * ROW + d] * s_f[g];
      if (direct) {
        o[d] = detail::FromF32<T>(a * inv);
      } else {
        out[2 + d] = a;
      }
    }
    if (!direct && threadIdx.x == 0) {
      out[0] = mm;
      out[1] = ll;
    }
  }
  if (merge_here) MergeIfLast(p, ws, di, h, num_splits, seq);
}

// The merge kernel (MOE_ATTN_DECODE_MERGE=kernel, or too many splits / sequences for
// the in-kernel merge): grid (num_heads, num_decode), kWarps warps; dynamic shared memory
// holds one weight per split.
template <typename T>
__global__ void DecodeReduceKernel(const PagedAttentionParamsT<T> p, const int32_t* decode_seqs,
                                   int num_splits, float* ws) {
  extern __shared__ float s_w[];  // [num_splits]
  pdl::WaitPredecessor();
  const int h = blockIdx.x, di = blockIdx.y;
  const CudaAttnSeq seq = p.seqs[decode_seqs[di]];
  T* o = p.out + static_cast<int64_t>(seq.token_begin) * p.out_stride +
         static_cast<int64_t>(h) * p.head_dim;
  MergeSplits<T>(PartialRecord(ws, di, p.num_heads, h, num_splits, 0, p.head_dim), num_splits,
                 p.head_dim, s_w, o);
}

template <typename T>
cudaError_t DecodeAttention(const PagedAttentionParamsT<T>& p, const int32_t* decode_seqs,
                            int num_decode, int num_splits, float* workspace,
                            DecodeMerge merge, cudaStream_t stream) {
  if (num_decode <= 0) return cudaSuccess;
  if (p.head_dim <= 0 || p.head_dim > kMaxHeadDim || p.num_kv_heads <= 0 ||
      p.num_heads % p.num_kv_heads != 0 || num_splits < 1) {
    return cudaErrorInvalidValue;
  }
  const dim3 grid(p.num_heads, num_decode, num_splits);
  constexpr int kThreads = kWarps * 32;
  int tpk = 0, cpl = 1;
  {
    constexpr int vec = Vec16<T>::kN;
    const int chunks = p.head_dim / vec;
    const bool aligned = reinterpret_cast<uintptr_t>(p.k_cache) % 16 == 0 &&
                         reinterpret_cast<uintptr_t>(p.v_cache) % 16 == 0;
    if (aligned && p.head_dim % vec == 0) {
      if (chunks <= 4) tpk = 4;
      else if (chunks <= 8) tpk = 8;
      else if (chunks <= 16) tpk = 16;
      else if (chunks <= 32) tpk = 32;
      else if (chunks <= 64) tpk = 32, cpl = 2;
    }
  }
  // A merge is needed unless the vector kernel runs unsplit (it then writes `out`).
  const bool needs_merge = !(tpk != 0 && num_splits == 1);
  if (merge == DecodeMerge::kDefault) merge = DecodeMergeDefault();
  const bool in_kernel = needs_merge && merge == DecodeMerge::kInKernel &&
                         num_splits <= kMergeMaxSplits &&
                         int64_t{num_decode} * p.num_heads <= kDecodeMergeCounters;
  const int32_t* ds = decode_seqs;
  float* ws = workspace;
  cudaError_t e = cudaSuccess;
#define MOE_DECODE_LAUNCH(K) \
  e = pdl::Launch(K, grid, dim3(kThreads), 0, stream, p, ds, num_splits, ws, in_kernel)
  switch (tpk * 10 + cpl) {
    case 41: MOE_DECODE_LAUNCH((DecodeVecKernel<T, 4, 1>)); break;
    case 81: MOE_DECODE_LAUNCH((DecodeVecKernel<T, 8, 1>)); break;
    case 161: MOE_DECODE_LAUNCH((DecodeVecKernel<T, 16, 1>)); break;
    case 321: MOE_DECODE_LAUNCH((DecodeVecKernel<T, 32, 1>)); break;
    case 322: MOE_DECODE_LAUNCH((DecodeVecKernel<T, 32, 2>)); break;
    default:
      switch (PickDpl(p.head_dim)) {
        case 2: MOE_DECODE_LAUNCH((DecodeKernel<T, 2>)); break;
        case 3: MOE_DECODE_LAUNCH((DecodeKernel<T, 3>)); break;
        case 4: MOE_DECODE_LAUNCH((DecodeKernel<T, 4>)); break;
        default: MOE_DECODE_LAUNCH((DecodeKernel<T, 8>)); break;
      }
  }
#undef MOE_DECODE_LAUNCH
  if (e != cudaSuccess) return e;
  if (!needs_merge || in_kernel) return cudaSuccess;
  return pdl::Launch(DecodeReduceKernel<T>, dim3(p.num_heads, num_decode), dim3(kThreads),
                     sizeof(float) * num_splits, stream, p, decode_seqs, num_splits, workspace);
}

}  // namespace

int DecodeNumSplits(int max_context) {
  const int s = (max_context + 511) / 512;  // >= 512 keys (4 warps x 4 tiles) per split
  return s < 1 ? 1 : (s > 32 ? 32 : s);
}

int DecodeNumSplits(int max_context, int num_heads, int num_decode) {
  const int64_t blocks = std::max<int64_t>(1, int64_t{num_heads} * std::max(num_decode, 1));
  // Enough blocks for about two per SM of a 132-SM H100 ...
  const int64_t fill = std::max<int64_t>(1, kDecodeTargetBlocks / blocks);
  int fill_pow2 = 1;
  while (fill_pow2 * 2 <= fill && fill_pow2 < kDecodeMaxSplits) fill_pow2 *= 2;
  // ... but no fewer than kDecodeMinKeysPerSplit keys a split (rounded to a power of two
  // so that a growing context changes the count, and the decode graph, rarely) ...
  const int by_keys = std::max(1, (max_context + kDecodeMinKeysPerSplit - 1) / kDecodeMinKeysPerSplit);
  int keys_pow2 = 1;
  while (keys_pow2 < by_keys && keys_pow2 < kDecodeMaxSplits) keys_pow2 *= 2;
  // ... and never fewer than the length-only policy asks for.
  const int s = std::max(DecodeNumSplits(max_context), std::min(fill_pow2, keys_pow2));
  return std::min(s, kDecodeMaxSplits);
}

size_t DecodeWorkspaceFloats(int num_decode, int num_heads, int head_dim, int num_splits) {
  return kDecodeMergeCounters + static_cast<size_t>(num_decode) * num_heads * num_splits * (head_dim + 2);
}

cudaError_t LaunchClearDecodeCounters(float* workspace, cudaStream_t stream) {
  return cudaMemsetAsync(workspace, 0, sizeof(uint32_t) * kDecodeMergeCounters, stream);
}

DecodeMerge DecodeMergeDefault() {
  static const DecodeMerge mode = [] {
    const char* v = std::getenv("MOE_ATTN_DECODE_MERGE");
    return v != nullptr && std::strcmp(v, "kernel") == 0 ? DecodeMerge::kKernel
                                                         : DecodeMerge::kInKernel;
  }();
  return mode;
}

#define MOE_DECODE_OVERLOADS(T)                                                               \
  cudaError_t LaunchDecodeAttention(const PagedAttentionParamsT<T>& p,                        \
                                    const int32_t* decode_seqs, int num_decode,               \
                                    int num_splits, float* workspace, cudaStream_t stream,    \
                                    DecodeMerge merge) {                                      \
    return DecodeAttention<T>(p, decode_seqs, num_decode, num_splits, workspace, merge,       \
                              stream);                                                        \
  }
MOE_DECODE_OVERLOADS(bf16)
MOE_DECODE_OVERLOADS(f16)
MOE_DECODE_OVERLOADS(float)
#undef MOE_DECODE_OVERLOADS

}  // namespace moe::kernels::cuda
