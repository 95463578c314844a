// Causal GQA attention over a paged bf16 KV cache on the GPU, fp32 arithmetic.
//
// Cache layout, per layer and for K and V separately:
//   [num_blocks][block_size][num_kv_heads][head_dim]   (bf16)
// Position p of a sequence lives in physical block block_table[p / block_size], slot
// p % block_size. A query at position p sees keys j <= p, and with sliding_window > 0
// only p - j < sliding_window. Query head h reads kv head h / (num_heads / num_kv_heads).
//
// Two paths, which may serve the same batch (each sequence goes through one of them):
//  - prefill: FlashAttention-style tiles of kPrefillTileRows queries of one head; K/V in
//    tiles of 32 keys staged in shared memory; online softmax in registers.
//  - decode: one query per sequence; the context is split into num_splits parts
//    (flash-decoding), each a block of 4 warps. When head_dim is a multiple of 16 bytes'
//    worth of cache elements (and the caches are 16-byte aligned), groups of lanes read
//    whole K/V rows with 16-byte loads, each group with its own online softmax, merged in
//    shared memory; otherwise a scalar fallback. With num_splits == 1 (vector path) the
//    kernel writes `out`. Otherwise the splits' partial results are merged: by default by
//    the last split block of each (sequence, head) to finish, in the same launch (a
//    counter per (sequence, head) at the front of the workspace tells it it is last);
//    MOE_ATTN_DECODE_MERGE=kernel (or DecodeMerge::kKernel) keeps the second, merging
//    kernel. Both merges run the same code in the same order: bit-identical outputs.
// head_dim any value up to 256 (register tiles of 2, 3, 4 or 8 elements per lane).
//
// Thread safety: launchers only enqueue work on `stream`.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe::kernels::cuda {

// One sequence's chunk of queries: rows [token_begin, token_begin + num_tokens) of the
// flattened activations, at positions start_pos, start_pos + 1, ...; its block table is
// block_tables[block_table_offset ...].
struct CudaAttnSeq {
  int32_t token_begin = 0;
  int32_t num_tokens = 0;
  int32_t start_pos = 0;
  int32_t block_table_offset = 0;
};

// T: the KV cache's and the output's storage type (bf16, __half or float).
template <typename T>
struct PagedAttentionParamsT {
  const float* q = nullptr;  // [tokens, q_stride], head h at column h * head_dim
  int64_t q_stride = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  const T* k_cache = nullptr;
  const T* v_cache = nullptr;
  const CudaAttnSeq* seqs = nullptr;      // device
  const int32_t* block_tables = nullptr;  // device
  float scale = 1.f;
  int sliding_window = 0;
  T* out = nullptr;  // [tokens, out_stride]
  int64_t out_stride = 0;
};
using PagedAttentionParams = PagedAttentionParamsT<__nv_bfloat16>;

constexpr int kPrefillTileRows = 16;
constexpr int kMaxHeadDim = 256;

// Stores fp32 k/v rows (row stride src_stride, kv_heads * head_dim = kv_row elements) as
// the cache's type at cache rows slots[t] (= physical block * block_size + offset).
#define MOE_KV_DECL(T)                                                                        \
  cudaError_t LaunchWriteKvCache(const float* k, const float* v, int64_t src_stride,          \
                                 int64_t num_tokens, const int32_t* slots, int kv_row,        \
                                 T* k_cache, T* v_cache, cudaStream_t stream);
MOE_KV_DECL(__nv_bfloat16)
MOE_KV_DECL(__half)
MOE_KV_DECL(float)
#undef MOE_KV_DECL

// Work list of the prefill path for the given (host) sequences: pairs (seq index,
// first query row within the sequence), kPrefillTileRows rows each.
inline std::vector<int32_t> BuildPrefillTiles(const CudaAttnSeq* seqs,
                                              const int32_t* seq_indices, int n) {
  std::vector<int32_t> tiles;
  for (int i = 0; i < n; ++i) {
    const CudaAttnSeq& s = seqs[seq_indices[i]];
    for (int32_t r = 0; r < s.num_tokens; r += kPrefillTileRows) {
      tiles.push_back(seq_indices[i]);
      tiles.push_back(r);
    }
  }
  return tiles;
}

