#include "tools/synthetic/hf_config.h"

#include "nlohmann/json.hpp"

namespace moe::tools {
namespace {

const char* DTypeConfigName(DType t) {
  switch (t) {
    case DType::kF16: return "float16";
    case DType::kF32: return "float32";
    default: return "bfloat16";
  }
}

const char* ArchitectureClass(Family f) {
  switch (f) {
    case Family::kMixtral: return "MixtralForCausalLM";
    case Family::kQwen2Moe: return "Qwen2MoeForCausalLM";
    case Family::kQwen3Moe: return "Qwen3MoeForCausalLM";
    case Family::kOlmoe: return "OlmoeForCausalLM";
  }
  return "";
}

constexpr const char* kHf5Version = "5.0.0";
constexpr const char* kHf4Version = "4.51.0";

}  // namespace

std::string HfConfigJson(const SyntheticSpec& s, int bos_id, int eos_id) {
  nlohmann::json j;  // keys come out sorted, as transformers writes them
  j["architectures"] = {ArchitectureClass(s.family)};
  j["model_type"] = FamilyName(s.family);
  j["vocab_size"] = s.vocab_size;
  j["hidden_size"] = s.hidden_size;
  j["num_hidden_layers"] = s.num_layers;
  j["num_attention_heads"] = s.num_heads;
  j["num_key_value_heads"] = s.num_kv_heads;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = s.max_position_embeddings;
  j["initializer_range"] = s.init_std;
  j["rms_norm_eps"] = s.rms_norm_eps;
  j["use_cache"] = true;
  j["tie_word_embeddings"] = s.tie_word_embeddings;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = bos_id;
  j["eos_token_id"] = eos_id;
  j["pad_token_id"] = eos_id;
  j["num_experts_per_tok"] = s.num_experts_per_tok;
  j["output_router_logits"] = false;
  j["router_aux_loss_coef"] = 0.001;

  switch (s.family) {
    case Family::kMixtral:
      j["head_dim"] = s.head_dim;
      j["intermediate_size"] = s.moe_intermediate_size;
      j["num_local_experts"] = s.num_experts;
      j["router_jitter_noise"] = 0.0;
      j["sliding_window"] = nullptr;
      break;
    case Family::kOlmoe:
      j["intermediate_size"] = s.moe_intermediate_size;
      j["num_experts"] = s.num_experts;
      j["norm_topk_prob"] = s.norm_topk_prob;
      j["clip_qkv"] = nullptr;
      j["attention_bias"] = false;
      break;
    case Family::kQwen2Moe:
    case Family::kQwen3Moe:
      if (s.family == Family::kQwen3Moe) {
        j["head_dim"] = s.head_dim;
        j["attention_bias"] = false;
      } else {
        j["shared_expert_intermediate_size"] = s.shared_expert_intermediate_size;
      }
      j["intermediate_size"] = s.intermediate_size;
      j["moe_intermediate_size"] = s.moe_intermediate_size;
      j["num_experts"] = s.num_experts;
      j["norm_topk_prob"] = s.norm_topk_prob;
      j["decoder_sparse_step"] = s.decoder_sparse_step;
      j["mlp_only_layers"] = s.mlp_only_layers;
      j["use_sliding_window"] = false;
      j["sliding_window"] = nullptr;
      j["max_window_layers"] = s.num_layers;
      break;
  }

  if (s.routing != Routing::kStandard) {
    nlohmann::json r = {{"mode", RoutingName(s.routing)}};
    if (s.routing == Routing::kRouter) r["router_hidden_size"] = s.RouterHiddenSize();
    j["moe_serve_routing"] = r;
  }

  if (s.config_style == ConfigStyle::kHf5) {
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", s.rope_theta}};
    j["dtype"] = DTypeConfigName(s.dtype);
    j["transformers_version"] = kHf5Version;
  } else {
    j["rope_theta"] = s.rope_theta;
    j["rope_scaling"] = nullptr;
    j["torch_dtype"] = DTypeConfigName(s.dtype);
    j["transformers_version"] = kHf4Version;
  }
  return j.dump(2) + "\n";
}

std::string GenerationConfigJson(const SyntheticSpec& s, int bos_id, int eos_id) {
  nlohmann::json j = {{"_from_model_config", true},
                      {"bos_token_id", bos_id},
                      {"eos_token_id", eos_id},
                      {"pad_token_id", eos_id},
                      {"transformers_version", s.config_style == ConfigStyle::kHf5
                                                   ? kHf5Version
                                                   : kHf4Version}};
  return j.dump(2) + "\n";
}

}  // namespace moe::tools
