// Tensor-core prefill attention (declared in paged_attention_prefill_mma.cuh).
//
// Fragment layouts of mma.sync m16n8k16 (g = lane / 4, t = lane % 4; each 32-bit register
// holds two 16-bit elements, the lower column / k index in the low half):
//   A 16x16 row-major: a0 (row g, k 2t..2t+1), a1 (row g+8, same k), a2 (row g, k 2t+8..),
//                      a3 (row g+8, k 2t+8..)
//   B 16x8 col-major:  b0 (k 2t..2t+1, col g), b1 (k 2t+8..2t+9, col g)
//   C/D 16x8 fp32:     c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, same cols)
// S = Q K^T: B[k][n] = K[key n][dim k], i.e. K rows as stored; ldmatrix (no transpose) of
// 8 keys x 8 dims gives b0/b1 directly. O += P V: B[k][n] = V[key k][dim n]; ldmatrix
// .trans of 8 keys x 8 dims gives them. The S accumulators of keys 16j..16j+15 are, packed
// in pairs, the A fragment of P for the PV k-step j (no trip through shared memory).
#include "kernels/cuda/paged_attention_prefill_mma.cuh"

#include <cmath>

#include "kernels/cuda/paged_attention_common.cuh"

namespace moe::kernels::cuda::attn {
namespace {

using detail::bf16;
using detail::f16;

constexpr int kThreads = 128;   // 4 warps
constexpr int kBlockRows = 64;  // query rows per block, 16 per warp
constexpr int kKeys = 64;       // keys per K/V tile
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kBlockRows % kPrefillTileRows == 0, "a block covers whole prefill tiles");
static_assert(kBlockRows == 16 * (kThreads / 32), "one m16 row tile per warp");

// Blocks per SM the register budget is sized for, chosen from ptxas -v (sm_90a, CUDA 13):
// no spills, 3 blocks of 4 warps per SM up to head_dim 96 (155 / 161 / 166 registers),
// 2 at 128 (200). 0: ptxas' own choice, which spills at head_dim 64 (capped at 128) but
// not at 96, where a cap of 168 spills.
template <int HD>
constexpr int MinBlocksPerSm() {
  return HD == 96 ? 0 : HD < 96 ? 3 : 2;
}

template <int HD>
constexpr size_t SmemBytes() {
  return size_t{2} * 2 * kKeys * (HD + 8) * sizeof(uint16_t);  // K and V, double-buffered
}

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; zero-fills the destination when !valid.
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
// Waits until at most one committed group is still in flight.
__device__ __forceinline__ void CpAsyncWaitAllButOne() {
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

__device__ __forceinline__ void LdMatrixX4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void LdMatrixX4Trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// Two floats as one register of the 16-bit type, `lo` in the low half.
template <typename T>
__device__ __forceinline__ uint32_t Pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t Pack2<bf16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t Pack2<f16>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// c += a * b on one m16n8k16 tile, fp32 accumulation.
template <typename T>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1);
template <>
__device__ __forceinline__ void Mma<bf16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void Mma<f16>(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One warp's 16 query rows against one staged tile of kKeys keys at positions base ...
// (ks, vs: the tile's K and V rows, stride HD + 8 elements). qpos0: position of the
// lane's first row (the second is qpos0 + 8). m, l: running max (log2 units) and partial
// row sum of this lane's two rows; o: their output accumulators.
template <typename T, int HD>
__device__ __forceinline__ void AttendTile(const T* ks, const T* vs,
                                           const uint32_t (&qf)[HD / 16][4],
                                           float (&o)[HD / 8][4], float (&m)[2], float (&l)[2],
                                           int base, int qpos0, int kv_hi, int window,
                                           float scale_log2) {
  constexpr int kStride = HD + 8;
  const int lane = threadIdx.x & 31, t = lane & 3;
  float s[kKeys / 8][4];
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) s[j][e] = 0.f;
  }
  // S = Q K^T. ldmatrix x4: lanes 8i..8i+7 address matrix i's rows; matrices (keys +0,
  // dims +0), (keys +0, dims +8), (keys +8, dims +0), (keys +8, dims +8) are b0, b1 of
  // the key n-tile 2jp and b0, b1 of n-tile 2jp + 1.
  const uint32_t k_addr = SmemAddr(ks + ((lane >> 4) * 8 + (lane & 7)) * kStride +
                                   ((lane >> 3) & 1) * 8);
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
    for (int jp = 0; jp < kKeys / 16; ++jp) {
      uint32_t b[4];
      LdMatrixX4(b, k_addr + (jp * 16 * kStride + kk * 16) * 2);
      Mma<T>(s[2 * jp], qf[kk], b[0], b[1]);
      Mma<T>(s[2 * jp + 1], qf[kk], b[2], b[3]);
    }
  }
  // Mask, scale to log2 units, row max over the quad that shares a row.
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int kpos = base + 8 * j + 2 * t + (e & 1);
      const int qpos = qpos0 + (e >> 1) * 8;
      const bool ok =
          kpos <= qpos && kpos < kv_hi && (window <= 0 || qpos - kpos < window);
      s[j][e] = ok ? s[j][e] * scale_log2 : -INFINITY;
      mx[e >> 1] = fmaxf(mx[e >> 1], s[j][e]);
    }
  }
  float ref[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float m_new = fmaxf(m[r], mx[r]);
    ref[r] = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet stays 0
    const float corr = exp2f(m[r] - ref[r]);
    m[r] = m_new;
    l[r] *= corr;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) {
      o[n][2 * r] *= corr;
      o[n][2 * r + 1] *= corr;
    }
  }
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[j][e] = exp2f(s[j][e] - ref[e >> 1]);
      l[e >> 1] += s[j][e];
    }
  }
  // O += P V. ldmatrix x4 .trans: matrices (keys +0, dims +0), (keys +8, dims +0), (keys
  // +0, dims +8), (keys +8, dims +8) are b0, b1 of dim n-tile 2np and of 2np + 1.
  const uint32_t v_addr = SmemAddr(vs + (((lane >> 3) & 1) * 8 + (lane & 7)) * kStride +
                                   (lane >> 4) * 8);
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk) {
    const uint32_t a[4] = {Pack2<T>(s[2 * kk][0], s[2 * kk][1]),
                           Pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                           Pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                           Pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
    for (int np = 0; np < HD / 16; ++np) {
      uint32_t b[4];
      LdMatrixX4Trans(b, v_addr + (kk * 16 * kStride + np * 16) * 2);
      Mma<T>(o[2 * np], a, b[0], b[1]);
      Mma<T>(o[2 * np + 1], a, b[2], b[3]);
    }
  }
}

