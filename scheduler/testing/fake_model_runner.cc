#include "scheduler/testing/fake_model_runner.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/sampling/sampler.h"

namespace moe::scheduler::testing {
namespace {

uint64_t HashHistory(const int32_t* tokens, size_t n) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over (tokens, length)
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  for (size_t i = 0; i < n; ++i) mix(static_cast<uint32_t>(tokens[i]));
  mix(n);
  return h;
}

// The running hash of a token prefix: the slot at position p holds that of [0, p].
uint64_t ExtendPrefixHash(uint64_t h, int32_t token) {
  h ^= static_cast<uint32_t>(token) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h *= 0xff51afd7ed558ccdull;
  return h ^ (h >> 33);
}

// Logits with a clear maximum at the reference token and a deterministic spread below
// it, so sampled (non-greedy) decoding is also deterministic given a seed.
void FillLogits(const int32_t* history, size_t n, int vocab, float* row) {
  const uint64_t h = HashHistory(history, n);
  const int32_t top = static_cast<int32_t>(h % static_cast<uint64_t>(vocab));
  for (int v = 0; v < vocab; ++v) {
    uint64_t x = h ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(v + 1));
    x ^= x >> 29;
    row[v] = static_cast<float>(x % 1000) / 1000.0f;  // [0, 1)
  }
  row[top] = 3.0f;
}

}  // namespace

FakeModelRunner::FakeModelRunner(FakeRunnerOptions options) : options_(std::move(options)) {
  config_.architecture_name = "FakeForCausalLM";
  config_.model_type = "fake";
  config_.vocab_size = options_.vocab_size;
  config_.hidden_size = 8;
  config_.num_layers = 2;
  config_.num_heads = 1;
  config_.num_kv_heads = 1;
  config_.head_dim = 8;
  config_.num_experts = 4;
  config_.num_experts_per_tok = 2;
  config_.max_position_embeddings = options_.max_position_embeddings;
  config_.eos_token_ids = options_.eos_token_ids;
  cache_.resize(static_cast<size_t>(options_.num_kv_blocks) * options_.kv_block_size);
}

int32_t FakeModelRunner::ReferenceNextToken(const std::vector<int32_t>& history,
                                            int vocab_size) {
  return static_cast<int32_t>(HashHistory(history.data(), history.size()) %
                              static_cast<uint64_t>(vocab_size));
}

std::vector<int32_t> FakeModelRunner::ReferenceGreedy(std::vector<int32_t> prompt, int n,
                                                      int vocab_size) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t t = ReferenceNextToken(prompt, vocab_size);
    out.push_back(t);
    prompt.push_back(t);
  }
  return out;
}

std::optional<engine::OffloadStats> FakeModelRunner::offload_stats() const {
  absl::MutexLock lock(&mu_);
  return offload_stats_;
}

void FakeModelRunner::set_offload_stats(std::optional<engine::OffloadStats> stats) {
  absl::MutexLock lock(&mu_);
  offload_stats_ = std::move(stats);
}

void FakeModelRunner::set_step_delay(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  step_delay_ = d;
}

std::vector<RecordedStep> FakeModelRunner::steps() const {
  absl::MutexLock lock(&mu_);
  return steps_;
}

int64_t FakeModelRunner::num_kv_writes() const {
  absl::MutexLock lock(&mu_);
  return kv_writes_;
}

int64_t FakeModelRunner::num_device_sampled() const {
  absl::MutexLock lock(&mu_);
  return device_sampled_;
}

int64_t FakeModelRunner::num_device_declined() const {
  absl::MutexLock lock(&mu_);
  return device_declined_;
}

