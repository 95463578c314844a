// A ModelRunner for scheduler tests: no weights, deterministic logits, and strict checks
// of the paged KV cache it is given.
//
// The "KV cache" stores, per physical block slot, the token id written there, the
// position it was written at, the sequence that wrote it and a hash of the whole token
// prefix [0, position] it was computed for (real KV depends on every earlier token).
// Each chunk first reads its sequence's cached positions back through the block table
// and checks every slot's position and prefix hash; logits are computed from the history
// *as read back from the cache*. So a block-manager bug (a wrong table, a stale slot, a
// block written by another live sequence, a prefix-cache block reused for a different
// prefix) fails the step with INTERNAL or changes the output, while blocks legitimately
// shared by prefix caching (same prefix, read-only) pass. A block written by one chunk
// and read by another chunk of the same step is an error, as is a table holding a block
// twice. The next token under
// greedy sampling is ReferenceNextToken(history), so tests can compute expected outputs
// independently of the scheduler.
//
// Thread safety: Forward is called by one thread (the engine thread); the recorded step
// log, the delay and the offload stats may be read / set from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/model_runner.h"

namespace moe::scheduler::testing {

struct FakeRunnerOptions {
  int vocab_size = 64;
  int num_kv_blocks = 64;
  int kv_block_size = 16;
  int max_position_embeddings = 4096;
  std::vector<int> eos_token_ids = {};
  // Act as a runner that samples on the device (samples_on_device()): rows asked for are
  // sampled here with engine::Sampler::SampleWithUniform on the chunk's draw, and every
  // `decline_every`-th such row (0: none) is declined (token -1, logits returned), as a
  // device declines rows with non-finite logits.
  bool device_sampling = false;
  int decline_every = 0;
};

struct RecordedStep {
  int num_seqs = 0;
  int num_tokens = 0;
  std::vector<int64_t> seq_ids;
  std::vector<int> chunk_tokens;
  std::vector<int> start_pos;  // of each chunk
};

class FakeModelRunner : public engine::ModelRunner {
 public:
  explicit FakeModelRunner(FakeRunnerOptions options);

  const engine::ModelConfig& config() const override { return config_; }
  int kv_block_size() const override { return options_.kv_block_size; }
  int num_kv_blocks() const override { return options_.num_kv_blocks; }
  std::string device_name() const override { return "fake"; }
  bool samples_on_device() const override { return options_.device_sampling; }
  absl::Status Forward(const engine::ForwardBatch& batch, engine::ForwardResult* out) override;

  // Greedy next token after `history` (prompt + generated so far) under this runner's
  // logits: what a correct scheduler must produce.
  static int32_t ReferenceNextToken(const std::vector<int32_t>& history, int vocab_size);
  // The full greedy continuation (no eos handling): `n` tokens after `prompt`.
  static std::vector<int32_t> ReferenceGreedy(std::vector<int32_t> prompt, int n,
                                              int vocab_size);

  // What offload_stats() returns (default nullopt: a runner that does not offload).
  std::optional<engine::OffloadStats> offload_stats() const override;
  void set_offload_stats(std::optional<engine::OffloadStats> stats);

  void set_step_delay(absl::Duration d);
  std::vector<RecordedStep> steps() const;
  int64_t num_kv_writes() const;
  // Rows sampled / declined in device-sampling mode.
  int64_t num_device_sampled() const;
  int64_t num_device_declined() const;

 private:
  struct Slot {
    int32_t token = -1;
    int32_t pos = -1;
    int64_t owner = -1;
    uint64_t prefix_hash = 0;  // of tokens [0, pos] of the sequence that wrote it
  };
  absl::Status CheckBatch(const engine::ForwardBatch& batch) const;

  FakeRunnerOptions options_;
  engine::ModelConfig config_;
  std::vector<Slot> cache_;  // num_kv_blocks * kv_block_size slots; engine thread only
  int64_t device_asked_ = 0;  // rows asked to be sampled on the device; engine thread only
  mutable absl::Mutex mu_;
  absl::Duration step_delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::vector<RecordedStep> steps_ ABSL_GUARDED_BY(mu_);
  std::optional<engine::OffloadStats> offload_stats_ ABSL_GUARDED_BY(mu_);
  int64_t kv_writes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t device_sampled_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t device_declined_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace moe::scheduler::testing
