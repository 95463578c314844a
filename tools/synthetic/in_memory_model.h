// A synthetic model built in host memory instead of on disk, for benchmarks of shapes
// whose checkpoint would not fit (Mixtral-8x7B: 93 GB of bf16) or would be slow to write.
// The result is an engine::Checkpoint (Checkpoint::FromMemory) and its ModelConfig, ready
// for CreateCudaRunner / CreateCpuRunner / BindDecoderWeights.
//
// Values. Every non-expert tensor (embeddings, attention, norms, gates, pre-gates, the
// decoupled router, shared experts, Qwen dense MLPs, lm_head) holds exactly the values
// WriteSyntheticModel writes for the same spec: element i is a function of (seed, tensor
// name, i) (random_fill.h). Routed experts do NOT: the model's experts, numbered in model
// order (MoE layer by MoE layer, expert 0..E-1 within each), share `distinct_experts`
// buffers; expert g points at buffer g % distinct_experts, whose gate/up/down hold the
// values of expert g % distinct_experts's own tensors (its names, per-expert Hugging Face
// layout). So expert values repeat across the model. Routing and timing are unaffected:
// routing comes from the dense gates / pre-gates / router, which are exact, and an
// offloading runner still copies every expert into its own slot of its pinned pool, so
// every host-to-device copy moves real bytes. Token outputs differ from the on-disk model
// unless distinct_experts >= the number of experts (then every tensor is byte-identical
// to the written checkpoint).
//
// Memory: resident_bytes() = dense tensors + min(distinct_experts, experts) experts
// (what this object allocates); virtual_bytes() = the sum of all tensors (what the
// checkpoint would be on disk, and what Checkpoint::TotalBytes reports).
//
// The small text files (config.json, generation_config.json, tokenizer.json,
// tokenizer_config.json, as WriteSyntheticModel writes them) go to a fresh temporary
// directory, meta_dir(), removed by the destructor. The checkpoint's dir() is that
// directory, because the engine reads the routing block of config.json from
// Checkpoint::dir() (engine/models/binder_util.cc).
//
// Thread safety: immutable after BuildInMemoryModel; readable from any thread. The
// checkpoint's tensor data lives as long as the InMemoryModel: destroy runners first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "tools/synthetic/synthetic_spec.h"

namespace moe::tools {

class InMemoryModel {
 public:
  ~InMemoryModel();
  InMemoryModel(const InMemoryModel&) = delete;
  InMemoryModel& operator=(const InMemoryModel&) = delete;

  const engine::ModelConfig& config() const { return config_; }
  const engine::Checkpoint& checkpoint() const { return *checkpoint_; }
  const std::string& meta_dir() const { return meta_dir_; }

  uint64_t resident_bytes() const { return resident_bytes_; }
  uint64_t virtual_bytes() const { return virtual_bytes_; }
  int num_experts_total() const { return num_experts_total_; }  // routed experts, all layers
  int distinct_experts() const { return distinct_experts_; }     // buffers actually held

 private:
  friend absl::StatusOr<std::unique_ptr<InMemoryModel>> BuildInMemoryModel(
      const SyntheticSpec& spec, int distinct_experts, int threads);
  InMemoryModel() = default;

  struct FreeBytes {
    void operator()(char* p) const;
  };
  engine::ModelConfig config_;
  std::string meta_dir_;
  std::vector<std::unique_ptr<char, FreeBytes>> buffers_;  // dense arena, expert arena
  std::unique_ptr<engine::Checkpoint> checkpoint_;
  uint64_t resident_bytes_ = 0, virtual_bytes_ = 0;
  int num_experts_total_ = 0, distinct_experts_ = 0;
};

// Builds `spec` in memory with `distinct_experts` (>= 1; more than the model has is
// clamped) expert buffers, filling tensors on `threads` threads (<= 0: the machine's
// hardware concurrency). Errors: an invalid spec (naming the field), distinct_experts
// < 1, a tokenizer larger than the vocabulary, the temporary directory not writable,
// host memory exhausted (with the bytes asked for).
absl::StatusOr<std::unique_ptr<InMemoryModel>> BuildInMemoryModel(const SyntheticSpec& spec,
                                                                  int distinct_experts,
                                                                  int threads);

// The bytes BuildInMemoryModel would hold resident for `spec` (dense + distinct experts)
// and the whole checkpoint's bytes, without building anything. `spec` must be valid.
struct InMemoryFootprint {
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  int num_experts_total = 0;
};
InMemoryFootprint PlanInMemoryFootprint(const SyntheticSpec& spec, int distinct_experts);

}  // namespace moe::tools
