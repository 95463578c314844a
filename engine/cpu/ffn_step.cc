#include "engine/cpu/ffn_step.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/router.h"

namespace moe::engine::cpu {

namespace kc = ::moe::kernels::cpu;

namespace {

void Matmul(const StepContext& ctx, const float* x, int64_t M, const WeightRef& w, float* y) {
  kc::Linear(x, M, w.cols, w.data, w.dtype, w.rows, nullptr, DType::kF32, y, ctx.pool);
}

}  // namespace

void FfnStep::RunFfn(const StepContext& ctx, const FfnWeights& f, const float* x, int64_t n,
                     float* out) {
  const int64_t width = f.gate.rows;
  gate_.resize(n * width);
  up_.resize(n * width);
  Matmul(ctx, x, n, f.gate, gate_.data());
  Matmul(ctx, x, n, f.up, up_.data());
  kc::SiluMul(gate_.data(), up_.data(), n * width, gate_.data(), ctx.pool);
  Matmul(ctx, gate_.data(), n, f.down, out);
}

void FfnStep::Run(const StepContext& ctx, const LayerWeights& layer, const float* h, float* out) {
  if (layer.is_moe) {
    RunMoe(ctx, layer, h, out);
  } else {
    RunFfn(ctx, layer.dense_mlp, h, ctx.num_tokens, out);
  }
}

void FfnStep::Route(const StepContext& ctx, const WeightRef& gate, const float* h,
                    int32_t* topk_idx, float* topk_weight) {
  const int64_t T = ctx.num_tokens;
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  router_logits_.resize(T * E);
  Matmul(ctx, h, T, gate, router_logits_.data());
  kc::RouterSoftmaxTopK(router_logits_.data(), T, E, k, ctx.weights->router_renormalize,
                        topk_idx, topk_weight, ctx.pool);
}

void FfnStep::RunMoe(const StepContext& ctx, const LayerWeights& layer, const float* h,
                     float* out) {
  const int64_t T = ctx.num_tokens;
  const int k = config_.num_experts_per_tok;
  topk_idx_.resize(T * k);
  topk_w_.resize(T * k);
  Route(ctx, layer.router, h, topk_idx_.data(), topk_w_.data());
  RunRoutedMoe(ctx, layer, h, topk_idx_.data(), topk_w_.data(), out);
}

void FfnStep::RunRoutedMoe(const StepContext& ctx, const LayerWeights& layer, const float* h,
                           const int32_t* topk_idx, const float* topk_w, float* out) {
  const int64_t T = ctx.num_tokens, H = config_.hidden_size;
  const int E = config_.num_experts, k = config_.num_experts_per_tok;

  // Group (token, weight) pairs by expert, tokens in ascending order within each.
  std::vector<std::vector<std::pair<int32_t, float>>> by_expert(E);
  for (int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < k; ++i) by_expert[topk_idx[t * k + i]].push_back({static_cast<int32_t>(t), topk_w[t * k + i]});
  }
  expert_load_.assign(E, 0);
  std::fill(out, out + T * H, 0.f);
  for (int e = 0; e < E; ++e) {
    const auto& assigned = by_expert[e];
    const int64_t n = static_cast<int64_t>(assigned.size());
    expert_load_[e] = static_cast<int32_t>(n);
    if (n == 0) continue;
    gathered_.resize(n * H);
    expert_out_.resize(n * H);
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(gathered_.data() + r * H, h + assigned[r].first * H, sizeof(float) * H);
    }
    RunFfn(ctx, layer.experts[e], gathered_.data(), n, expert_out_.data());
    for (int64_t r = 0; r < n; ++r) {
      kc::ScaledAdd(out + assigned[r].first * H, expert_out_.data() + r * H, assigned[r].second, H);
    }
  }
  if (layer.shared_expert.present()) {
    shared_out_.resize(T * H);
    shared_logit_.resize(T);
    RunFfn(ctx, layer.shared_expert, h, T, shared_out_.data());
    Matmul(ctx, h, T, layer.shared_expert_gate, shared_logit_.data());
    kc::SigmoidGatedAdd(out, shared_logit_.data(), shared_out_.data(), T, H, ctx.pool);
  }
}

}  // namespace moe::engine::cpu
