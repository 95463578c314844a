// The CPU reference backend: runs every supported MoE family in fp32 on weights read
// straight from the memory-mapped checkpoint (F32/F16/BF16, converted inside the kernels),
// multithreaded over all cores, with an fp32 paged KV cache it owns. It follows Hugging
// Face transformers' fp32 math, so its logprobs match transformers to ~1e-4.
//
// Routing variants (engine/experts/FORMATS.md, from config.json's "moe_serve_routing"):
// standard checkpoints route each MoE layer with its own gate; pre-gated ones route MoE
// layer l with the pre-gate of the previous MoE layer (the first with its own gate);
// router ones route every MoE layer from the token embeddings before layer 0. The
// outputs are the model's, whatever the variant.
//
// Expert footprints (expert-aware batching, model_runner.h): every expert is resident, so
// expert_cache_slots() is 0; with ForwardBatch::want_footprints each sequence's footprint
// is the (MoE layer, expert) set its chunk's tokens used in the step; TokenFootprint is
// exact for router checkpoints (the router applied to the token alone, cached for up to
// 65,536 token ids) and false otherwise.
//
// Thread safety: as ModelRunner: one thread drives Forward at a time; last_routing() is
// read on that thread between steps; TokenFootprint is called on that thread too (it
// shares the thread pool and its cache with no lock).
#pragma once

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/experts/routing_record.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"

namespace moe::engine {

// The CPU runner's interface beyond ModelRunner. CreateCpuRunner's runners implement it
// (reach it with AsCpuRunner).
class CpuRunner : public ModelRunner {
 public:
  // The routing the last successful Forward used: per MoE layer and token (batch order),
  // the experts and combine weights. Null before the first step or after a step that
  // failed validation. Valid until the next Forward.
  virtual const RoutingRecord* last_routing() const = 0;
  // Optional hook, called at the end of every successful Forward with its routing (on
  // the engine thread; may be empty to remove it).
  using RoutingObserver = std::function<void(const RoutingRecord&)>;
  virtual void set_routing_observer(RoutingObserver observer) = 0;
  // Optional hook, called in every Forward at each layer right after its attention block
  // with that layer's residual stream [num_tokens, hidden] fp32 (the input of its
  // post-attention norm: what engine/experts' PredictorInput::hidden is) and the step's
  // token ids (batch order). The pointers are valid during the call only. For
  // predictors run alongside the step, and tests.
  using LayerObserver = std::function<void(int layer, const float* hidden, int64_t num_tokens,
                                           absl::Span<const int32_t> token_ids)>;
  virtual void set_layer_observer(LayerObserver observer) = 0;
};

// `runner` as a CpuRunner, or null when it is another backend's.
inline CpuRunner* AsCpuRunner(ModelRunner* runner) { return dynamic_cast<CpuRunner*>(runner); }
inline const CpuRunner* AsCpuRunner(const ModelRunner* runner) {
  return dynamic_cast<const CpuRunner*>(runner);
}

// Binds `checkpoint`'s tensors for config.arch (failing on a missing or wrong-shaped
// tensor, naming it) and allocates the KV cache: options.num_kv_blocks blocks, or as
// many as fit in options.kv_cache_bytes when that is 0. `checkpoint` must outlive the
// runner.
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCpuRunner(const Checkpoint& checkpoint,
                                                             const ModelConfig& config,
                                                             const RunnerOptions& options);

}  // namespace moe::engine
