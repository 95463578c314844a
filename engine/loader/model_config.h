// The shape and variant flags of a decoder-only MoE model, read from a Hugging Face
// config.json (+ generation_config.json). One struct covers every supported family; each
// family's file under engine/models/ fills in what is specific to it.
//
// Both config spellings in the wild are accepted: transformers 4.x (`rope_theta`,
// `rope_scaling` at top level) and 5.x (`rope_parameters: {rope_theta, rope_type, ...}`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::engine {

enum class Architecture {
  kMixtral,   // MixtralForCausalLM
  kQwen2Moe,  // Qwen2MoeForCausalLM
  kQwen3Moe,  // Qwen3MoeForCausalLM
  kOlmoe,     // OlmoeForCausalLM
};

enum class QkNorm {
  kNone,
  kPerHead,          // RMSNorm over each head's head_dim (Qwen3-MoE)
  kWholeProjection,  // RMSNorm over the whole q / k projection (OLMoE)
};

// How the router turns logits into the top-k experts' weights.
enum class RouterScoring {
  kSoftmaxThenTopK,  // softmax over all experts, top-k, optional renormalisation
};

struct ModelConfig {
  Architecture arch = Architecture::kMixtral;
  std::string architecture_name;  // as in config.json's "architectures"[0]
  std::string model_type;         // config.json's "model_type"

  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;  // explicit `head_dim`, else hidden_size / num_heads

  // Dense MLP width (Qwen2/3-MoE dense layers); 0 if the model has none.
  int intermediate_size = 0;
  // Experts.
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int moe_intermediate_size = 0;  // each expert's FFN width
  bool norm_topk_prob = false;    // renormalise the top-k weights to sum to 1
  RouterScoring router_scoring = RouterScoring::kSoftmaxThenTopK;
  // Qwen2-MoE's shared expert: width 0 means none. Its output is scaled by
  // sigmoid(shared_expert_gate · x).
  int shared_expert_intermediate_size = 0;
  // Which layers are MoE: layer l is sparse iff num_experts > 0, l is not in
  // mlp_only_layers and (l + 1) % decoder_sparse_step == 0.
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;

  // Attention.
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2-MoE)
  bool o_proj_bias = false;
  QkNorm qk_norm = QkNorm::kNone;
  std::optional<float> clip_qkv;  // OLMoE: clamp q, k, v to [-c, c]
  int sliding_window = 0;         // 0: full causal attention

  // RoPE (rotate-half / NeoX style, as all four families use).
  double rope_theta = 10000.0;
  std::string rope_type = "default";  // "default" or "linear"
  double rope_scaling_factor = 1.0;   // for "linear"
  double partial_rotary_factor = 1.0;

  float rms_norm_eps = 1e-6f;
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;

  int bos_token_id = -1;
  // Stop ids: config.json's eos_token_id and generation_config.json's, merged, in order.
  std::vector<int> eos_token_ids;
  std::string torch_dtype;  // informational

  bool IsMoeLayer(int layer) const;
  int q_size() const { return num_heads * head_dim; }
  int kv_size() const { return num_kv_heads * head_dim; }
};

// Parses config.json text (and, if not empty, generation_config.json text). Errors name
// the field: a missing or mistyped required key, an unsupported architecture (listing
// the supported ones), inconsistent head counts, an unsupported rope type.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view config_json,
                                             absl::string_view generation_config_json = "");

// Reads `dir`/config.json and, when present, `dir`/generation_config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

const char* ArchitectureName(Architecture arch);

}  // namespace moe::engine