absl::Status FakeModelRunner::CheckBatch(const engine::ForwardBatch& batch) const {
  const int B = options_.kv_block_size;
  std::map<int32_t, int64_t> written;  // block -> the one sequence writing it this step
  for (const auto& s : batch.seqs) {
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    for (int64_t b = s.start_pos / B; b < (end + B - 1) / B; ++b) {
      if (b >= static_cast<int64_t>(s.block_table.size())) break;  // reported below
      auto [it, fresh] = written.emplace(s.block_table[b], s.seq_id);
      if (!fresh && it->second != s.seq_id) {
        return absl::InternalError(absl::StrCat("block ", s.block_table[b],
                                                " written by seqs ", it->second, " and ",
                                                s.seq_id, " in one batch"));
      }
    }
  }
  std::set<int64_t> ids;
  for (const auto& s : batch.seqs) {
    if (!ids.insert(s.seq_id).second) {
      return absl::InternalError(absl::StrCat("seq ", s.seq_id, " appears twice in a batch"));
    }
    if (s.tokens.empty()) return absl::InternalError("empty chunk");
    const int64_t end = s.start_pos + static_cast<int64_t>(s.tokens.size());
    if (end > options_.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("position ", end, " past the context"));
    }
    if (static_cast<int64_t>(s.block_table.size()) * B < end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block table of seq ", s.seq_id, " (", s.block_table.size(),
          " blocks) does not cover ", end, " positions"));
    }
    std::set<int32_t> in_table;
    for (int32_t b : s.block_table) {
      if (b < 0 || b >= options_.num_kv_blocks) {
        return absl::InvalidArgumentError(absl::StrCat("block index ", b, " out of range"));
      }
      if (!in_table.insert(b).second) {
        return absl::InternalError(absl::StrCat("block ", b, " twice in seq ", s.seq_id,
                                                "'s table"));
      }
      auto w = written.find(b);
      if (w != written.end() && w->second != s.seq_id) {
        return absl::InternalError(absl::StrCat("block ", b, " of seq ", s.seq_id,
                                                " is written by seq ", w->second,
                                                " in the same batch"));
      }
    }
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= options_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", t, " outside vocab"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status FakeModelRunner::Forward(const engine::ForwardBatch& batch,
                                      engine::ForwardResult* out) {
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    delay = step_delay_;
  }
  if (delay > absl::ZeroDuration()) absl::SleepFor(delay);
  if (absl::Status s = CheckBatch(batch); !s.ok()) return s;

  const int B = options_.kv_block_size;
  const int V = options_.vocab_size;
  out->vocab_size = V;
  out->logits.clear();
  out->row_begin.clear();
  out->tokens.clear();
  int64_t sampled = 0, declined = 0;
  int32_t rows = 0;
  int64_t writes = 0;
  RecordedStep rec;
  std::vector<int32_t> history;
  for (const auto& s : batch.seqs) {
    out->row_begin.push_back(rows);
    rec.seq_ids.push_back(s.seq_id);
    rec.chunk_tokens.push_back(static_cast<int>(s.tokens.size()));
    rec.start_pos.push_back(s.start_pos);
    rec.num_tokens += static_cast<int>(s.tokens.size());
    // Read the cached history back through the block table, checking every slot holds
    // this sequence's prefix; then write the chunk after it.
    const int32_t end = s.start_pos + static_cast<int32_t>(s.tokens.size());
    history.clear();
    uint64_t h = 0;
    for (int32_t pos = 0; pos < end; ++pos) {
      Slot& slot = cache_[static_cast<size_t>(s.block_table[pos / B]) * B + pos % B];
      const int32_t token = pos < s.start_pos ? slot.token : s.tokens[pos - s.start_pos];
      h = ExtendPrefixHash(h, token);
      if (pos >= s.start_pos) {
        slot = Slot{token, pos, s.seq_id, h};
        ++writes;
      } else if (slot.pos != pos || slot.prefix_hash != h) {
        return absl::InternalError(absl::StrCat(
            "KV cache corrupt: seq ", s.seq_id, " position ", pos, " reads a slot written by seq ",
            slot.owner, " at position ", slot.pos, slot.pos == pos ? " for another prefix" : ""));
      }
      history.push_back(token);
    }
    if (s.logits == engine::SequenceChunk::Logits::kNone) continue;
    const int32_t first = s.logits == engine::SequenceChunk::Logits::kAll ? s.start_pos : end - 1;
    for (int32_t p = first; p < end; ++p) {
      out->logits.resize(static_cast<size_t>(rows + 1) * V);
      float* row = out->logits.data() + static_cast<size_t>(rows) * V;
      FillLogits(history.data(), static_cast<size_t>(p + 1), V, row);
      out->tokens.resize(static_cast<size_t>(rows + 1), -1);
      if (options_.device_sampling && s.sampling.enabled &&
          s.logits == engine::SequenceChunk::Logits::kLast) {
        ++sampled;
        ++device_asked_;  // over the runner's life, so declines do not depend on step sizes
        if (options_.decline_every > 0 && device_asked_ % options_.decline_every == 0) {
          ++declined;
        } else {
          engine::SamplingParams sp;
          sp.temperature = s.sampling.temperature;
          sp.top_k = s.sampling.top_k;
          sp.top_p = s.sampling.top_p;
          engine::Sampler device(sp, 0);
          const bool greedy = sp.temperature == 0.f || sp.top_k == 1;
          out->tokens[rows] =
              device.SampleWithUniform(absl::MakeConstSpan(row, static_cast<size_t>(V)),
                                       greedy ? std::nullopt : std::optional<double>(s.sampling.u))
                  .token;
          // A device-sampled row has no logits: poison it so a caller reading it fails.
          std::fill(row, row + V, std::numeric_limits<float>::quiet_NaN());
        }
      }
      ++rows;
    }
  }
  out->row_begin.push_back(rows);
  rec.num_seqs = static_cast<int>(batch.seqs.size());
  absl::MutexLock lock(&mu_);
  steps_.push_back(std::move(rec));
  kv_writes_ += writes;
  device_sampled_ += sampled;
  device_declined_ += declined;
  return absl::OkStatus();
}

}  // namespace moe::scheduler::testing
