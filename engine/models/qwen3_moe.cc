// Qwen3-MoE (Qwen3MoeForCausalLM): per-head RMSNorm of q and k (`self_attn.q_norm` /
// `k_norm`, [head_dim]) before RoPE; no shared expert; layers that are not sparse have
// a dense `mlp.{gate,up,down}_proj`.
#include "engine/models/binder_util.h"
#include "engine/models/registry.h"

namespace moe::engine {

absl::StatusOr<DecoderWeights> BindQwen3Moe(const Checkpoint& ckpt, const ModelConfig& config) {
  DecoderWeights w;
  w.router_renormalize = config.norm_topk_prob;
  w.qk_norm = QkNorm::kPerHead;
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
    MOE_BIND_OR_RETURN(layer.q_norm, binder::Vector(ckpt, a + "q_norm.weight", config.head_dim));
    MOE_BIND_OR_RETURN(layer.k_norm, binder::Vector(ckpt, a + "k_norm.weight", config.head_dim));
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
  }
  binder::ApplyRouting(*plan, &w);
  return w;
}

}  // namespace moe::engine
