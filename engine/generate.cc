#include "engine/generate.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace moe::engine {

namespace {

absl::StatusOr<std::vector<int32_t>> SequentialBlocks(const ModelRunner& runner, int64_t tokens) {
  const int64_t bs = runner.kv_block_size();
  const int64_t needed = (tokens + bs - 1) / bs;
  if (needed > runner.num_kv_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat(tokens, " tokens need ", needed, " KV blocks of ", bs, " but the cache has ",
                     runner.num_kv_blocks()));
  }
  std::vector<int32_t> blocks(needed);
  std::iota(blocks.begin(), blocks.end(), 0);
  return blocks;
}

}  // namespace

absl::StatusOr<GenerateResult> GenerateOne(ModelRunner& runner, absl::Span<const int32_t> prompt,
                                           const GenerateOptions& options) {
  if (prompt.empty()) return absl::InvalidArgumentError("prompt: must not be empty");
  if (options.max_tokens <= 0) return absl::InvalidArgumentError("max_tokens: must be > 0");
  const ModelConfig& config = runner.config();
  if (absl::Status s = ValidateSamplingParams(options.sampling, config.vocab_size); !s.ok()) return s;
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (config.max_position_embeddings > 0 && total > config.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: prompt (", prompt.size(), ") + max_tokens (", options.max_tokens,
                     ") exceeds the model's context of ", config.max_position_embeddings));
  }
  auto blocks = SequentialBlocks(runner, total);
  if (!blocks.ok()) return blocks.status();

  Sampler sampler(options.sampling, options.fallback_seed);
  sampler.SetPromptTokens(prompt);  // for repetition_penalty
  GenerateResult result;
  std::vector<int32_t> seq(prompt.begin(), prompt.end());
  ForwardResult out;
  int32_t pos = 0;
  const int chunk = std::max(1, options.prefill_chunk);
  // Prefill: all chunks but the last need no logits.
  while (pos < static_cast<int32_t>(seq.size())) {
    int32_t n = std::min<int32_t>(chunk, static_cast<int32_t>(seq.size()) - pos);
    ForwardBatch batch;
    SequenceChunk c;
    c.tokens = absl::MakeConstSpan(seq.data() + pos, n);
    c.start_pos = pos;
    c.block_table = *blocks;
    c.logits = pos + n == static_cast<int32_t>(seq.size()) ? SequenceChunk::Logits::kLast
                                                           : SequenceChunk::Logits::kNone;
    batch.seqs.push_back(c);
    if (absl::Status s = runner.Forward(batch, &out); !s.ok()) return s;
    pos += n;
  }
  for (int i = 0; i < options.max_tokens; ++i) {
    SampledToken t = sampler.Sample(absl::MakeConstSpan(out.row(0), out.vocab_size));
    result.token_ids.push_back(t.token);
    result.tokens.push_back(t);
    seq.push_back(t.token);
    bool keep_going = !options.on_token || options.on_token(t);
    if (std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), t.token) !=
        options.stop_token_ids.end()) {
      result.stopped_on_token = true;
      break;
    }
    if (!keep_going || i + 1 == options.max_tokens) break;
    ForwardBatch batch;
    SequenceChunk c;
    c.tokens = absl::MakeConstSpan(seq.data() + pos, 1);
    c.start_pos = pos;
    c.block_table = *blocks;
    c.logits = SequenceChunk::Logits::kLast;
    batch.seqs.push_back(c);
    if (absl::Status s = runner.Forward(batch, &out); !s.ok()) return s;
    pos += 1;
  }
  return result;
}

absl::StatusOr<ForwardResult> ScoreSequence(ModelRunner& runner, absl::Span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("tokens: must not be empty");
  auto blocks = SequentialBlocks(runner, static_cast<int64_t>(tokens.size()));
  if (!blocks.ok()) return blocks.status();
  ForwardBatch batch;
  SequenceChunk c;
  c.tokens = tokens;
  c.start_pos = 0;
  c.block_table = *blocks;
  c.logits = SequenceChunk::Logits::kAll;
  batch.seqs.push_back(c);
  ForwardResult out;
  if (absl::Status s = runner.Forward(batch, &out); !s.ok()) return s;
  return out;
}

}  // namespace moe::engine
