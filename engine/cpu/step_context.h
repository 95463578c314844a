// What one forward step of the CPU runner shares between its stages: the flattened
// batch (tokens, positions, per-sequence attention chunks), the thread pool and the
// model's shape. Built by CpuModelRunner::Forward, read by the attention and FFN stages.
//
// Thread safety: owned by the engine thread for the duration of one step.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/thread_pool.h"

namespace moe::engine::cpu {

struct StepContext {
  const ModelConfig* config = nullptr;
  const DecoderWeights* weights = nullptr;
  kernels::cpu::ThreadPool* pool = nullptr;
  int64_t num_tokens = 0;                            // T: all chunks' tokens, flattened
  std::vector<int32_t> tokens;                       // [T]
  std::vector<int32_t> positions;                    // [T]
  std::vector<kernels::cpu::AttentionSeq> attn_seqs; // one per batch entry
};

// Fp32 paged KV cache of one layer: [num_blocks][block_size][kv_heads][head_dim] each.
struct LayerKvCache {
  std::vector<float> k;
  std::vector<float> v;
};

}  // namespace moe::engine::cpu
