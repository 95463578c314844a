#include "engine/models/binder_util.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::engine::binder {
namespace {

WeightRef FromView(const TensorView& v, int64_t rows, int64_t cols) {
  WeightRef w;
  w.data = v.data;
  w.dtype = v.dtype;
  w.rows = rows;
  w.cols = cols;
  w.name = v.name;
  return w;
}

// Rows [row0, row0 + rows) of matrix `index` of a [n, R, C] tensor.
WeightRef Slice(const TensorView& v, int64_t index, int64_t row0, int64_t rows) {
  const int64_t R = v.shape[1], C = v.shape[2];
  WeightRef w;
  w.dtype = v.dtype;
  w.rows = rows;
  w.cols = C;
  w.data = static_cast<const char*>(v.data) +
           static_cast<size_t>((index * R + row0) * C) * DTypeSize(v.dtype);
  w.name = absl::StrCat(v.name, "[", index, "][", row0, ":", row0 + rows, "]");
  return w;
}

}  // namespace

bool RoutingPlan::OwnGate(int l) const {
  const RoutingFormat& f = routing.format;
  switch (f.mode) {
    case RoutingMode::kStandard: return true;
    case RoutingMode::kPregated: return !f.moe_layers.empty() && l == f.moe_layers.front();
    case RoutingMode::kRouter: return false;
  }
  return true;
}

absl::StatusOr<RoutingPlan> PlanRouting(const Checkpoint& ckpt, const ModelConfig& config) {
  auto format = LoadRoutingFormat(ckpt.dir(), config);
  if (!format.ok()) return format.status();
  auto routing = BindRoutingWeights(ckpt, config, *format);
  if (!routing.ok()) return routing.status();
  RoutingPlan plan;
  plan.routing = *std::move(routing);
  return plan;
}

void ApplyRouting(const RoutingPlan& plan, DecoderWeights* w) {
  const RoutingWeights& r = plan.routing;
  switch (r.format.mode) {
    case RoutingMode::kStandard: w->routing = RoutingVariant::kStandard; break;
    case RoutingMode::kPregated: w->routing = RoutingVariant::kPregated; break;
    case RoutingMode::kRouter: w->routing = RoutingVariant::kRouter; break;
  }
  for (size_t l = 0; l < w->layers.size() && l < r.pregate.size(); ++l) {
    w->layers[l].pregate = r.pregate[l];
  }
  w->decoupled_router.norm = r.router_norm;
  w->decoupled_router.up_proj = r.router_up;
  w->decoupled_router.out_proj = r.router_out;
}

std::string LayerPrefix(int l) { return absl::StrCat("model.layers.", l); }

absl::StatusOr<WeightRef> Matrix(const Checkpoint& ckpt, const std::string& name, int64_t rows,
                                 int64_t cols) {
  auto v = ckpt.Get(name, {rows, cols});
  if (!v.ok()) return v.status();
  return FromView(**v, rows, cols);
}

absl::StatusOr<WeightRef> Vector(const Checkpoint& ckpt, const std::string& name, int64_t n) {
  auto v = ckpt.Get(name, {n});
  if (!v.ok()) return v.status();
  return FromView(**v, 1, n);
}

absl::Status BindEmbeddingsAndHead(const Checkpoint& ckpt, const ModelConfig& config,
                                   DecoderWeights* w) {
  const int64_t V = config.vocab_size, H = config.hidden_size;
  MOE_BIND_OR_RETURN(w->embed_tokens, Matrix(ckpt, "model.embed_tokens.weight", V, H));
  MOE_BIND_OR_RETURN(w->final_norm, Vector(ckpt, "model.norm.weight", H));
  if (config.tie_word_embeddings && ckpt.Find("lm_head.weight") == nullptr) {
    w->lm_head = w->embed_tokens;
  } else {
    MOE_BIND_OR_RETURN(w->lm_head, Matrix(ckpt, "lm_head.weight", V, H));
  }
  return absl::OkStatus();
}

