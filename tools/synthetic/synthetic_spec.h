// What a synthetic (random-weight) MoE checkpoint looks like: its family, its shape, and
// how its files are written. Shapes come from model profiles (configs/profiles/*.json,
// embedded in the binary as the built-in profiles) or from a profile file.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/dtype.h"

namespace moe::tools {

enum class Family { kMixtral, kQwen2Moe, kQwen3Moe, kOlmoe };

// "mixtral", "qwen2_moe", "qwen3_moe", "olmoe" (the --arch spelling, also config.json's
// model_type).
const char* FamilyName(Family f);
absl::StatusOr<Family> ParseFamily(absl::string_view name);  // error lists the known ones

// How the checkpoint routes tokens to experts (engine/experts/FORMATS.md):
//   standard  each MoE layer's own gate (Hugging Face layout);
//   pregated  the first MoE layer's own gate, then model.layers.{l}.pregate.weight in each
//             MoE layer but the last, selecting the next MoE layer's experts;
//   router    model.router.{norm,up_proj,out_proj}.weight over token embeddings, giving
//             every MoE layer's routing; no per-layer gates.
// config.json gets "moe_serve_routing": {"mode": ..., "router_hidden_size": ...} for the
// latter two.
enum class Routing { kStandard, kPregated, kRouter };
const char* RoutingName(Routing r);                       // "standard", "pregated", "router"
absl::StatusOr<Routing> ParseRouting(absl::string_view name);  // error lists the known ones

// config.json spelling: transformers 5 (`rope_parameters`, `dtype`) or 4.x (`rope_theta`,
// `rope_scaling`, `torch_dtype` at top level).
enum class ConfigStyle { kHf5, kHf4 };

struct SyntheticSpec {
  std::string profile_name;
  Family family = Family::kOlmoe;

  // Shape.
  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // OLMoE and Qwen2-MoE require hidden_size / num_heads
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int moe_intermediate_size = 0;  // each expert's width (Mixtral/OLMoE: intermediate_size)
  int intermediate_size = 0;      // dense MLP width (Qwen families; written to config)
  int shared_expert_intermediate_size = 0;  // Qwen2-MoE only
  bool norm_topk_prob = false;
  int decoder_sparse_step = 1;        // Qwen families: which layers are MoE
  std::vector<int> mlp_only_layers;   // Qwen families: dense layers
  int max_position_embeddings = 4096;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;

  // Routing variant and, for kRouter, the router's hidden width (0: hidden_size).
  Routing routing = Routing::kStandard;
  int router_hidden_size = 0;
  int RouterHiddenSize() const { return router_hidden_size > 0 ? router_hidden_size : hidden_size; }

  // Weights and files.
  uint64_t seed = 0;
  DType dtype = DType::kBF16;  // kBF16, kF16 or kF32
  ConfigStyle config_style = ConfigStyle::kHf5;
  uint64_t shard_size_bytes = uint64_t{4} << 30;  // shards when the total exceeds it
  // HF's initializer_range. With fan_in_scaling, a matrix of fan-in f gets
  // std = init_std * 50 / sqrt(f) (= 1/sqrt(f) at the default), so each projection keeps
  // activations near unit scale and a random model's routing, attention and logits are
  // not degenerate; embeddings get init_std * 50. Without it, every matrix gets init_std.
  float init_std = 0.02f;
  bool fan_in_scaling = true;
  float norm_noise = 0.05f;  // norm weights are 1 + norm_noise * N(0, 1)
  int tokenizer_merges = 0;  // 0: min(400, what fits in vocab_size)

  bool IsMoeLayer(int layer) const;
};

// Checks the shape and write options; errors name the field.
absl::Status ValidateSpec(const SyntheticSpec& spec);

// Builds a spec from profile JSON. `arch_override`, when set, replaces the profile's
// family; a profile without "arch_overridable": true refuses a different one.
// Family defaults fill what the profile leaves out (norm_topk_prob: Qwen3 and Mixtral
// true, OLMoE and Qwen2 false). Errors name the field and `source` (a file name).
absl::StatusOr<SyntheticSpec> SpecFromProfileJson(absl::string_view json,
                                                  absl::string_view source,
                                                  std::optional<Family> arch_override);

// The built-in profiles (configs/profiles/*.json, embedded at build time).
std::vector<std::string> BuiltinProfileNames();  // sorted
// The JSON text of a built-in profile; NotFound lists the known names.
absl::StatusOr<std::string> BuiltinProfileJson(absl::string_view name);

}  // namespace moe::tools
