// The engine's contract with its callers (the scheduler, moe_generate, tests): run one
// forward step over a batch of sequences, each contributing a chunk of new tokens (a
// prefill chunk or one decode token), against a paged KV cache whose blocks the caller
// allocates and the runner stores.
//
// Thread safety: a ModelRunner is driven by one thread at a time (the engine thread).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/loader/model_config.h"

namespace moe::engine {

// One sequence's share of a step.
struct SequenceChunk {
  int64_t seq_id = 0;
  // Tokens to process now; their positions are start_pos, start_pos + 1, ...
  absl::Span<const int32_t> tokens;
  // Tokens of this sequence already in the KV cache (written by earlier steps).
  int32_t start_pos = 0;
  // Physical KV blocks of this sequence, in order; they must cover positions
  // [0, start_pos + tokens.size()). Block b holds positions [b*B, (b+1)*B) where B is
  // kv_block_size().
  absl::Span<const int32_t> block_table;
  // Which logits to return: none (a non-final prefill chunk), the last token's, or every
  // token's (teacher forcing / prompt logprobs).
  enum class Logits { kNone, kLast, kAll };
  Logits logits = Logits::kLast;
  // With logits == kLast on a runner whose samples_on_device() is true: sample the row on
  // the device instead of returning its logits (other runners ignore it).
  struct DeviceSampling {
    bool enabled = false;
    float temperature = 0.f;  // as engine::SamplingParams; 0 (or top_k 1) is greedy
    int32_t top_k = 0;
    float top_p = 1.f;
    double u = 0.0;  // the request's uniform draw for this token (Sampler::NextUniform)
  };
  DeviceSampling sampling;
};

struct ForwardBatch {
  std::vector<SequenceChunk> seqs;
  // Expert-aware batching: ask the runner for ForwardResult::footprints (runners whose
  // expert_footprint_keys() is 0 ignore it).
  bool want_footprints = false;
};

// The (MoE layer, expert) pairs a sequence's next decode token is expected to use, as a
// bitset over footprint keys: bit (moe_index * num_experts + expert), moe_index counting
// MoE layers only. `exact` when the runner knows it (a decoupled router applied to the
// token the runner itself sampled), otherwise an estimate (the experts the sequence's
// tokens used in this step).
struct ExpertFootprint {
  std::vector<uint64_t> bits;  // ceil(expert_footprint_keys() / 64) words; empty: unknown
  bool exact = false;
};

struct ForwardResult {
  // Row-major [rows, vocab_size] fp32 logits. Rows appear in batch order: for each
  // sequence, none, one (kLast) or tokens.size() (kAll) rows.
  std::vector<float> logits;
  // row_begin[i] is the first row of batch.seqs[i]; row_begin.back() == total rows.
  std::vector<int32_t> row_begin;
  int32_t vocab_size = 0;
  // Per row: the token sampled on the device, or -1 where the caller samples from row(r)
  // (sampling not asked for, or declined: the device leaves rows with a NaN or no finite
  // maximum to the host). Empty when no row was sampled on the device. Rows that carry a
  // token have no logits (row(r) is unspecified there).
  std::vector<int32_t> tokens;
  // With ForwardBatch::want_footprints on a runner with expert_footprint_keys() > 0: one
  // per batch.seqs entry (bits empty where unknown, e.g. a non-final prefill chunk may
  // still report what its tokens used). Empty otherwise.
  std::vector<ExpertFootprint> footprints;
  const float* row(int32_t r) const { return logits.data() + static_cast<size_t>(r) * vocab_size; }
};

// Expert offload (CUDA backend; engine/experts/ for the bookkeeping): every expert's weights
// in pinned host memory, a GPU expert cache of `expert_cache_gb` (0: what the memory budget
// leaves after dense weights and KV), a prefetcher driven by a predictor.
struct OffloadOptions {
  std::string mode = "auto";      // "auto" (offload only when the experts do not fit), "off", "on"
  double expert_cache_gb = 0;     // >= 0
  std::string prefetch = "auto";  // "auto" (the checkpoint's exact predictor, else next-gate),
                                  // "off", "next-gate", "pregate", "router"
  int prefetch_depth = 1;         // MoE layers ahead, >= 1
  // "lfu" (default: LRU thrashes once a step's experts outnumber the slots), "lru", "belady"
  // (its oracle is fed by the predictor; without foresight it degrades badly).
  std::string policy = "lfu";
};

// Cumulative expert-offload counters since load (for /metrics). Per MoE layer where noted.
struct OffloadLayerStats {
  int32_t layer = 0;
  int64_t hits = 0, misses = 0;
  int64_t prefetch_issued = 0, prefetch_used = 0, prefetch_wasted = 0;
  // Predictor quality: experts predicted for this layer, of those actually used, and
  // experts actually used (precision = correct / predicted, recall = correct / actual).
  int64_t predicted = 0, predicted_correct = 0, actual = 0;
};
struct OffloadStats {
  int32_t num_slots = 0;          // GPU expert cache slots
  int32_t num_experts_total = 0;  // layers x experts
  uint64_t h2d_bytes = 0;         // expert bytes copied host -> device
  std::string prefetch;           // the predictor in use ("off", "next-gate", ...)
  std::string policy;             // eviction policy
  std::vector<OffloadLayerStats> layers;
  // Histogram of the compute stream's wait for expert copies, one observation per step:
  // cumulative counts per upper bound (seconds), as Prometheus wants; +Inf is `stall_count`.
  std::vector<double> stall_bucket_bounds;
  std::vector<int64_t> stall_bucket_counts;
  double stall_seconds_sum = 0;
  int64_t stall_count = 0;
};

struct RunnerOptions {
  int kv_block_size = 16;
  // KV cache size in blocks; 0 means "derive from kv_cache_bytes".
  int num_kv_blocks = 0;
  size_t kv_cache_bytes = 256ull << 20;
  int num_threads = 0;  // CPU backend: 0 = all cores
  // CUDA backend: storage type of weights, KV cache and GEMM inputs: "auto" (the
  // checkpoint's dtype, as vLLM's --dtype auto), "bf16", "fp16" or "fp32". The CPU
  // backend always computes in fp32 on the weights as stored, and ignores it.
  std::string dtype = "auto";
  // CUDA backend: fraction of the GPU's total memory the runner may use for weights, KV
  // cache, expert cache and scratch (as vLLM's --gpu-memory-utilization). Checked at load.
  double gpu_memory_utilization = 0.9;
  OffloadOptions offload;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual const ModelConfig& config() const = 0;
  virtual int kv_block_size() const = 0;
  virtual int num_kv_blocks() const = 0;
  // "cpu" or the CUDA device's name.
  virtual std::string device_name() const = 0;
  // Whether Forward honours SequenceChunk::sampling (the CUDA backend does).
  virtual bool samples_on_device() const { return false; }

