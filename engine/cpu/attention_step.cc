#include "engine/cpu/attention_step.h"

#include <cmath>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"

namespace moe::engine::cpu {

namespace kc = ::moe::kernels::cpu;

namespace {

void Project(const StepContext& ctx, const float* x, int64_t K, const WeightRef& w,
             const WeightRef& bias, float* y) {
  kc::Linear(x, ctx.num_tokens, K, w.data, w.dtype, w.rows, bias.present() ? bias.data : nullptr,
             bias.dtype, y, ctx.pool);
}

}  // namespace

AttentionStep::AttentionStep(const ModelConfig& config, int kv_block_size) : config_(config) {
  kv_shape_.block_size = kv_block_size;
  kv_shape_.num_kv_heads = config.num_kv_heads;
  kv_shape_.head_dim = config.head_dim;
  // transformers: dim = int(head_dim * partial_rotary_factor).
  rotary_dim_ = static_cast<int>(config.head_dim * config.partial_rotary_factor);
  rotary_dim_ -= rotary_dim_ % 2;
  const double factor = config.rope_type == "linear" ? config.rope_scaling_factor : 1.0;
  inv_freq_ = kc::RopeInvFreq(rotary_dim_, config.rope_theta, factor);
  scale_ = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
}

void AttentionStep::Run(const StepContext& ctx, const LayerWeights& layer, const float* h,
                        LayerKvCache* cache, float* out) {
  const int64_t T = ctx.num_tokens, H = config_.hidden_size;
  const int64_t Q = config_.q_size(), KV = config_.kv_size();
  const int hd = config_.head_dim;
  q_.resize(T * Q);
  k_.resize(T * KV);
  v_.resize(T * KV);
  attn_.resize(T * Q);
  Project(ctx, h, H, layer.q_proj, layer.q_bias, q_.data());
  Project(ctx, h, H, layer.k_proj, layer.k_bias, k_.data());
  Project(ctx, h, H, layer.v_proj, layer.v_bias, v_.data());

  switch (ctx.weights->qk_norm) {
    case QkNorm::kNone:
      break;
    case QkNorm::kPerHead:
      kc::RmsNorm(q_.data(), T * config_.num_heads, hd, layer.q_norm.data, layer.q_norm.dtype,
                  config_.rms_norm_eps, q_.data(), ctx.pool);
      kc::RmsNorm(k_.data(), T * config_.num_kv_heads, hd, layer.k_norm.data, layer.k_norm.dtype,
                  config_.rms_norm_eps, k_.data(), ctx.pool);
      break;
    case QkNorm::kWholeProjection:
      kc::RmsNorm(q_.data(), T, Q, layer.q_norm.data, layer.q_norm.dtype, config_.rms_norm_eps,
                  q_.data(), ctx.pool);
      kc::RmsNorm(k_.data(), T, KV, layer.k_norm.data, layer.k_norm.dtype, config_.rms_norm_eps,
                  k_.data(), ctx.pool);
      break;
  }
  if (ctx.weights->clip_qkv.has_value()) {
    const float c = *ctx.weights->clip_qkv;
    kc::Clamp(q_.data(), T * Q, c, ctx.pool);
    kc::Clamp(k_.data(), T * KV, c, ctx.pool);
    kc::Clamp(v_.data(), T * KV, c, ctx.pool);
  }
  if (rotary_dim_ > 0) {
    kc::ApplyRope(q_.data(), T, Q, config_.num_heads, hd, rotary_dim_, ctx.positions.data(),
                  inv_freq_.data(), ctx.pool);
    kc::ApplyRope(k_.data(), T, KV, config_.num_kv_heads, hd, rotary_dim_, ctx.positions.data(),
                  inv_freq_.data(), ctx.pool);
  }
  kc::WriteKvCache(ctx.attn_seqs.data(), static_cast<int>(ctx.attn_seqs.size()), k_.data(),
                   v_.data(), KV, kv_shape_, cache->k.data(), cache->v.data(), ctx.pool);
  kc::PagedAttention(ctx.attn_seqs.data(), static_cast<int>(ctx.attn_seqs.size()), q_.data(), Q,
                     config_.num_heads, kv_shape_, cache->k.data(), cache->v.data(), scale_,
                     config_.sliding_window, attn_.data(), Q, ctx.pool);
  kc::Linear(attn_.data(), T, Q, layer.o_proj.data, layer.o_proj.dtype, H,
             layer.o_bias.present() ? layer.o_bias.data : nullptr, layer.o_bias.dtype, out,
             ctx.pool);
}

}  // namespace moe::engine::cpu
