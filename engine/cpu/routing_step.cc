#include "engine/cpu/routing_step.h"

#include <cmath>

#include "kernels/cpu/linear.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/router.h"

namespace moe::engine::cpu {

namespace kc = ::moe::kernels::cpu;

RoutingStep::RoutingStep(const ModelConfig& config, const DecoderWeights& weights)
    : config_(config), weights_(weights) {
  for (int l = 0; l < static_cast<int>(weights_.layers.size()); ++l) {
    if (weights_.layers[l].is_moe) record_.moe_layers.push_back(l);
  }
  record_.top_k = config_.num_experts_per_tok;
}

void RoutingStep::Begin(const StepContext& ctx, const float* embeddings) {
  record_.num_tokens = ctx.num_tokens;
  const size_t n = record_.Offset(record_.num_moe_layers(), 0);
  record_.expert_ids.assign(n, -1);
  record_.weights.assign(n, 0.f);
  if (weights_.routing == RoutingVariant::kRouter && ctx.num_tokens > 0) {
    RouteFromEmbeddings(ctx, embeddings);
  }
}

void RoutingStep::RouteFromEmbeddings(const StepContext& ctx, const float* x) {
  const DecoupledRouterWeights& r = weights_.decoupled_router;
  const int64_t T = ctx.num_tokens, H = config_.hidden_size, R = r.up_proj.rows;
  const int E = config_.num_experts, k = record_.top_k, M = record_.num_moe_layers();
  normed_.resize(T * H);
  kc::RmsNorm(x, T, H, r.norm.data, r.norm.dtype, config_.rms_norm_eps, normed_.data(),
              ctx.pool);
  up_.resize(T * R);
  kc::Linear(normed_.data(), T, H, r.up_proj.data, r.up_proj.dtype, R, nullptr, DType::kF32,
             up_.data(), ctx.pool);
  for (float& v : up_) v = v / (1.f + std::exp(-v));  // SiLU
  logits_.resize(T * int64_t{M} * E);
  kc::Linear(up_.data(), T, R, r.out_proj.data, r.out_proj.dtype, int64_t{M} * E, nullptr,
             DType::kF32, logits_.data(), ctx.pool);
  // Rows of logits_ are [token][moe layer][expert]; the record is [moe layer][token][k].
  tmp_idx_.resize(T * M * k);
  tmp_w_.resize(T * M * k);
  kc::RouterSoftmaxTopK(logits_.data(), T * M, E, k, weights_.router_renormalize,
                        tmp_idx_.data(), tmp_w_.data(), ctx.pool);
  for (int64_t t = 0; t < T; ++t) {
    for (int m = 0; m < M; ++m) {
      const size_t src = (static_cast<size_t>(t) * M + m) * k, dst = record_.Offset(m, t);
      for (int j = 0; j < k; ++j) {
        record_.expert_ids[dst + j] = tmp_idx_[src + j];
        record_.weights[dst + j] = tmp_w_[src + j];
      }
    }
  }
}

int RoutingStep::AtMoeLayer(const StepContext& ctx, int l, const float* h, FfnStep* ffn) {
  const int m = record_.MoeIndex(l);
  if (ctx.num_tokens == 0) return m;
  const LayerWeights& layer = weights_.layers[l];
  int32_t* idx = record_.expert_ids.data();
  float* w = record_.weights.data();
  switch (weights_.routing) {
    case RoutingVariant::kStandard:
      ffn->Route(ctx, layer.router, h, idx + record_.Offset(m, 0), w + record_.Offset(m, 0));
      break;
    case RoutingVariant::kPregated:
      if (m == 0) {  // the first MoE layer keeps its own gate
        ffn->Route(ctx, layer.router, h, idx + record_.Offset(m, 0), w + record_.Offset(m, 0));
      }
      if (layer.pregate.present() && m + 1 < record_.num_moe_layers()) {
        ffn->Route(ctx, layer.pregate, h, idx + record_.Offset(m + 1, 0),
                   w + record_.Offset(m + 1, 0));
      }
      break;
    case RoutingVariant::kRouter:
      break;  // routed in Begin
  }
  return m;
}

}  // namespace moe::engine::cpu