  // Runs one step. Fails (leaving the KV cache unchanged for positions it did not
  // reach) on a malformed batch: a token id outside the vocabulary, a block table that
  // does not cover the chunk, a block index out of range, a position past the model's
  // context.
  virtual absl::Status Forward(const ForwardBatch& batch, ForwardResult* out) = 0;

  // Expert-offload counters, or nullopt when the runner does not offload. Unlike the rest
  // of the interface this is safe to call from any thread while Forward runs (a snapshot
  // taken under the runner's lock at the end of each step).
  virtual std::optional<OffloadStats> offload_stats() const { return std::nullopt; }

  // Expert-aware batching (scheduler/expert_aware_composer.h). Footprint key count
  // (num MoE layers x num experts) when the runner can report ExpertFootprints, else 0.
  virtual int32_t expert_footprint_keys() const { return 0; }
  // (MoE layer, expert) pairs the GPU expert cache holds at once; 0 when every expert is
  // resident (expert-aware batching then has nothing to save).
  virtual int32_t expert_cache_slots() const { return 0; }
  // Decoupled-router checkpoints: a token's routing depends on its id alone, so the
  // footprint of a sequence's next step is known as soon as its token is sampled. Fills
  // `out` (exact) and returns true where the runner can; false otherwise (own gates,
  // pre-gates: use ForwardResult::footprints' estimate). Called from the engine thread
  // between Forward calls; must not block on the device for long.
  virtual bool TokenFootprint(int32_t token, ExpertFootprint* out) { return false; }
  // The footprint keys (same bit layout as ExpertFootprint) resident in the GPU expert
  // cache after the last Forward, so expert-aware batching can prefer sequences whose
  // experts are already there. Fills `bits` (ceil(expert_footprint_keys() / 64) words) and
  // returns true where the runner knows; false otherwise (no offload, or not tracked).
  // Engine thread, between Forward calls; host bookkeeping only, never waits on the device.
  virtual bool ResidentExpertKeys(std::vector<uint64_t>* bits) const { return false; }
};

}  // namespace moe::engine
