// Where each MoE layer's routing comes from in one CPU step, for the three checkpoint
// variants of engine/experts/FORMATS.md, written into the step's RoutingRecord:
//   standard  layer l's own gate over its gate input;
//   pregated  the first MoE layer's own gate; at every MoE layer with a pre-gate, the
//             pre-gate over the same input routes the next MoE layer (exact foresight);
//   router    before layer 0, the decoupled router over the token embeddings routes every
//             MoE layer at once.
// All use softmax over the experts, top-k, and renormalisation when the family's
// router_renormalize says so (the same RouterSoftmaxTopK as the standard path).
//
// Thread safety: owned by the runner; driven by the engine thread.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/ffn_step.h"
#include "engine/cpu/step_context.h"
#include "engine/experts/routing_record.h"

namespace moe::engine::cpu {

class RoutingStep {
 public:
  RoutingStep(const ModelConfig& config, const DecoderWeights& weights);

  // Starts a step: sizes the record for ctx.num_tokens; in router mode routes every MoE
  // layer from `embeddings` [T, hidden] (the fp32 embedding rows of ctx.tokens).
  void Begin(const StepContext& ctx, const float* embeddings);

  // At MoE layer `l` with gate input h [T, hidden] (after post_attention_layernorm):
  // fills what this variant computes there (own gate, pre-gate for the next MoE layer)
  // using `ffn` to route; returns the record's index of layer l.
  int AtMoeLayer(const StepContext& ctx, int l, const float* h, FfnStep* ffn);

  const int32_t* topk_idx(int moe_index) const {
    return record_.expert_ids.data() + record_.Offset(moe_index, 0);
  }
  const float* topk_weight(int moe_index) const {
    return record_.weights.data() + record_.Offset(moe_index, 0);
  }
  const RoutingRecord& record() const { return record_; }

 private:
  void RouteFromEmbeddings(const StepContext& ctx, const float* embeddings);

  const ModelConfig& config_;
  const DecoderWeights& weights_;
  RoutingRecord record_;
  std::vector<float> normed_, up_, logits_, tmp_w_;
  std::vector<int32_t> tmp_idx_;
};

}  // namespace moe::engine::cpu