// Grid (num_tiles, num_heads), kThreads threads; see the header for the work split.
template <typename T, int HD>
__global__ void __launch_bounds__(kThreads, MinBlocksPerSm<HD>())
    PrefillMmaKernel(const PagedAttentionParamsT<T> p, const int32_t* tiles) {
  constexpr int kStride = HD + 8;  // +16 bytes: ldmatrix rows hit distinct banks
  constexpr int kChunks = HD / 8;  // 16-byte pieces per cache row
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sk = reinterpret_cast<T*>(smem_raw);  // [2][kKeys][kStride]
  T* sv = sk + 2 * kKeys * kStride;        // [2][kKeys][kStride]

  const int row0 = tiles[2 * blockIdx.x + 1];
  if (row0 % kBlockRows != 0) return;  // covered by the block of the tile at row0 & ~63
  const CudaAttnSeq seq = p.seqs[tiles[2 * blockIdx.x]];
  const int rows = min(kBlockRows, seq.num_tokens - row0);
  const int h = blockIdx.y;
  const int kvh = h / (p.num_heads / p.num_kv_heads);
  const int32_t* table = p.block_tables + seq.block_table_offset;
  const int first_pos = seq.start_pos + row0;
  const int kv_hi = first_pos + rows;  // keys [kv_lo, kv_hi) may be visible
  const int kv_lo = p.sliding_window > 0 ? max(0, first_pos - p.sliding_window + 1) : 0;
  const int num_kv_tiles = (kv_hi - kv_lo + kKeys - 1) / kKeys;

  auto load_tile = [&](int it) {
    const int base = kv_lo + it * kKeys;
    T* dk = sk + (it & 1) * kKeys * kStride;
    T* dv = sv + (it & 1) * kKeys * kStride;
    for (int c = threadIdx.x; c < kKeys * kChunks; c += kThreads) {
      const int key = c / kChunks, piece = c - key * kChunks;
      const int pos = base + key;
      const bool valid = pos < kv_hi;  // past the end: zeros (P is 0 there; V must be finite)
      const int64_t off = valid ? CacheRow(p, table, pos, kvh) + piece * 8 : 0;
      CpAsync16(dk + key * kStride + piece * 8, p.k_cache + off, valid);
      CpAsync16(dv + key * kStride + piece * 8, p.v_cache + off, valid);
    }
    CpAsyncCommit();
  };
  load_tile(0);

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int wrow = warp * 16;  // the warp's first row within the block's rows
  const bool warp_active = wrow < rows;
  const int q_lo = first_pos + wrow;
  const int q_hi = first_pos + min(wrow + 16, rows) - 1;

  // Q fragments (A operand, rows wrow + g and + 8), rounded to T; padding rows are 0.
  uint32_t qf[HD / 16][4];
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
    for (int reg = 0; reg < 4; ++reg) {
      const int r = wrow + g + (reg & 1) * 8;
      const int col = kk * 16 + (reg >> 1) * 8 + 2 * t;
      float x0 = 0.f, x1 = 0.f;
      if (r < rows) {
        const float* src = p.q + (seq.token_begin + row0 + r) * p.q_stride + h * HD + col;
        x0 = src[0];
        x1 = src[1];
      }
      qf[kk][reg] = Pack2<T>(x0, x1);
    }
  }

  float o[HD / 8][4];
