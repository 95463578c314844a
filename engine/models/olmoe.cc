// OLMoE (OlmoeForCausalLM): RMSNorm over the whole q projection (`self_attn.q_norm`,
// [heads * head_dim]) and k projection (`k_norm`, [kv_heads * head_dim]); with clip_qkv,
// q, k and v are clamped to [-c, c] after the projections and the q/k norms (the order
// transformers' OlmoeAttention uses), before RoPE. Every layer is sparse.
#include "engine/models/binder_util.h"
#include "engine/models/registry.h"

namespace moe::engine {

absl::StatusOr<DecoderWeights> BindOlmoe(const Checkpoint& ckpt, const ModelConfig& config) {
  DecoderWeights w;
  w.router_renormalize = config.norm_topk_prob;
  w.qk_norm = QkNorm::kWholeProjection;
  w.clip_qkv = config.clip_qkv;
  absl::Status s = binder::BindEmbeddingsAndHead(ckpt, config, &w);
  if (!s.ok()) return s;
  auto plan = binder::PlanRouting(ckpt, config);
  if (!plan.ok()) return plan.status();
  w.layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    LayerWeights& layer = w.layers[l];
    s = binder::BindAttention(ckpt, config, l, &layer);
    if (!s.ok()) return s;
    const std::string a = binder::LayerPrefix(l) + ".self_attn.";
    MOE_BIND_OR_RETURN(layer.q_norm, binder::Vector(ckpt, a + "q_norm.weight", config.q_size()));
    MOE_BIND_OR_RETURN(layer.k_norm, binder::Vector(ckpt, a + "k_norm.weight", config.kv_size()));
    layer.is_moe = true;
    binder::ExpertNames names;
    names.moe_prefix = binder::LayerPrefix(l) + ".mlp";
    names.own_gate = plan->OwnGate(l);
    bool fused = false;
    s = binder::BindRouterAndExperts(ckpt, config, names, &layer, &fused);
    if (!s.ok()) return s;
    w.expert_layout_fused |= fused;
  }
  binder::ApplyRouting(*plan, &w);
  return w;
}

}  // namespace moe::engine
