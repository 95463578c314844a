// Qwen2-MoE (Qwen2MoeForCausalLM): q/k/v biases; sparse layers carry a shared expert
// (`mlp.shared_expert.{gate,up,down}_proj`) scaled by sigmoid(`mlp.shared_expert_gate`
// [1, hidden] · x); layers that are not sparse have a dense `mlp.{gate,up,down}_proj`.
#include "engine/models/binder_util.h"
#include "engine/models/registry.h"

namespace moe::engine {

absl::StatusOr<DecoderWeights> BindQwen2Moe(const Checkpoint& ckpt, const ModelConfig& config) {
  DecoderWeights w;
  w.router_renormalize = config.norm_topk_prob;
  absl::Status s = binder::BindEmbeddingsAndHead(ckpt, config, &w);
  if (!s.ok()) return s;
  auto plan = binder::PlanRouting(ckpt, config);
  if (!plan.ok()) return plan.status();
  w.layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    LayerWeights& layer = w.layers[l];
    // Qwen2-MoE's q/k/v always carry biases in transformers; older configs do not say so.
    ModelConfig attn_config = config;
    attn_config.attention_bias =
        config.attention_bias ||
        ckpt.Find(binder::LayerPrefix(l) + ".self_attn.q_proj.bias") != nullptr;
    s = binder::BindAttention(ckpt, attn_config, l, &layer);
    if (!s.ok()) return s;
    const std::string mlp = binder::LayerPrefix(l) + ".mlp";
    layer.is_moe = config.IsMoeLayer(l);
    if (!layer.is_moe) {
      MOE_BIND_OR_RETURN(layer.dense_mlp, binder::BindFfn(ckpt, config, mlp, config.intermediate_size));
      continue;
    }
    binder::ExpertNames names;
    names.moe_prefix = mlp;
    names.own_gate = plan->OwnGate(l);
    bool fused = false;
    s = binder::BindRouterAndExperts(ckpt, config, names, &layer, &fused);
    if (!s.ok()) return s;
    w.expert_layout_fused |= fused;
    if (config.shared_expert_intermediate_size > 0) {
      MOE_BIND_OR_RETURN(layer.shared_expert,
                         binder::BindFfn(ckpt, config, mlp + ".shared_expert",
                                         config.shared_expert_intermediate_size));
      MOE_BIND_OR_RETURN(layer.shared_expert_gate,
                         binder::Matrix(ckpt, mlp + ".shared_expert_gate.weight", 1,
                                        config.hidden_size));
    }
  }
  binder::ApplyRouting(*plan, &w);
  return w;
}

}  // namespace moe::engine