// tiles: device copy of BuildPrefillTiles' output (num_tiles pairs).
// (Overloads for bf16, __half and float caches.)
cudaError_t LaunchPrefillAttention(const PagedAttentionParamsT<__nv_bfloat16>& p,
                                   const int32_t* tiles, int num_tiles, cudaStream_t stream);
cudaError_t LaunchPrefillAttention(const PagedAttentionParamsT<__half>& p, const int32_t* tiles,
                                   int num_tiles, cudaStream_t stream);
cudaError_t LaunchPrefillAttention(const PagedAttentionParamsT<float>& p, const int32_t* tiles,
                                   int num_tiles, cudaStream_t stream);

// How many parts the decode path splits a context of max_context keys into: the
// length-only policy, at least 512 keys a split (1 .. 32).
int DecodeNumSplits(int max_context);
// The occupancy-aware policy: a decode step of num_decode sequences has num_heads *
// num_decode blocks per split; split further (a power of two, at most kDecodeMaxSplits)
// until about kDecodeTargetBlocks blocks run, but keep at least kDecodeMinKeysPerSplit
// keys a split; never fewer splits than DecodeNumSplits(max_context). Any num_splits >= 1
// is correct for any context; this only picks a fast one. E.g. 16 heads, 1 sequence,
// context 130: 8 splits (128 blocks); 16 heads x 64 sequences: 1 split (no reduce pass).
constexpr int kDecodeTargetBlocks = 264;
constexpr int kDecodeMinKeysPerSplit = 32;
constexpr int kDecodeMaxSplits = 32;
int DecodeNumSplits(int max_context, int num_heads, int num_decode);
// The decode workspace (4-byte words) is
//   [kDecodeMergeCounters uint32 counters][num_decode * num_heads * num_splits records of
//   head_dim + 2 floats]
// The counters sit at a fixed offset that no step's partials ever use, so they stay valid
// across steps of any shape. They must be ZERO before the first launch on a workspace:
// call LaunchClearDecodeCounters once after allocating (or moving) it. Every launch
// leaves them zero again (the in-kernel merge's last block wraps its counter to 0), so
// CUDA-graph replays need no reset. The in-kernel merge serves num_decode * num_heads <=
// kDecodeMergeCounters and num_splits <= 64; past that the merge kernel runs.
constexpr int kDecodeMergeCounters = 32768;
// fp32 words the decode workspace needs (counters included).
size_t DecodeWorkspaceFloats(int num_decode, int num_heads, int head_dim, int num_splits);
// Zeroes the workspace's counter words (enqueued on `stream`).
cudaError_t LaunchClearDecodeCounters(float* workspace, cudaStream_t stream);

// Who merges the splits: kDefault reads MOE_ATTN_DECODE_MERGE once per process ("kernel":
// the merge kernel, anything else: in-kernel); tests name one explicitly.
enum class DecodeMerge { kDefault, kInKernel, kKernel };
DecodeMerge DecodeMergeDefault();

// decode_seqs: device [num_decode] indices into p.seqs of sequences with num_tokens == 1.
// workspace: DecodeWorkspaceFloats(num_decode, num_heads, head_dim, num_splits) words whose
// counters are zero (see above); one launch at a time per workspace.
#define MOE_DECODE_DECL(T)                                                                    \
  cudaError_t LaunchDecodeAttention(const PagedAttentionParamsT<T>& p,                        \
                                    const int32_t* decode_seqs, int num_decode,               \
                                    int num_splits, float* workspace, cudaStream_t stream,    \
                                    DecodeMerge merge = DecodeMerge::kDefault);
MOE_DECODE_DECL(__nv_bfloat16)
MOE_DECODE_DECL(__half)
MOE_DECODE_DECL(float)
#undef MOE_DECODE_DECL

}  // namespace moe::kernels::cuda
