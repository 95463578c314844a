#include "engine/models/test_model.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/loader/safetensors.h"
#include "nlohmann/json.hpp"

namespace moe::engine::testing {
namespace {

class Writer {
 public:
  Writer(const TestModelSpec& spec) : spec_(spec), rng_(spec.seed) {}

  // A tensor of `shape` with N(mean, scale^2) values, rounded to the spec's dtype.
  void Add(const std::string& name, std::vector<int64_t> shape, float scale, float mean = 0.f) {
    auto it = spec_.shape_overrides.find(name);
    if (it != spec_.shape_overrides.end()) shape = it->second;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<float> dist(mean, scale);
    TensorToWrite t;
    t.name = name;
    t.dtype = spec_.dtype;
    t.shape = shape;
    t.data.resize(n * DTypeSize(spec_.dtype));
    std::vector<float> vals(n);
    for (int64_t i = 0; i < n; ++i) {
      float v = dist(rng_);
      if (spec_.dtype == DType::kF32) {
        std::memcpy(&t.data[i * 4], &v, 4);
      } else {
        uint16_t h = spec_.dtype == DType::kBF16 ? F32ToBf16(v) : F32ToF16(v);
        std::memcpy(&t.data[i * 2], &h, 2);
        v = spec_.dtype == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
      }
      vals[i] = v;
    }
    out_.values[name] = std::move(vals);
    out_.shapes[name] = shape;
    tensors_.push_back(std::move(t));
  }

  std::vector<TensorToWrite>& tensors() { return tensors_; }
  TestModelTensors& out() { return out_; }

