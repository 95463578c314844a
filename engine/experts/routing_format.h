// Checkpoint formats of the models whose routing is known ahead (FORMATS.md is the
// reference): how config.json says which routing a model uses, the names and shapes of
// the extra tensors, and binding them as views into the mapped checkpoint.
//
//   standard  every MoE layer routes with its own gate (the Hugging Face layout).
//   pregated  the first MoE layer keeps its own gate; every MoE layer but the last has
//             `model.layers.{l}.pregate.weight` [num_experts, hidden] which, applied to
//             layer l's MoE input, selects (and weights) the experts of the next MoE
//             layer. Later MoE layers have no gate of their own.
//   router    `model.router.{norm,up_proj,out_proj}.weight`: over each token's embedding,
//             logits [num_moe_layers * num_experts] giving every MoE layer's routing
//             before the step starts. No MoE layer has a gate of its own.
// config.json: "moe_serve_routing": {"mode": "pregated"|"router"|"standard",
//   "router_hidden_size": R (router only)}; absent means standard.
//
// Thread safety: pure functions; RoutingWeights is immutable and valid while its
// Checkpoint lives.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"

namespace moe::engine {

enum class RoutingMode { kStandard, kPregated, kRouter };
const char* RoutingModeName(RoutingMode m);  // "standard", "pregated", "router"
absl::StatusOr<RoutingMode> ParseRoutingMode(absl::string_view name);

inline constexpr const char* kRoutingConfigKey = "moe_serve_routing";

struct RoutingFormat {
  RoutingMode mode = RoutingMode::kStandard;
  int router_hidden_size = 0;   // router mode
  std::vector<int> moe_layers;  // the MoE layers, ascending

  // Index of `layer` among the MoE layers, -1 if dense.
  int MoeIndex(int layer) const;
  // The MoE layer after `layer`, -1 if none.
  int NextMoeLayer(int layer) const;
};

// Tensor names.
std::string PregateTensorName(int layer);  // model.layers.{l}.pregate.weight
inline constexpr const char* kRouterNormTensor = "model.router.norm.weight";
inline constexpr const char* kRouterUpTensor = "model.router.up_proj.weight";
inline constexpr const char* kRouterOutTensor = "model.router.out_proj.weight";
// The family's own gate of `layer` (block_sparse_moe.gate / mlp.gate).
std::string OwnGateTensorName(const ModelConfig& config, int layer);

// Reads the routing block of config.json text; `config` (parsed from the same text)
// gives the layers. Errors name the key: an unknown mode, a missing or non-positive
// router_hidden_size, a model without MoE layers.
absl::StatusOr<RoutingFormat> ParseRoutingFormat(absl::string_view config_json,
                                                 const ModelConfig& config);
// Reads `dir`/config.json.
absl::StatusOr<RoutingFormat> LoadRoutingFormat(const std::string& dir, const ModelConfig& config);

struct RoutingWeights {
  RoutingFormat format;
  // pregated: per layer (num_layers entries), [num_experts, hidden] where the layer has
  // a pre-gate, absent elsewhere.
  std::vector<WeightRef> pregate;
  // router: norm [hidden], up_proj [router_hidden, hidden],
  // out_proj [num_moe_layers * num_experts, router_hidden].
  WeightRef router_norm, router_up, router_out;
};

// Checks the checkpoint against `format` and binds the extra tensors: every expected
// tensor present with its shape; no own gate where the format says there is none; no
// pregate / router tensors in a standard checkpoint (which would mean the config lost
// its routing block). Errors name the tensor.
absl::StatusOr<RoutingWeights> BindRoutingWeights(const Checkpoint& ckpt,
                                                  const ModelConfig& config,
                                                  const RoutingFormat& format);

}  // namespace moe::engine
