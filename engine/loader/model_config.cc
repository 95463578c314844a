#include "engine/loader/model_config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/loader/checkpoint.h"

namespace moe::engine {
namespace {

using nlohmann::json;

struct Family {
  Architecture arch;
  const char* architecture;
  const char* model_type;
  // transformers' defaults for keys that real configs sometimes leave out.
  double rope_theta;
  float rms_norm_eps;
  int max_position_embeddings;
};

constexpr Family kFamilies[] = {
    {Architecture::kMixtral, "MixtralForCausalLM", "mixtral", 1e6, 1e-5f, 4096 * 32},
    {Architecture::kQwen2Moe, "Qwen2MoeForCausalLM", "qwen2_moe", 1e4, 1e-6f, 32768},
    {Architecture::kQwen3Moe, "Qwen3MoeForCausalLM", "qwen3_moe", 1e4, 1e-6f, 32768},
    {Architecture::kOlmoe, "OlmoeForCausalLM", "olmoe", 1e4, 1e-5f, 4096},
};

std::string SupportedList() {
  std::vector<std::string> names;
  for (const Family& f : kFamilies) names.push_back(absl::StrCat(f.architecture, " (", f.model_type, ")"));
  return absl::StrJoin(names, ", ");
}

// Typed access to one JSON object, with errors naming `file` and the key. A key whose
// value is null counts as absent, as transformers treats it.
class Fields {
 public:
  Fields(const json& obj, std::string file) : obj_(obj), file_(std::move(file)) {}

  bool Has(const char* key) const {
    auto it = obj_.find(key);
    return it != obj_.end() && !it->is_null();
  }
  // Fields of the object at `key` inside this one; errors name both.
  Fields Nested(const json& obj, const char* key) const {
    return Fields(obj, absl::StrCat(file_, " '", key, "'"));
  }
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, ": ", what));
  }

  absl::Status Int(const char* key, int* out) const {
    if (!Has(key)) return Error(absl::StrCat("required key '", key, "' is missing"));
    return IntValue(key, obj_.at(key), out);
  }
  absl::Status OptionalInt(const char* key, int* out) const {
    return Has(key) ? IntValue(key, obj_.at(key), out) : absl::OkStatus();
  }
  absl::Status OptionalDouble(const char* key, double* out) const {
    if (!Has(key)) return absl::OkStatus();
    const json& v = obj_.at(key);
    if (!v.is_number()) return Mistyped(key, "a number", v);
    *out = v.get<double>();
    return absl::OkStatus();
  }
  absl::Status OptionalBool(const char* key, bool* out) const {
    if (!Has(key)) return absl::OkStatus();
    const json& v = obj_.at(key);
    if (!v.is_boolean()) return Mistyped(key, "true or false", v);
    *out = v.get<bool>();
    return absl::OkStatus();
  }
  absl::Status OptionalString(const char* key, std::string* out) const {
    if (!Has(key)) return absl::OkStatus();
    const json& v = obj_.at(key);
    if (!v.is_string()) return Mistyped(key, "a string", v);
    *out = v.get<std::string>();
    return absl::OkStatus();
  }
  // An int, a list of ints, or null/absent (nothing appended).
  absl::Status IntList(const char* key, std::vector<int>* out) const {
    if (!Has(key)) return absl::OkStatus();
    const json& v = obj_.at(key);
    if (!v.is_array()) {
      int x;
      if (!IntValue(key, v, &x).ok()) return Mistyped(key, "an integer or a list of integers", v);
      out->push_back(x);
      return absl::OkStatus();
    }
    for (const json& e : v) {
      int x;
      if (!IntValue(key, e, &x).ok()) return Mistyped(key, "an integer or a list of integers", v);
      out->push_back(x);
    }
    return absl::OkStatus();
  }

 private:
  absl::Status IntValue(const char* key, const json& v, int* out) const {
    // 4096.0 is accepted (some tools write floats), 4096.5 and "4096" are not.
    if (v.is_number_integer()) {
      int64_t x = v.get<int64_t>();
      if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max()) {
        return Mistyped(key, "an integer in range", v);
      }
      *out = static_cast<int>(x);
      return absl::OkStatus();
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::trunc(d) == d && std::abs(d) < 2147483647.0) {
        *out = static_cast<int>(d);
        return absl::OkStatus();
      }
    }
    return Mistyped(key, "an integer", v);
  }
  absl::Status Mistyped(const char* key, const char* want, const json& v) const {
    return Error(absl::StrCat("'", key, "' must be ", want, ", got ", v.dump()));
  }

  const json& obj_;
  std::string file_;
};