#pragma unroll
  for (int n = 0; n < HD / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.f;
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const float scale_log2 = p.scale * kLog2e;

  for (int it = 0; it < num_kv_tiles; ++it) {
    if (it + 1 < num_kv_tiles) {
      load_tile(it + 1);  // into the buffer tile it - 1 used (freed by the last barrier)
    } else {
      CpAsyncCommit();  // empty group: the wait below then always means "tile it landed"
    }
    CpAsyncWaitAllButOne();
    __syncthreads();
    const int base = kv_lo + it * kKeys;
    // Warp-uniform skip of tiles wholly above the diagonal or wholly outside the window.
    const bool visible = warp_active && base <= q_hi &&
                         (p.sliding_window <= 0 || q_lo - (base + kKeys - 1) < p.sliding_window);
    if (visible) {
      AttendTile<T, HD>(sk + (it & 1) * kKeys * kStride, sv + (it & 1) * kKeys * kStride, qf, o,
                        m, l, base, q_lo + g, kv_hi, p.sliding_window, scale_log2);
    }
    __syncthreads();
  }
  if (!warp_active) return;

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = wrow + g + r * 8;
    if (row >= rows) continue;
    T* dst = p.out + (seq.token_begin + row0 + row) * p.out_stride + h * HD + 2 * t;
    const float inv = 1.f / l[r];
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) {
      dst[8 * n] = detail::FromF32<T>(o[n][2 * r] * inv);
      dst[8 * n + 1] = detail::FromF32<T>(o[n][2 * r + 1] * inv);
    }
  }
}

template <typename T, int HD>
cudaError_t Launch(const PagedAttentionParamsT<T>& p, const int32_t* tiles, int num_tiles,
                   cudaStream_t stream) {
  constexpr size_t smem = SmemBytes<HD>();
  auto* kernel = PrefillMmaKernel<T, HD>;
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  kernel<<<dim3(num_tiles, p.num_heads), kThreads, smem, stream>>>(p, tiles);
  return cudaGetLastError();
}

template <typename T>
cudaError_t Dispatch(const PagedAttentionParamsT<T>& p, const int32_t* tiles, int num_tiles,
                     cudaStream_t stream) {
  if (num_tiles <= 0) return cudaSuccess;
  if (!PrefillMmaSupports(p.head_dim, p.k_cache, p.v_cache) || p.num_kv_heads <= 0 ||
      p.num_heads % p.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  switch (p.head_dim) {
    case 64: return Launch<T, 64>(p, tiles, num_tiles, stream);
    case 80: return Launch<T, 80>(p, tiles, num_tiles, stream);
    case 96: return Launch<T, 96>(p, tiles, num_tiles, stream);
    default: return Launch<T, 128>(p, tiles, num_tiles, stream);
  }
}

}  // namespace

bool PrefillMmaSupports(int head_dim, const void* k_cache, const void* v_cache) {
  const bool dim_ok = head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128;
  const auto aligned = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  return dim_ok && aligned(k_cache) && aligned(v_cache);
}

cudaError_t LaunchPrefillMma(const PagedAttentionParamsT<bf16>& p, const int32_t* tiles,
                             int num_tiles, cudaStream_t stream) {
  return Dispatch(p, tiles, num_tiles, stream);
}
cudaError_t LaunchPrefillMma(const PagedAttentionParamsT<f16>& p, const int32_t* tiles,
                             int num_tiles, cudaStream_t stream) {
  return Dispatch(p, tiles, num_tiles, stream);
}

}  // namespace moe::kernels::cuda::attn
