// The feed-forward half of a decoder layer on the CPU: a dense SwiGLU MLP, or an MoE
// block: route every token (softmax over all experts, top-k, optional renormalisation),
// group tokens by expert, run each active expert once over its tokens, combine with the
// routing weights (in ascending expert order, as transformers does), then add the shared
// expert scaled by sigmoid(shared_expert_gate · x) when the family has one.
//
// Thread safety: called by the engine thread; parallel inside on ctx.pool.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/step_context.h"

namespace moe::engine::cpu {

class FfnStep {
 public:
  explicit FfnStep(const ModelConfig& config) : config_(config) {}

  // h: [T, hidden] normalised input; out: [T, hidden]. An MoE layer routes with its own
  // gate (layer.router).
  void Run(const StepContext& ctx, const LayerWeights& layer, const float* h, float* out);

  // Routes every token of h [T, hidden] with `gate` [num_experts, hidden]: softmax over
  // the experts, top-k, renormalised when ctx.weights->router_renormalize.
  // topk_idx / topk_weight: [T, k], descending weight.
  void Route(const StepContext& ctx, const WeightRef& gate, const float* h, int32_t* topk_idx,
             float* topk_weight);
  // The MoE block of `layer` with a given routing ([T, k] as Route writes it).
  void RunRoutedMoe(const StepContext& ctx, const LayerWeights& layer, const float* h,
                    const int32_t* topk_idx, const float* topk_weight, float* out);

  // Per expert, how many tokens the last MoE layer routed to it (for tests/metrics).
  const std::vector<int32_t>& last_expert_load() const { return expert_load_; }

 private:
  // out[n, hidden] = down(silu(gate(x)) * up(x)) for x: [n, hidden].
  void RunFfn(const StepContext& ctx, const FfnWeights& f, const float* x, int64_t n, float* out);
  void RunMoe(const StepContext& ctx, const LayerWeights& layer, const float* h, float* out);

  const ModelConfig& config_;
  std::vector<float> gate_, up_;
  std::vector<float> router_logits_, topk_w_, gathered_, expert_out_, shared_out_, shared_logit_;
  std::vector<int32_t> topk_idx_, expert_load_;
};

}  // namespace moe::engine::cpu