absl::Status BindAttention(const Checkpoint& ckpt, const ModelConfig& config, int l,
                           LayerWeights* layer) {
  const std::string p = LayerPrefix(l);
  const int64_t H = config.hidden_size, Q = config.q_size(), KV = config.kv_size();
  MOE_BIND_OR_RETURN(layer->input_norm, Vector(ckpt, p + ".input_layernorm.weight", H));
  MOE_BIND_OR_RETURN(layer->post_attention_norm,
                       Vector(ckpt, p + ".post_attention_layernorm.weight", H));
  const std::string a = p + ".self_attn.";
  MOE_BIND_OR_RETURN(layer->q_proj, Matrix(ckpt, a + "q_proj.weight", Q, H));
  MOE_BIND_OR_RETURN(layer->k_proj, Matrix(ckpt, a + "k_proj.weight", KV, H));
  MOE_BIND_OR_RETURN(layer->v_proj, Matrix(ckpt, a + "v_proj.weight", KV, H));
  MOE_BIND_OR_RETURN(layer->o_proj, Matrix(ckpt, a + "o_proj.weight", H, Q));
  if (config.attention_bias) {
    MOE_BIND_OR_RETURN(layer->q_bias, Vector(ckpt, a + "q_proj.bias", Q));
    MOE_BIND_OR_RETURN(layer->k_bias, Vector(ckpt, a + "k_proj.bias", KV));
    MOE_BIND_OR_RETURN(layer->v_bias, Vector(ckpt, a + "v_proj.bias", KV));
  }
  if (config.o_proj_bias) {
    MOE_BIND_OR_RETURN(layer->o_bias, Vector(ckpt, a + "o_proj.bias", H));
  }
  return absl::OkStatus();
}

absl::StatusOr<FfnWeights> BindFfn(const Checkpoint& ckpt, const ModelConfig& config,
                                   const std::string& prefix, int64_t width) {
  const int64_t H = config.hidden_size;
  FfnWeights f;
  MOE_BIND_OR_RETURN(f.gate, Matrix(ckpt, prefix + ".gate_proj.weight", width, H));
  MOE_BIND_OR_RETURN(f.up, Matrix(ckpt, prefix + ".up_proj.weight", width, H));
  MOE_BIND_OR_RETURN(f.down, Matrix(ckpt, prefix + ".down_proj.weight", H, width));
  return f;
}

absl::Status BindRouterAndExperts(const Checkpoint& ckpt, const ModelConfig& config,
                                  const ExpertNames& names, LayerWeights* layer, bool* fused) {
  const int64_t H = config.hidden_size, E = config.num_experts,
                I = config.moe_intermediate_size;
  const std::string& p = names.moe_prefix;
  if (names.own_gate) {
    MOE_BIND_OR_RETURN(layer->router, Matrix(ckpt, p + ".gate.weight", E, H));
  }
  layer->experts.assign(E, FfnWeights{});
  const std::string gate_up_name = p + ".experts.gate_up_proj";
  const std::string fused_down_name = p + ".experts.down_proj";
  const std::string first_expert = absl::StrCat(p, ".experts.0.", names.gate, ".weight");
  if (ckpt.Find(first_expert) == nullptr && ckpt.Find(gate_up_name) != nullptr) {
    const TensorView* gate_up;
    const TensorView* down;
    MOE_BIND_OR_RETURN(gate_up, ckpt.Get(gate_up_name, {E, 2 * I, H}));
    MOE_BIND_OR_RETURN(down, ckpt.Get(fused_down_name, {E, H, I}));
    for (int64_t j = 0; j < E; ++j) {
      layer->experts[j].gate = Slice(*gate_up, j, 0, I);
      layer->experts[j].up = Slice(*gate_up, j, I, I);
      layer->experts[j].down = Slice(*down, j, 0, H);
    }
    *fused = true;
    return absl::OkStatus();
  }
  for (int64_t j = 0; j < E; ++j) {
    const std::string e = absl::StrCat(p, ".experts.", j, ".");
    FfnWeights& f = layer->experts[j];
    MOE_BIND_OR_RETURN(f.gate, Matrix(ckpt, e + names.gate + ".weight", I, H));
    MOE_BIND_OR_RETURN(f.up, Matrix(ckpt, e + names.up + ".weight", I, H));
    MOE_BIND_OR_RETURN(f.down, Matrix(ckpt, e + names.down + ".weight", H, I));
  }
  return absl::OkStatus();
}

}  // namespace moe::engine::binder
