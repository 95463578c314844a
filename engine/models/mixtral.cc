// Mixtral (MixtralForCausalLM): no attention biases, every layer sparse, the router
// always renormalises its top-k weights. Experts are `block_sparse_moe.experts.{j}.w1`
// (gate), `w3` (up), `w2` (down); transformers 5 may name the block `mlp` and fuse the
// experts (`experts.gate_up_proj` / `experts.down_proj`).
#include "absl/strings/str_cat.h"
#include "engine/models/binder_util.h"
#include "engine/models/registry.h"

namespace moe::engine {

absl::StatusOr<DecoderWeights> BindMixtral(const Checkpoint& ckpt, const ModelConfig& config) {
  DecoderWeights w;
  w.router_renormalize = true;
  absl::Status s = binder::BindEmbeddingsAndHead(ckpt, config, &w);
  if (!s.ok()) return s;
  auto plan = binder::PlanRouting(ckpt, config);
  if (!plan.ok()) return plan.status();
  w.layers.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    LayerWeights& layer = w.layers[l];
    s = binder::BindAttention(ckpt, config, l, &layer);
    if (!s.ok()) return s;
    binder::ExpertNames names;
    const std::string legacy = binder::LayerPrefix(l) + ".block_sparse_moe";
    // Pre-gated / router checkpoints lack the gate in most layers: the experts tell too.
    const bool is_legacy = ckpt.Find(legacy + ".gate.weight") != nullptr ||
                           ckpt.Find(legacy + ".experts.0.w1.weight") != nullptr ||
                           ckpt.Find(legacy + ".experts.0.gate_proj.weight") != nullptr ||
                           ckpt.Find(legacy + ".experts.gate_up_proj") != nullptr;
    names.moe_prefix = is_legacy ? legacy : binder::LayerPrefix(l) + ".mlp";
    names.gate = "w1";
    names.up = "w3";
    names.down = "w2";
    if (ckpt.Find(absl::StrCat(names.moe_prefix, ".experts.0.w1.weight")) == nullptr &&
        ckpt.Find(absl::StrCat(names.moe_prefix, ".experts.0.gate_proj.weight")) != nullptr) {
      names.gate = "gate_proj";
      names.up = "up_proj";
      names.down = "down_proj";
    }
    layer.is_moe = true;
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
