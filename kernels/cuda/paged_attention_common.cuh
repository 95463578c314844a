// Device helpers shared by the prefill (paged_attention.cu) and decode
// (paged_attention_decode.cu) paths of the paged attention kernels. Internal: included by
// those two .cu files only; the public interface is paged_attention.h.
//
// Thread safety: constants and pure functions only.
#pragma once

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/paged_attention.h"

namespace moe::kernels::cuda::attn {

constexpr int kWarps = 4;     // warps per block, both paths
constexpr int kKeyTile = 32;  // keys per warp tile (one per lane)

// Element offset of position `pos`, kv head `kvh` in the K or V cache of a sequence whose
// block table is `table`.
template <typename P>
__device__ __forceinline__ int64_t CacheRow(const P& p, const int32_t* table,
                                            int pos, int kvh) {
  const int64_t phys = static_cast<int64_t>(table[pos / p.block_size]) * p.block_size +
                       pos % p.block_size;
  return (phys * p.num_kv_heads + kvh) * p.head_dim;
}

// Register tile of the scalar kernels: dims per lane (2, 3, 4 or 8) for head_dim hd.
inline int PickDpl(int hd) {
  const int need = (hd + 31) / 32;
  if (need <= 2) return 2;
  if (need <= 3) return 3;
  if (need <= 4) return 4;
  return 8;
}

}  // namespace moe::kernels::cuda::attn
