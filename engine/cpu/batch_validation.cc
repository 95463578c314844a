#include "engine/cpu/batch_validation.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace moe::engine::cpu {

absl::Status ValidateBatch(const ForwardBatch& batch, const ModelConfig& config,
                           int kv_block_size, int num_kv_blocks) {
  std::set<int64_t> seq_ids;
  std::map<int32_t, size_t> written_blocks;  // block -> batch entry writing it
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& s = batch.seqs[i];
    const std::string who = absl::StrCat("batch entry ", i, " (seq_id ", s.seq_id, "): ");
    if (!seq_ids.insert(s.seq_id).second) {
      return absl::InvalidArgumentError(absl::StrCat(who, "seq_id appears more than once in the batch"));
    }
    if (s.tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(who, "tokens is empty"));
    if (s.start_pos < 0) {
      return absl::InvalidArgumentError(absl::StrCat(who, "start_pos ", s.start_pos, " is negative"));
    }
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      if (s.tokens[t] < 0 || s.tokens[t] >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(who, "token id ", s.tokens[t], " at tokens[", t,
                                                       "] is outside the vocabulary [0, ",
                                                       config.vocab_size, ")"));
      }
    }
    const int64_t end = static_cast<int64_t>(s.start_pos) + static_cast<int64_t>(s.tokens.size());
    if (config.max_position_embeddings > 0 && end > config.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, "position ", end - 1, " is past the model's context (max_position_embeddings ",
          config.max_position_embeddings, ")"));
    }
    const int64_t blocks_needed = (end + kv_block_size - 1) / kv_block_size;
    if (static_cast<int64_t>(s.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(absl::StrCat(
          who, "block_table has ", s.block_table.size(), " blocks but positions [0, ", end,
          ") need ", blocks_needed, " of ", kv_block_size, " tokens"));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t id = s.block_table[b];
      if (id < 0 || id >= num_kv_blocks) {
        return absl::InvalidArgumentError(absl::StrCat(who, "block_table[", b, "] = ", id,
                                                       " is outside the KV cache's blocks [0, ",
                                                       num_kv_blocks, ")"));
      }
    }
    // Blocks this chunk writes: those holding positions [start_pos, end).
    for (int64_t b = s.start_pos / kv_block_size; b < blocks_needed; ++b) {
      auto [it, inserted] = written_blocks.emplace(s.block_table[b], i);
      if (!inserted && it->second != i) {
        return absl::InvalidArgumentError(absl::StrCat(
            who, "writes KV block ", s.block_table[b], " which batch entry ", it->second,
            " also writes"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace moe::engine::cpu
