// Causal multi-head attention over a paged fp32 KV cache (GQA, optional sliding window).
//
// Cache layout, per layer and for K and V separately:
//   [num_blocks][block_size][num_kv_heads][head_dim]   (fp32)
// Position p of a sequence lives in physical block block_table[p / block_size], slot
// p % block_size.
//
// Thread safety: pure functions over caller-owned buffers; parallel on `pool`.
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace moe::kernels::cpu {

struct PagedKvShape {
  int block_size = 16;
  int num_kv_heads = 0;
  int head_dim = 0;
  int64_t row() const { return static_cast<int64_t>(num_kv_heads) * head_dim; }
};

// One sequence's chunk of queries: rows [token_begin, token_begin + num_tokens) of the
// flattened activations, at positions start_pos, start_pos + 1, ...
struct AttentionSeq {
  int64_t token_begin = 0;
  int32_t num_tokens = 0;
  int32_t start_pos = 0;
  const int32_t* block_table = nullptr;
};

// Stores k/v rows ([num_tokens, kv_heads * head_dim], row stride `src_stride`) of every
// sequence at its positions. The caller has checked that block tables cover them.
void WriteKvCache(const AttentionSeq* seqs, int num_seqs, const float* k, const float* v,
                  int64_t src_stride, const PagedKvShape& shape, float* k_cache, float* v_cache,
                  ThreadPool* pool);

// out[t, h*head_dim ..] = softmax(scale * q_h · K^T over allowed keys) · V for each query
// token t and head h. Query at position p sees keys at positions j <= p, and, if
// sliding_window > 0, only p - j < sliding_window. Query head h reads kv head
// h / (num_heads / num_kv_heads). q has row stride `q_stride`, out row stride `out_stride`.
// The keys/values of every query's positions must already be in the cache.
void PagedAttention(const AttentionSeq* seqs, int num_seqs, const float* q, int64_t q_stride,
                    int num_heads, const PagedKvShape& shape, const float* k_cache,
                    const float* v_cache, float scale, int sliding_window, float* out,
                    int64_t out_stride, ThreadPool* pool);

}  // namespace moe::kernels::cpu