#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    absl::Status _st = (expr);                \
    if (!_st.ok()) return _st;                \
  } while (0)

absl::StatusOr<const Family*> FindFamily(const json& root, const Fields& f) {
  std::string arch_name, model_type;
  auto archs = root.find("architectures");
  if (archs != root.end() && !archs->is_null()) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return f.Error("'architectures' must be a non-empty list of strings");
    }
    arch_name = (*archs)[0].get<std::string>();
  }
  RETURN_IF_ERROR(f.OptionalString("model_type", &model_type));
  if (arch_name.empty() && model_type.empty()) {
    return f.Error(absl::StrCat("neither 'architectures' nor 'model_type' is given; supported: ",
                                SupportedList()));
  }
  for (const Family& fam : kFamilies) {
    if (!arch_name.empty() ? arch_name == fam.architecture : model_type == fam.model_type) {
      if (!arch_name.empty() && !model_type.empty() && model_type != fam.model_type) {
        return f.Error(absl::StrCat("'model_type' \"", model_type, "\" does not match architecture ",
                                    arch_name, " (expects \"", fam.model_type, "\")"));
      }
      return &fam;
    }
  }
  return f.Error(absl::StrCat("unsupported architecture ",
                              arch_name.empty() ? absl::StrCat("model_type '", model_type, "'")
                                                : absl::StrCat("'", arch_name, "'"),
                              "; supported: ", SupportedList()));
}

// RoPE, in either spelling. transformers 5.x: rope_parameters {rope_theta, rope_type,
// factor, partial_rotary_factor}. 4.x: rope_theta and rope_scaling {type|rope_type, factor}
// at top level.
absl::Status ParseRope(const json& root, const Fields& top, const Family& fam, ModelConfig* c) {
  c->rope_theta = fam.rope_theta;
  RETURN_IF_ERROR(top.OptionalDouble("rope_theta", &c->rope_theta));
  RETURN_IF_ERROR(top.OptionalDouble("partial_rotary_factor", &c->partial_rotary_factor));

  const char* section = nullptr;
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (top.Has(key)) {
      section = key;
      break;
    }
  }
  std::string type = "default";
  if (section != nullptr) {
    const json& obj = root.at(section);
    if (!obj.is_object()) return top.Error(absl::StrCat("'", section, "' must be an object"));
    Fields rope = top.Nested(obj, section);
    RETURN_IF_ERROR(rope.OptionalDouble("rope_theta", &c->rope_theta));
    RETURN_IF_ERROR(rope.OptionalDouble("partial_rotary_factor", &c->partial_rotary_factor));
    if (rope.Has("rope_type")) {
      RETURN_IF_ERROR(rope.OptionalString("rope_type", &type));
    } else {
      RETURN_IF_ERROR(rope.OptionalString("type", &type));
    }
    if (type == "linear") {
      if (!rope.Has("factor")) return rope.Error("rope_type \"linear\" needs 'factor'");
      RETURN_IF_ERROR(rope.OptionalDouble("factor", &c->rope_scaling_factor));
      if (!(c->rope_scaling_factor > 0)) return rope.Error("'factor' must be positive");
    }
  }
  if (type != "default" && type != "linear") {
    return top.Error(absl::StrCat("'", section, "': unsupported rope_type \"", type,
                                  "\" (supported: \"default\", \"linear\")"));
  }
  c->rope_type = type;
  if (!(c->rope_theta > 0)) return top.Error("'rope_theta' must be positive");
  if (!(c->partial_rotary_factor > 0 && c->partial_rotary_factor <= 1)) {
    return top.Error("'partial_rotary_factor' must be in (0, 1]");
  }
  return absl::OkStatus();
}

