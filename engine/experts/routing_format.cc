#include "engine/experts/routing_format.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moe::engine {
namespace {

WeightRef RefOf(const TensorView& v) {
  WeightRef w;
  w.data = v.data;
  w.dtype = v.dtype;
  w.rows = v.shape.size() == 2 ? v.shape[0] : 1;
  w.cols = v.shape.back();
  w.name = v.name;
  return w;
}

absl::StatusOr<WeightRef> Bind(const Checkpoint& ckpt, const std::string& name,
                               std::vector<int64_t> shape, const RoutingFormat& f) {
  auto v = ckpt.Get(name, shape);
  if (!v.ok()) {
    return absl::Status(v.status().code(),
                        absl::StrCat(RoutingModeName(f.mode), " routing: ", v.status().message()));
  }
  return RefOf(**v);
}

}  // namespace

const char* RoutingModeName(RoutingMode m) {
  switch (m) {
    case RoutingMode::kStandard: return "standard";
    case RoutingMode::kPregated: return "pregated";
    case RoutingMode::kRouter: return "router";
  }
  return "?";
}

absl::StatusOr<RoutingMode> ParseRoutingMode(absl::string_view name) {
  for (auto m : {RoutingMode::kStandard, RoutingMode::kPregated, RoutingMode::kRouter}) {
    if (name == RoutingModeName(m)) return m;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown routing mode '", name, "' (known: standard, pregated, router)"));
}

int RoutingFormat::MoeIndex(int layer) const {
  auto it = std::lower_bound(moe_layers.begin(), moe_layers.end(), layer);
  return it != moe_layers.end() && *it == layer ? static_cast<int>(it - moe_layers.begin()) : -1;
}

int RoutingFormat::NextMoeLayer(int layer) const {
  auto it = std::upper_bound(moe_layers.begin(), moe_layers.end(), layer);
  return it == moe_layers.end() ? -1 : *it;
}

std::string PregateTensorName(int layer) {
  return absl::StrCat("model.layers.", layer, ".pregate.weight");
}

std::string OwnGateTensorName(const ModelConfig& config, int layer) {
  return absl::StrCat("model.layers.", layer,
                      config.arch == Architecture::kMixtral ? ".block_sparse_moe" : ".mlp",
                      ".gate.weight");
}

absl::StatusOr<RoutingFormat> ParseRoutingFormat(absl::string_view config_json,
                                                 const ModelConfig& config) {
  RoutingFormat f;
  for (int l = 0; l < config.num_layers; ++l)
    if (config.IsMoeLayer(l)) f.moe_layers.push_back(l);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(config_json.begin(), config_json.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", e.what()));
  }
  if (!j.is_object() || !j.contains(kRoutingConfigKey) || j[kRoutingConfigKey].is_null()) {
    return f;
  }
  const auto& r = j[kRoutingConfigKey];
  const std::string key = kRoutingConfigKey;
  if (!r.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " must be an object"));
  }
  if (!r.contains("mode") || !r["mode"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, ".mode is missing or not a string"));
  }
  auto mode = ParseRoutingMode(r["mode"].get<std::string>());
  if (!mode.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json: ", key, ".mode: ", mode.status().message()));
  }
  f.mode = *mode;
  if (f.mode != RoutingMode::kStandard && f.moe_layers.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, ".mode is ",
                                                   RoutingModeName(f.mode),
                                                   " but the model has no MoE layers"));
  }
  if (f.mode == RoutingMode::kRouter) {
    const auto it = r.find("router_hidden_size");
    if (it == r.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config.json: ", key, ".router_hidden_size must be a positive integer in router mode"));
    }
    f.router_hidden_size = it->get<int>();
  }
  return f;
}

absl::StatusOr<RoutingFormat> LoadRoutingFormat(const std::string& dir,
                                                const ModelConfig& config) {
  auto text = ReadTextFile(dir + "/config.json");
  if (!text.ok()) return text.status();
  auto f = ParseRoutingFormat(*text, config);
  if (!f.ok()) return absl::Status(f.status().code(), absl::StrCat(dir, "/", f.status().message()));
  return f;
}

