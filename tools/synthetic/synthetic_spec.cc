#include "tools/synthetic/synthetic_spec.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace moe::tools {
namespace {

struct BuiltinProfile {
  const char* name;
  const char* json;
};

// Generated from configs/profiles/*.json by //tools/synthetic:builtin_profiles_inc.
constexpr BuiltinProfile kBuiltinProfiles[] = {
#include "tools/synthetic/builtin_profiles.inc"
};

constexpr const char* kFamilyNames[] = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};

absl::Status FieldError(absl::string_view source, absl::string_view field,
                        absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": field \"", field, "\" ", what));
}

}  // namespace

const char* RoutingName(Routing r) {
  switch (r) {
    case Routing::kStandard: return "standard";
    case Routing::kPregated: return "pregated";
    case Routing::kRouter: return "router";
  }
  return "?";
}

absl::StatusOr<Routing> ParseRouting(absl::string_view name) {
  for (Routing r : {Routing::kStandard, Routing::kPregated, Routing::kRouter}) {
    if (name == RoutingName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown routing \"", name, "\"; known: standard, pregated, router"));
}

const char* FamilyName(Family f) { return kFamilyNames[static_cast<int>(f)]; }

absl::StatusOr<Family> ParseFamily(absl::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (name == kFamilyNames[i]) return static_cast<Family>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown arch \"", name, "\"; known: ", absl::StrJoin(kFamilyNames, ", ")));
}

bool SyntheticSpec::IsMoeLayer(int layer) const {
  if (num_experts <= 0) return false;
  if (family == Family::kMixtral || family == Family::kOlmoe) return true;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end())
    return false;
  return decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