// Expert counts and widths, per family.
absl::Status ParseExperts(const Fields& f, const Family& fam, ModelConfig* c) {
  // transformers 5 writes Mixtral's and Qwen3-MoE's count as num_local_experts, OLMoE's and
  // Qwen2-MoE's as num_experts; either spelling is accepted for every family.
  const bool mixtral = fam.arch == Architecture::kMixtral;
  const char* canonical = mixtral ? "num_local_experts" : "num_experts";
  const char* alternative = mixtral ? "num_experts" : "num_local_experts";
  const char* experts_key = !f.Has(canonical) && f.Has(alternative) ? alternative : canonical;
  RETURN_IF_ERROR(f.Int(experts_key, &c->num_experts));
  RETURN_IF_ERROR(f.Int("num_experts_per_tok", &c->num_experts_per_tok));
  if (c->num_experts <= 0) return f.Error(absl::StrCat("'", experts_key, "' must be positive"));
  if (c->num_experts_per_tok <= 0) return f.Error("'num_experts_per_tok' must be positive");
  if (c->num_experts_per_tok > c->num_experts) {
    return f.Error(absl::StrCat("'num_experts_per_tok' (", c->num_experts_per_tok,
                                ") exceeds '", experts_key, "' (", c->num_experts, ")"));
  }

  switch (fam.arch) {
    case Architecture::kMixtral:
      // intermediate_size is each expert's width; every layer is MoE, top-k renormalised.
      RETURN_IF_ERROR(f.Int("intermediate_size", &c->moe_intermediate_size));
      c->intermediate_size = 0;
      c->norm_topk_prob = true;
      break;
    case Architecture::kOlmoe:
      RETURN_IF_ERROR(f.Int("intermediate_size", &c->moe_intermediate_size));
      c->intermediate_size = 0;
      RETURN_IF_ERROR(f.OptionalBool("norm_topk_prob", &c->norm_topk_prob));
      break;
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe:
      RETURN_IF_ERROR(f.Int("moe_intermediate_size", &c->moe_intermediate_size));
      RETURN_IF_ERROR(f.OptionalInt("intermediate_size", &c->intermediate_size));
      RETURN_IF_ERROR(f.OptionalBool("norm_topk_prob", &c->norm_topk_prob));
      RETURN_IF_ERROR(f.OptionalInt("decoder_sparse_step", &c->decoder_sparse_step));
      RETURN_IF_ERROR(f.IntList("mlp_only_layers", &c->mlp_only_layers));
      if (fam.arch == Architecture::kQwen2Moe) {
        RETURN_IF_ERROR(f.Int("shared_expert_intermediate_size", &c->shared_expert_intermediate_size));
        if (c->shared_expert_intermediate_size < 0) {
          return f.Error("'shared_expert_intermediate_size' must not be negative");
        }
      }
      break;
  }
  if (c->moe_intermediate_size <= 0) {
    return f.Error(absl::StrCat("'", fam.arch == Architecture::kMixtral || fam.arch == Architecture::kOlmoe
                                         ? "intermediate_size"
                                         : "moe_intermediate_size",
                                "' must be positive"));
  }
  if (c->decoder_sparse_step < 1) return f.Error("'decoder_sparse_step' must be at least 1");
  for (int l : c->mlp_only_layers) {
    if (l < 0 || l >= c->num_layers) {
      return f.Error(absl::StrCat("'mlp_only_layers' holds layer ", l, ", outside [0, ",
                                  c->num_layers, ")"));
    }
  }
  bool any_dense = false;
  for (int l = 0; l < c->num_layers; ++l) any_dense |= !c->IsMoeLayer(l);
  if (any_dense && c->intermediate_size <= 0) {
    return f.Error("'intermediate_size' must be positive: some layers are dense MLPs");
  }
  return absl::OkStatus();
}

