// Checks a ForwardBatch against the model and the KV cache before anything is computed,
// so a malformed batch fails without touching the cache. Errors name the batch entry
// (index and seq_id) and the offending field.
//
// Thread safety: a pure function.
#pragma once

#include "absl/status/status.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"

namespace moe::engine::cpu {

// Fails (InvalidArgument) on: an empty chunk, a negative start_pos, a token id outside
// [0, vocab_size), a position at or past max_position_embeddings, a block table that does
// not cover [0, start_pos + tokens), a block id outside [0, num_kv_blocks), the same
// seq_id twice, or two entries that would write the same KV block.
absl::Status ValidateBatch(const ForwardBatch& batch, const ModelConfig& config,
                           int kv_block_size, int num_kv_blocks);

}  // namespace moe::engine::cpu