absl::Status ValidateSpec(const SyntheticSpec& s) {
  const std::string src = absl::StrCat("profile \"", s.profile_name, "\"");
  auto positive = [&](int v, const char* field) -> absl::Status {
    if (v <= 0) return FieldError(src, field, absl::StrCat("must be positive, got ", v));
    return absl::OkStatus();
  };
  using Field = std::pair<int, const char*>;
  for (auto [v, f] : std::initializer_list<Field>{
                      {s.vocab_size, "vocab_size"}, {s.hidden_size, "hidden_size"},
                      {s.num_layers, "num_layers"}, {s.num_heads, "num_heads"},
                      {s.num_kv_heads, "num_kv_heads"}, {s.head_dim, "head_dim"},
                      {s.num_experts, "num_experts"},
                      {s.num_experts_per_tok, "num_experts_per_tok"},
                      {s.moe_intermediate_size, "moe_intermediate_size"},
                      {s.max_position_embeddings, "max_position_embeddings"}}) {
    if (auto st = positive(v, f); !st.ok()) return st;
  }
  if (s.num_heads % s.num_kv_heads != 0) {
    return FieldError(src, "num_kv_heads",
                      absl::StrCat("must divide num_heads (", s.num_heads, "), got ",
                                   s.num_kv_heads));
  }
  if (s.num_experts_per_tok > s.num_experts) {
    return FieldError(src, "num_experts_per_tok",
                      absl::StrCat("must be <= num_experts (", s.num_experts, "), got ",
                                   s.num_experts_per_tok));
  }
  if ((s.family == Family::kOlmoe || s.family == Family::kQwen2Moe) &&
      s.head_dim * s.num_heads != s.hidden_size) {
    return FieldError(src, "head_dim",
                      absl::StrCat("must be hidden_size / num_heads (",
                                   s.hidden_size / s.num_heads, ") for ", FamilyName(s.family),
                                   ", whose config has no head_dim; got ", s.head_dim));
  }
  if (s.head_dim % 2 != 0) return FieldError(src, "head_dim", "must be even (RoPE)");
  if (s.family == Family::kQwen2Moe && s.shared_expert_intermediate_size <= 0) {
    return FieldError(src, "shared_expert_intermediate_size", "must be positive for qwen2_moe");
  }
  bool any_dense = false;
  for (int l = 0; l < s.num_layers; ++l) any_dense |= !s.IsMoeLayer(l);
  if (any_dense && s.intermediate_size <= 0) {
    return FieldError(src, "intermediate_size", "must be positive when some layers are dense");
  }
  if (s.decoder_sparse_step <= 0) {
    return FieldError(src, "decoder_sparse_step", "must be positive");
  }
  if (s.rope_theta <= 0 || !std::isfinite(s.rope_theta)) {
    return FieldError(src, "rope_theta", "must be positive");
  }
  if (s.rms_norm_eps <= 0) return FieldError(src, "rms_norm_eps", "must be positive");
  if (s.dtype != DType::kBF16 && s.dtype != DType::kF16 && s.dtype != DType::kF32) {
    return FieldError(src, "dtype", "must be bf16, fp16 or fp32");
  }
  if (s.shard_size_bytes < 1024) {
    return FieldError(src, "shard_size", "must be at least 1 KiB");
  }
  if (!(s.init_std > 0) || !std::isfinite(s.init_std)) {
    return FieldError(src, "init_std", "must be a positive number");
  }
  if (s.tokenizer_merges < 0) return FieldError(src, "tokenizer_merges", "must be >= 0");
  if (s.router_hidden_size < 0) return FieldError(src, "router_hidden_size", "must be >= 0");
  if (s.routing != Routing::kStandard) {
    int moe_layers = 0;
    for (int l = 0; l < s.num_layers; ++l) moe_layers += s.IsMoeLayer(l);
    if (moe_layers == 0) {
      return FieldError(src, "routing", absl::StrCat(RoutingName(s.routing),
                                                     " routing needs at least one MoE layer"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<SyntheticSpec> SpecFromProfileJson(absl::string_view json_text,
                                                  absl::string_view source,
                                                  std::optional<Family> arch_override) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text.begin(), json_text.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": not an object"));

  SyntheticSpec s;
  try {
    auto get_int = [&](const char* key, int* out, bool required) -> absl::Status {
      if (!j.contains(key) || j[key].is_null()) {
        return required ? FieldError(source, key, "is missing") : absl::OkStatus();
      }
      if (!j[key].is_number_integer()) return FieldError(source, key, "must be an integer");
      *out = j[key].get<int>();
      return absl::OkStatus();
    };
    auto get_double = [&](const char* key, double* out) -> absl::Status {
      if (!j.contains(key)) return absl::OkStatus();
      if (!j[key].is_number()) return FieldError(source, key, "must be a number");
      *out = j[key].get<double>();
      return absl::OkStatus();
    };
    auto get_bool = [&](const char* key, bool* out) -> absl::Status {
      if (!j.contains(key)) return absl::OkStatus();
      if (!j[key].is_boolean()) return FieldError(source, key, "must be true or false");
      *out = j[key].get<bool>();
      return absl::OkStatus();
    };

    if (!j.contains("arch") || !j["arch"].is_string()) {
      return FieldError(source, "arch", "is missing or not a string");
    }
    auto fam = ParseFamily(j["arch"].get<std::string>());
    if (!fam.ok()) return FieldError(source, "arch", fam.status().message());
    s.family = *fam;
    bool overridable = false;
    if (auto st = get_bool("arch_overridable", &overridable); !st.ok()) return st;
    if (arch_override && *arch_override != s.family) {
      if (!overridable) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": this profile is a ", FamilyName(s.family), " shape; --arch ",
            FamilyName(*arch_override), " applies only to profiles such as \"tiny\""));
      }
      s.family = *arch_override;
    }
    s.profile_name = j.value("name", std::string(source));
    s.norm_topk_prob = s.family == Family::kQwen3Moe || s.family == Family::kMixtral;

    struct IntField {
      const char* key;
      int* out;
      bool required;
    };
    const IntField ints[] = {
        {"vocab_size", &s.vocab_size, true},
        {"hidden_size", &s.hidden_size, true},
        {"num_layers", &s.num_layers, true},
        {"num_heads", &s.num_heads, true},
        {"num_kv_heads", &s.num_kv_heads, false},
        {"head_dim", &s.head_dim, false},
        {"num_experts", &s.num_experts, true},
        {"num_experts_per_tok", &s.num_experts_per_tok, true},
        {"moe_intermediate_size", &s.moe_intermediate_size, true},
        {"intermediate_size", &s.intermediate_size, false},
        {"shared_expert_intermediate_size", &s.shared_expert_intermediate_size, false},
        {"decoder_sparse_step", &s.decoder_sparse_step, false},
        {"max_position_embeddings", &s.max_position_embeddings, false},
    };
    for (const IntField& f : ints) {
      if (auto st = get_int(f.key, f.out, f.required); !st.ok()) return st;
    }
    if (s.num_kv_heads == 0) s.num_kv_heads = s.num_heads;
    if (s.head_dim == 0 && s.num_heads > 0) s.head_dim = s.hidden_size / s.num_heads;
    if (auto st = get_double("rope_theta", &s.rope_theta); !st.ok()) return st;
    if (auto st = get_double("rms_norm_eps", &s.rms_norm_eps); !st.ok()) return st;
    if (auto st = get_bool("norm_topk_prob", &s.norm_topk_prob); !st.ok()) return st;
    if (auto st = get_bool("tie_word_embeddings", &s.tie_word_embeddings); !st.ok()) return st;
    if (j.contains("mlp_only_layers")) {
      if (!j["mlp_only_layers"].is_array()) {
        return FieldError(source, "mlp_only_layers", "must be an array of layer indices");
      }
      for (const auto& v : j["mlp_only_layers"]) {
        if (!v.is_number_integer()) {
          return FieldError(source, "mlp_only_layers", "must be an array of layer indices");
        }
        s.mlp_only_layers.push_back(v.get<int>());
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  return s;
}

std::vector<std::string> BuiltinProfileNames() {
  std::vector<std::string> names;
  for (const auto& p : kBuiltinProfiles) names.emplace_back(p.name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::string> BuiltinProfileJson(absl::string_view name) {
  for (const auto& p : kBuiltinProfiles) {
    if (name == p.name) return std::string(p.json);
  }
  return absl::NotFoundError(absl::StrCat("unknown profile \"", name, "\"; known profiles: ",
                                          absl::StrJoin(BuiltinProfileNames(), ", ")));
}

}  // namespace moe::tools
