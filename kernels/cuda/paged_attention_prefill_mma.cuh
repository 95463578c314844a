// Tensor-core prefill attention over a paged bf16 / fp16 KV cache (internal: used by
// paged_attention.cu's LaunchPrefillAttention; the public contract is paged_attention.h).
//
// FlashAttention-2 style: a block of 4 warps takes 64 query rows of one head (4 of
// BuildPrefillTiles' 16-row tiles, the one whose first row is a multiple of 64 leads; the
// other three tiles' blocks exit at once, so the tile list must be BuildPrefillTiles'
// whole output for each sequence, as the header says). K/V tiles of 64 keys are copied
// from the paged cache through the block table with cp.async (double-buffered), S = QK^T
// and O += PV run on mma.sync m16n8k16 (bf16/fp16 operands, fp32 accumulation), the
// online softmax is fp32 with the causal mask and sliding_window. Q is read from the fp32
// activations and rounded to the cache's type in registers; P is rounded likewise.
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/paged_attention.h"

namespace moe::kernels::cuda::attn {

// True when the tensor-core path serves these parameters: head_dim 64, 80, 96 or 128 and
// 16-byte aligned caches (cp.async copies 16-byte pieces of cache rows).
bool PrefillMmaSupports(int head_dim, const void* k_cache, const void* v_cache);

// Same inputs and outputs as LaunchPrefillAttention. Returns cudaErrorInvalidValue for
// parameters PrefillMmaSupports rejects.
cudaError_t LaunchPrefillMma(const PagedAttentionParamsT<__nv_bfloat16>& p, const int32_t* tiles,
                             int num_tiles, cudaStream_t stream);
cudaError_t LaunchPrefillMma(const PagedAttentionParamsT<__half>& p, const int32_t* tiles,
                             int num_tiles, cudaStream_t stream);

}  // namespace moe::kernels::cuda::attn
