// Helpers shared by the per-family binders: fetch checkpoint tensors with the shape the
// config implies (errors name the tensor, its file and both shapes), and bind the parts
// most families share (attention, norms, embeddings, experts in either on-disk layout).
//
// Thread safety: pure functions of the checkpoint and config.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "engine/experts/routing_format.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"

// Assigns the value of a StatusOr expression to `lhs`, or returns its error.
#define MOE_BIND_OR_RETURN(lhs, expr) \
  do {                                \
    auto _bind_result = (expr);       \
    if (!_bind_result.ok()) return _bind_result.status(); \
    lhs = *std::move(_bind_result);   \
  } while (0)

namespace moe::engine::binder {

// The tensor `name` of exactly [rows, cols].
absl::StatusOr<WeightRef> Matrix(const Checkpoint& ckpt, const std::string& name, int64_t rows,
                                 int64_t cols);
// The tensor `name` of exactly [n].
absl::StatusOr<WeightRef> Vector(const Checkpoint& ckpt, const std::string& name, int64_t n);

// Embeddings, final norm and lm_head (tied to the embeddings when the config says so).
absl::Status BindEmbeddingsAndHead(const Checkpoint& ckpt, const ModelConfig& config,
                                   DecoderWeights* w);

// input/post-attention norms and q/k/v/o projections of layer `l`; biases if
// `config.attention_bias` (q/k/v) / `config.o_proj_bias`.
absl::Status BindAttention(const Checkpoint& ckpt, const ModelConfig& config, int l,
                           LayerWeights* layer);

// How a family names its per-expert tensors.
struct ExpertNames {
  std::string moe_prefix;  // e.g. "model.layers.3.mlp" (router is <prefix>.gate.weight)
  std::string gate = "gate_proj";
  std::string up = "up_proj";
  std::string down = "down_proj";
  // Whether the block has its own gate `<prefix>.gate.weight` (see RoutingPlan::OwnGate).
  bool own_gate = true;
};

// The router and the experts of an MoE block under `names.moe_prefix`, in either layout:
// per-expert `<prefix>.experts.{j}.<gate|up|down>.weight`, or fused
// `<prefix>.experts.gate_up_proj` [E, 2*I, H] (gate rows, then up rows) and
// `<prefix>.experts.down_proj` [E, H, I]. Sets *fused when the fused form was found.
absl::Status BindRouterAndExperts(const Checkpoint& ckpt, const ModelConfig& config,
                                  const ExpertNames& names, LayerWeights* layer, bool* fused);

// A gate/up/down FFN `<prefix>.{gate_proj,up_proj,down_proj}.weight` of width `width`.
absl::StatusOr<FfnWeights> BindFfn(const Checkpoint& ckpt, const ModelConfig& config,
                                   const std::string& prefix, int64_t width);

// The checkpoint's routing variant (config.json's "moe_serve_routing", FORMATS.md) and
// its extra tensors, checked and bound by engine/experts' BindRoutingWeights: a missing
// pre-gate / router tensor, an own gate where the variant has none, or routing tensors
// in a standard checkpoint fail naming the tensor.
struct RoutingPlan {
  RoutingWeights routing;
  // Whether MoE layer `l` has its own gate: always in standard checkpoints, only the
  // first MoE layer in pre-gated ones, never in router ones.
  bool OwnGate(int l) const;
};
absl::StatusOr<RoutingPlan> PlanRouting(const Checkpoint& ckpt, const ModelConfig& config);
// Records the variant and its tensors (pre-gates, decoupled router) in `w`, whose layers
// must already be bound.
void ApplyRouting(const RoutingPlan& plan, DecoderWeights* w);

std::string LayerPrefix(int l);  // "model.layers.<l>"

}  // namespace moe::engine::binder