// Attention variants, per family.
absl::Status ParseAttention(const Fields& f, const Family& fam, ModelConfig* c) {
  switch (fam.arch) {
    case Architecture::kMixtral:
      RETURN_IF_ERROR(f.OptionalInt("sliding_window", &c->sliding_window));
      if (c->sliding_window < 0) return f.Error("'sliding_window' must not be negative");
      break;
    case Architecture::kQwen2Moe:
    case Architecture::kQwen3Moe: {
      bool use_sliding_window = false;
      RETURN_IF_ERROR(f.OptionalBool("use_sliding_window", &use_sliding_window));
      if (use_sliding_window) {
        return f.Error("'use_sliding_window': true is unsupported (sliding-window layers)");
      }
      if (fam.arch == Architecture::kQwen2Moe) {
        // Qwen2 always has q/k/v biases; transformers 5 spells it out as qkv_bias.
        c->attention_bias = true;
        RETURN_IF_ERROR(f.OptionalBool("qkv_bias", &c->attention_bias));
      } else {
        RETURN_IF_ERROR(f.OptionalBool("attention_bias", &c->attention_bias));
        c->o_proj_bias = c->attention_bias;
        c->qk_norm = QkNorm::kPerHead;
      }
      break;
    }
    case Architecture::kOlmoe: {
      RETURN_IF_ERROR(f.OptionalBool("attention_bias", &c->attention_bias));
      c->o_proj_bias = c->attention_bias;
      c->qk_norm = QkNorm::kWholeProjection;
      double clip = 0;
      if (f.Has("clip_qkv")) {
        RETURN_IF_ERROR(f.OptionalDouble("clip_qkv", &clip));
        if (!(clip > 0)) return f.Error("'clip_qkv' must be positive or null");
        c->clip_qkv = static_cast<float>(clip);
      }
      break;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> Parse(absl::string_view config_json, absl::string_view gen_json,
                                  const std::string& config_name, const std::string& gen_name) {
  json root;
  try {
    root = json::parse(config_json.begin(), config_json.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(config_name, ": malformed JSON: ", e.what()));
  }
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config_name, ": not a JSON object"));
  }
  Fields f(root, config_name);
  ModelConfig c;
  auto fam_or = FindFamily(root, f);
  if (!fam_or.ok()) return fam_or.status();
  const Family& fam = **fam_or;
  c.arch = fam.arch;
  c.architecture_name = fam.architecture;
  c.model_type = fam.model_type;

  RETURN_IF_ERROR(f.Int("vocab_size", &c.vocab_size));
  RETURN_IF_ERROR(f.Int("hidden_size", &c.hidden_size));
  RETURN_IF_ERROR(f.Int("num_hidden_layers", &c.num_layers));
  RETURN_IF_ERROR(f.Int("num_attention_heads", &c.num_heads));
  c.num_kv_heads = c.num_heads;
  RETURN_IF_ERROR(f.OptionalInt("num_key_value_heads", &c.num_kv_heads));
  for (auto [key, v] : {std::pair<const char*, int>{"vocab_size", c.vocab_size},
                        {"hidden_size", c.hidden_size},
                        {"num_hidden_layers", c.num_layers},
                        {"num_attention_heads", c.num_heads},
                        {"num_key_value_heads", c.num_kv_heads}}) {
    if (v <= 0) return f.Error(absl::StrCat("'", key, "' must be positive, got ", v));
  }
  if (c.num_heads % c.num_kv_heads != 0) {
    return f.Error(absl::StrCat("'num_attention_heads' (", c.num_heads,
                                ") is not a multiple of 'num_key_value_heads' (", c.num_kv_heads,
                                ")"));
  }
  if (f.Has("head_dim")) {
    RETURN_IF_ERROR(f.Int("head_dim", &c.head_dim));
    if (c.head_dim <= 0) return f.Error("'head_dim' must be positive");
  } else {
    if (c.hidden_size % c.num_heads != 0) {
      return f.Error(absl::StrCat("'hidden_size' (", c.hidden_size,
                                  ") is not a multiple of 'num_attention_heads' (", c.num_heads,
                                  ") and no 'head_dim' is given"));
    }
    c.head_dim = c.hidden_size / c.num_heads;
  }

  RETURN_IF_ERROR(ParseExperts(f, fam, &c));
  RETURN_IF_ERROR(ParseAttention(f, fam, &c));
  RETURN_IF_ERROR(ParseRope(root, f, fam, &c));
  int rotary_dim = static_cast<int>(c.head_dim * c.partial_rotary_factor);
  if (rotary_dim <= 0 || rotary_dim % 2 != 0) {
    return f.Error(absl::StrCat("'partial_rotary_factor' ", c.partial_rotary_factor,
                                " gives an odd or empty rotary dimension for head_dim ", c.head_dim));
  }

  double eps = fam.rms_norm_eps;
  RETURN_IF_ERROR(f.OptionalDouble("rms_norm_eps", &eps));
  // Checked as the float the kernels use: 1e-86 would become 0 (NaN on a zero row) and
  // 1e300 infinity.
  const float eps_f = static_cast<float>(eps);
  if (!(eps > 0) || !(eps_f > 0) || !std::isfinite(eps_f)) {
    return f.Error("'rms_norm_eps' must be a positive number representable as a float");
  }
  c.rms_norm_eps = eps_f;
  c.max_position_embeddings = fam.max_position_embeddings;
  RETURN_IF_ERROR(f.OptionalInt("max_position_embeddings", &c.max_position_embeddings));
  RETURN_IF_ERROR(f.OptionalBool("tie_word_embeddings", &c.tie_word_embeddings));
  RETURN_IF_ERROR(f.OptionalInt("bos_token_id", &c.bos_token_id));
  RETURN_IF_ERROR(f.IntList("eos_token_id", &c.eos_token_ids));
  // transformers 5 writes "dtype"; 4.x wrote "torch_dtype".
  RETURN_IF_ERROR(f.OptionalString(f.Has("dtype") ? "dtype" : "torch_dtype", &c.torch_dtype));

  if (!gen_json.empty()) {
    json gen;
    try {
      gen = json::parse(gen_json.begin(), gen_json.end());
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(gen_name, ": malformed JSON: ", e.what()));
    }
    if (!gen.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(gen_name, ": not a JSON object"));
    }
    std::vector<int> more;
    RETURN_IF_ERROR(Fields(gen, gen_name).IntList("eos_token_id", &more));
    for (int id : more) {
      if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), id) == c.eos_token_ids.end()) {
        c.eos_token_ids.push_back(id);
      }
    }
  }
  // Duplicates inside config.json itself are dropped too, keeping the first.
  std::vector<int> unique;
  for (int id : c.eos_token_ids) {
    if (std::find(unique.begin(), unique.end(), id) == unique.end()) unique.push_back(id);
  }
  c.eos_token_ids = std::move(unique);
  return c;
}

}  // namespace

bool ModelConfig::IsMoeLayer(int layer) const {
  if (num_experts <= 0 || decoder_sparse_step <= 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) {
    return false;
  }
  return (layer + 1) % decoder_sparse_step == 0;
}

const char* ArchitectureName(Architecture arch) {
  for (const Family& f : kFamilies) {
    if (f.arch == arch) return f.architecture;
  }
  return "?";
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view config_json,
                                             absl::string_view generation_config_json) {
  return Parse(config_json, generation_config_json, "config.json", "generation_config.json");
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  const std::string prefix = dir.empty() || dir.back() == '/' ? dir : dir + "/";
  const std::string config_path = prefix + "config.json";
  const std::string gen_path = prefix + "generation_config.json";
  auto config = ReadTextFile(config_path);
  if (!config.ok()) return config.status();
  std::string gen;
  auto gen_or = ReadTextFile(gen_path);
  if (gen_or.ok()) {
    gen = std::move(*gen_or);
  } else if (!absl::IsNotFound(gen_or.status())) {
    return gen_or.status();
  }
  return Parse(*config, gen, config_path, gen_path);
}

}  // namespace moe::engine