 private:
  const TestModelSpec& spec_;
  std::mt19937 rng_;
  std::vector<TensorToWrite> tensors_;
  TestModelTensors out_;
};

bool IsMoe(const TestModelSpec& s, int l) {
  if (s.arch == Architecture::kMixtral || s.arch == Architecture::kOlmoe) return true;
  for (int m : s.mlp_only_layers) {
    if (m == l) return false;
  }
  return (l + 1) % s.decoder_sparse_step == 0;
}

nlohmann::json ConfigJson(const TestModelSpec& s) {
  nlohmann::json c;
  const bool mixtral = s.arch == Architecture::kMixtral;
  switch (s.arch) {
    case Architecture::kMixtral:
      c["architectures"] = {"MixtralForCausalLM"};
      c["model_type"] = "mixtral";
      c["num_local_experts"] = s.num_experts;
      c["intermediate_size"] = s.moe_intermediate_size;
      break;
    case Architecture::kQwen2Moe:
      c["architectures"] = {"Qwen2MoeForCausalLM"};
      c["model_type"] = "qwen2_moe";
      c["shared_expert_intermediate_size"] = s.shared_expert_intermediate_size;
      c["qkv_bias"] = true;
      break;
    case Architecture::kQwen3Moe:
      c["architectures"] = {"Qwen3MoeForCausalLM"};
      c["model_type"] = "qwen3_moe";
      c["attention_bias"] = false;
      break;
    case Architecture::kOlmoe:
      c["architectures"] = {"OlmoeForCausalLM"};
      c["model_type"] = "olmoe";
      c["clip_qkv"] = s.clip_qkv ? nlohmann::json(*s.clip_qkv) : nlohmann::json();
      break;
  }
  if (!mixtral) {
    c["num_experts"] = s.num_experts;
    c["norm_topk_prob"] = s.norm_topk_prob;
  }
  if (s.arch == Architecture::kOlmoe) {
    c["intermediate_size"] = s.moe_intermediate_size;  // OLMoE: each expert's width
  } else if (!mixtral) {
    c["moe_intermediate_size"] = s.moe_intermediate_size;
    c["intermediate_size"] = s.intermediate_size;
  }
  if (s.arch == Architecture::kQwen2Moe || s.arch == Architecture::kQwen3Moe) {
    c["decoder_sparse_step"] = s.decoder_sparse_step;
    c["mlp_only_layers"] = s.mlp_only_layers;
    c["use_sliding_window"] = s.sliding_window > 0;
  }
  c["sliding_window"] = s.sliding_window > 0 ? nlohmann::json(s.sliding_window) : nlohmann::json();
  c["num_experts_per_tok"] = s.top_k;
  c["vocab_size"] = s.vocab_size;
  c["hidden_size"] = s.hidden_size;
  c["num_hidden_layers"] = s.num_layers;
  c["num_attention_heads"] = s.num_heads;
  c["num_key_value_heads"] = s.num_kv_heads;
  c["head_dim"] = s.head_dim;
  c["rms_norm_eps"] = 1e-6;
  c["rope_theta"] = s.rope_theta;
  if (s.partial_rotary_factor != 1.0) c["partial_rotary_factor"] = s.partial_rotary_factor;
  c["max_position_embeddings"] = s.max_position_embeddings;
  c["tie_word_embeddings"] = s.tie_word_embeddings;
  c["hidden_act"] = "silu";
  c["bos_token_id"] = 1;
  c["eos_token_id"] = 2;
  c["torch_dtype"] = s.dtype == DType::kF32 ? "float32" : s.dtype == DType::kF16 ? "float16" : "bfloat16";
  return c;
}

}  // namespace

std::string MakeTempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string root = base != nullptr ? base : "/tmp";
  std::string tmpl = absl::StrCat(root, "/", name, "_XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = mkdtemp(buf.data());
  return d != nullptr ? std::string(d) : root;
}

absl::StatusOr<TestModelTensors> WriteTestModel(const std::string& dir, const TestModelSpec& s) {
  Writer w(s);
  const int64_t H = s.hidden_size, V = s.vocab_size, Q = int64_t(s.num_heads) * s.head_dim,
                KV = int64_t(s.num_kv_heads) * s.head_dim, E = s.num_experts,
                I = s.moe_intermediate_size;
  const float wscale = 1.0f / std::sqrt(static_cast<float>(H));
  w.Add("model.embed_tokens.weight", {V, H}, 1.0f);
  w.Add("model.norm.weight", {H}, 0.1f, 1.0f);
  if (!s.tie_word_embeddings) w.Add("lm_head.weight", {V, H}, wscale);
  for (int l = 0; l < s.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    w.Add(p + "input_layernorm.weight", {H}, 0.1f, 1.0f);
    w.Add(p + "post_attention_layernorm.weight", {H}, 0.1f, 1.0f);
    w.Add(p + "self_attn.q_proj.weight", {Q, H}, wscale);
    w.Add(p + "self_attn.k_proj.weight", {KV, H}, wscale);
    w.Add(p + "self_attn.v_proj.weight", {KV, H}, wscale);
    w.Add(p + "self_attn.o_proj.weight", {H, Q}, 1.0f / std::sqrt(static_cast<float>(Q)));
    if (s.arch == Architecture::kQwen2Moe) {
      w.Add(p + "self_attn.q_proj.bias", {Q}, 0.1f);
      w.Add(p + "self_attn.k_proj.bias", {KV}, 0.1f);
      w.Add(p + "self_attn.v_proj.bias", {KV}, 0.1f);
    }
    if (s.arch == Architecture::kQwen3Moe) {
      w.Add(p + "self_attn.q_norm.weight", {s.head_dim}, 0.1f, 1.0f);
      w.Add(p + "self_attn.k_norm.weight", {s.head_dim}, 0.1f, 1.0f);
    }
    if (s.arch == Architecture::kOlmoe) {
      w.Add(p + "self_attn.q_norm.weight", {Q}, 0.1f, 1.0f);
      w.Add(p + "self_attn.k_norm.weight", {KV}, 0.1f, 1.0f);
    }
    const std::string mlp = p + (s.arch == Architecture::kMixtral ? "block_sparse_moe." : "mlp.");
    if (!IsMoe(s, l)) {
      const int64_t D = s.intermediate_size;
      w.Add(mlp + "gate_proj.weight", {D, H}, wscale);
      w.Add(mlp + "up_proj.weight", {D, H}, wscale);
      w.Add(mlp + "down_proj.weight", {H, D}, 1.0f / std::sqrt(static_cast<float>(D)));
      continue;
    }
    w.Add(mlp + "gate.weight", {E, H}, 1.0f);
    if (s.fused_experts) {
      w.Add(mlp + "experts.gate_up_proj", {E, 2 * I, H}, wscale);
      w.Add(mlp + "experts.down_proj", {E, H, I}, 1.0f / std::sqrt(static_cast<float>(I)));
    } else {
      const bool mixtral = s.arch == Architecture::kMixtral;
      for (int64_t j = 0; j < E; ++j) {
        const std::string e = absl::StrCat(mlp, "experts.", j, ".");
        w.Add(e + (mixtral ? "w1" : "gate_proj") + ".weight", {I, H}, wscale);
        w.Add(e + (mixtral ? "w3" : "up_proj") + ".weight", {I, H}, wscale);
        w.Add(e + (mixtral ? "w2" : "down_proj") + ".weight", {H, I},
              1.0f / std::sqrt(static_cast<float>(I)));
      }
    }
    if (s.arch == Architecture::kQwen2Moe && s.shared_expert_intermediate_size > 0) {
      const int64_t D = s.shared_expert_intermediate_size;
      w.Add(mlp + "shared_expert.gate_proj.weight", {D, H}, wscale);
      w.Add(mlp + "shared_expert.up_proj.weight", {D, H}, wscale);
      w.Add(mlp + "shared_expert.down_proj.weight", {H, D}, 1.0f / std::sqrt(static_cast<float>(D)));
      w.Add(mlp + "shared_expert_gate.weight", {1, H}, wscale);
    }
  }
  absl::Status st = WriteSafetensors(dir + "/model.safetensors", w.tensors(), {{"format", "pt"}});
  if (!st.ok()) return st;
  std::ofstream cfg(dir + "/config.json");
  cfg << ConfigJson(s).dump(2);
  if (!cfg.good()) return absl::InternalError("cannot write " + dir + "/config.json");
  return std::move(w.out());
}

}  // namespace moe::engine::testing