absl::StatusOr<RoutingWeights> BindRoutingWeights(const Checkpoint& ckpt,
                                                  const ModelConfig& config,
                                                  const RoutingFormat& format) {
  RoutingWeights w;
  w.format = format;
  w.pregate.resize(config.num_layers);
  const int64_t e = config.num_experts, h = config.hidden_size;
  const char* mode = RoutingModeName(format.mode);
  for (int l = 0; l < config.num_layers; ++l) {
    const bool has_pregate = ckpt.Find(PregateTensorName(l)) != nullptr;
    const bool has_gate = ckpt.Find(OwnGateTensorName(config, l)) != nullptr;
    const bool moe = format.MoeIndex(l) >= 0;
    const bool wants_pregate =
        format.mode == RoutingMode::kPregated && moe && format.NextMoeLayer(l) >= 0;
    const bool wants_gate =
        moe && (format.mode == RoutingMode::kStandard ||
                (format.mode == RoutingMode::kPregated && l == format.moe_layers.front()));
    if (has_pregate && !wants_pregate) {
      return absl::InvalidArgumentError(absl::StrCat(
          mode, " routing: unexpected tensor ", PregateTensorName(l),
          format.mode == RoutingMode::kStandard
              ? " (a pre-gated checkpoint whose config.json lacks \"moe_serve_routing\"?)"
              : " (only MoE layers followed by another MoE layer have a pre-gate)"));
    }
    if (has_gate && !wants_gate && moe) {
      return absl::InvalidArgumentError(absl::StrCat(
          mode, " routing: layer ", l, " must not have its own gate ", OwnGateTensorName(config, l),
          " (its experts are chosen ",
          format.mode == RoutingMode::kPregated ? "by the previous layer's pre-gate)"
                                                : "by model.router)"));
    }
    if (wants_gate && !has_gate && format.mode == RoutingMode::kPregated) {
      return absl::NotFoundError(absl::StrCat(mode, " routing: the first MoE layer ", l,
                                              " keeps its own gate, but ",
                                              OwnGateTensorName(config, l), " is missing"));
    }
  }
  // Bound after the checks above, so a checkpoint of another routing mode is reported
  // as such rather than as a missing pre-gate.
  for (int l = 0; l < config.num_layers; ++l) {
    if (format.mode != RoutingMode::kPregated || format.MoeIndex(l) < 0 ||
        format.NextMoeLayer(l) < 0) {
      continue;
    }
    auto ref = Bind(ckpt, PregateTensorName(l), {e, h}, format);
    if (!ref.ok()) return ref.status();
    w.pregate[l] = *ref;
  }
  const bool has_router = ckpt.Find(kRouterOutTensor) != nullptr ||
                          ckpt.Find(kRouterUpTensor) != nullptr ||
                          ckpt.Find(kRouterNormTensor) != nullptr;
  if (format.mode == RoutingMode::kRouter) {
    const int64_t r = format.router_hidden_size;
    const int64_t out = static_cast<int64_t>(format.moe_layers.size()) * e;
    auto norm = Bind(ckpt, kRouterNormTensor, {h}, format);
    if (!norm.ok()) return norm.status();
    auto up = Bind(ckpt, kRouterUpTensor, {r, h}, format);
    if (!up.ok()) return up.status();
    auto o = Bind(ckpt, kRouterOutTensor, {out, r}, format);
    if (!o.ok()) return o.status();
    w.router_norm = *norm;
    w.router_up = *up;
    w.router_out = *o;
  } else if (has_router) {
    return absl::InvalidArgumentError(absl::StrCat(
        mode, " routing: unexpected model.router.* tensors (a router checkpoint whose "
              "config.json lacks \"moe_serve_routing\": {\"mode\": \"router\"}?)"));
  }
  return w;
}

}  // namespace moe::engine
