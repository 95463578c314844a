#include "tools/synthetic/tensor_plan.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace moe::tools {
namespace {

class Planner {
 public:
  explicit Planner(const SyntheticSpec& s) : s_(s) {}

  void Linear(const std::string& name, int64_t out, int64_t in) {
    const float std = s_.fan_in_scaling ? s_.init_std * 50.f / std::sqrt(static_cast<float>(in))
                                        : s_.init_std;
    t_.push_back({name, {out, in}, InitKind::kNormal, std});
  }
  void Bias(const std::string& name, int64_t n) {
    t_.push_back({name, {n}, InitKind::kNormal, s_.init_std});
  }
  void Norm(const std::string& name, int64_t n) {
    t_.push_back({name, {n}, InitKind::kNorm, s_.norm_noise});
  }
  void Embedding(const std::string& name, int64_t rows, int64_t cols) {
    const float std = s_.fan_in_scaling ? s_.init_std * 50.f : s_.init_std;
    t_.push_back({name, {rows, cols}, InitKind::kNormal, std});
  }
  // gate/up [width, H], down [H, width], with the given names.
  void GatedMlp(const std::string& prefix, const char* gate, const char* up, const char* down,
                int64_t width) {
    const int64_t h = s_.hidden_size;
    Linear(absl::StrCat(prefix, gate, ".weight"), width, h);
    Linear(absl::StrCat(prefix, up, ".weight"), width, h);
    Linear(absl::StrCat(prefix, down, ".weight"), h, width);
  }

  std::vector<PlannedTensor> Run() {
    const int64_t h = s_.hidden_size;
    const int64_t q = int64_t{s_.num_heads} * s_.head_dim;
    const int64_t kv = int64_t{s_.num_kv_heads} * s_.head_dim;
    Embedding("model.embed_tokens.weight", s_.vocab_size, h);
    if (s_.routing == Routing::kRouter) {
      int64_t moe_layers = 0;
      for (int l = 0; l < s_.num_layers; ++l) moe_layers += s_.IsMoeLayer(l);
      const int64_t r = s_.RouterHiddenSize();
      Norm("model.router.norm.weight", h);
      Linear("model.router.up_proj.weight", r, h);
      Linear("model.router.out_proj.weight", moe_layers * s_.num_experts, r);
    }
    for (int l = 0; l < s_.num_layers; ++l) {
      const std::string p = absl::StrCat("model.layers.", l, ".");
      Norm(p + "input_layernorm.weight", h);
      Linear(p + "self_attn.q_proj.weight", q, h);
      Linear(p + "self_attn.k_proj.weight", kv, h);
      Linear(p + "self_attn.v_proj.weight", kv, h);
      if (s_.family == Family::kQwen2Moe) {
        Bias(p + "self_attn.q_proj.bias", q);
        Bias(p + "self_attn.k_proj.bias", kv);
        Bias(p + "self_attn.v_proj.bias", kv);
      }
      Linear(p + "self_attn.o_proj.weight", h, q);
      if (s_.family == Family::kQwen3Moe) {
        Norm(p + "self_attn.q_norm.weight", s_.head_dim);
        Norm(p + "self_attn.k_norm.weight", s_.head_dim);
      } else if (s_.family == Family::kOlmoe) {
        Norm(p + "self_attn.q_norm.weight", q);
        Norm(p + "self_attn.k_norm.weight", kv);
      }
      Norm(p + "post_attention_layernorm.weight", h);
      Mlp(p, l);
    }
    Norm("model.norm.weight", h);
    if (!s_.tie_word_embeddings) Linear("lm_head.weight", s_.vocab_size, h);
    return std::move(t_);
  }

 private:
  // Routing tensors of a MoE layer: its own gate (standard; pregated: the first MoE
  // layer only) and its pre-gate (pregated: when another MoE layer follows).
  void Gates(const std::string& p, const std::string& gate_name, int layer) {
    const int64_t h = s_.hidden_size;
    const int64_t e = s_.num_experts;
    bool first_moe = true, next_moe = false;
    for (int l = 0; l < layer; ++l) first_moe &= !s_.IsMoeLayer(l);
    for (int l = layer + 1; l < s_.num_layers; ++l) next_moe |= s_.IsMoeLayer(l);
    const bool own = s_.routing == Routing::kStandard ||
                     (s_.routing == Routing::kPregated && first_moe);
    if (own) Linear(p + gate_name, e, h);
    if (s_.routing == Routing::kPregated && next_moe) Linear(p + "pregate.weight", e, h);
  }

  void Mlp(const std::string& p, int layer) {
    const int64_t h = s_.hidden_size;
    const int64_t w = s_.moe_intermediate_size;
    const int64_t e = s_.num_experts;
    if (s_.family == Family::kMixtral) {
      Gates(p, "block_sparse_moe.gate.weight", layer);
      for (int j = 0; j < e; ++j) {
        GatedMlp(absl::StrCat(p, "block_sparse_moe.experts.", j, "."), "w1", "w3", "w2", w);
      }
      return;
    }
    if (!s_.IsMoeLayer(layer)) {  // Qwen dense layer
      GatedMlp(p + "mlp.", "gate_proj", "up_proj", "down_proj", s_.intermediate_size);
      return;
    }
    Gates(p, "mlp.gate.weight", layer);
    for (int j = 0; j < e; ++j) {
      GatedMlp(absl::StrCat(p, "mlp.experts.", j, "."), "gate_proj", "up_proj", "down_proj", w);
    }
    if (s_.family == Family::kQwen2Moe) {
      GatedMlp(p + "mlp.shared_expert.", "gate_proj", "up_proj", "down_proj",
               s_.shared_expert_intermediate_size);
      Linear(p + "mlp.shared_expert_gate.weight", 1, h);
    }
  }

  const SyntheticSpec& s_;
  std::vector<PlannedTensor> t_;
};

}  // namespace

std::vector<PlannedTensor> PlanTensors(const SyntheticSpec& spec) { return Planner(spec).Run(); }

int64_t ParameterCount(const SyntheticSpec& spec) {
  int64_t n = 0;
  for (const auto& t : PlanTensors(spec)) n += t.numel();
  return n;
}

}  // namespace moe::tools
