#include "engine/experts/predictor.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/router.h"

namespace moe::engine {
namespace {

namespace cpu = kernels::cpu;

// Norm (if present) then gate then top-k, for `tokens` rows; returns the distinct experts.
std::vector<int32_t> GateTopK(const float* hidden, int64_t tokens, const ModelConfig& c,
                              const WeightRef& norm, const WeightRef& gate,
                              cpu::ThreadPool* pool, std::vector<float>* normed,
                              std::vector<float>* logits, std::vector<int32_t>* idx,
                              std::vector<float>* w) {
  const int64_t h = c.hidden_size;
  const int e = static_cast<int>(gate.rows);
  const int k = std::min(c.num_experts_per_tok, e);
  const float* x = hidden;
  if (norm.present()) {
    normed->resize(tokens * h);
    cpu::RmsNorm(hidden, tokens, h, norm.data, norm.dtype, c.rms_norm_eps, normed->data(), pool);
    x = normed->data();
  }
  logits->resize(tokens * e);
  cpu::Linear(x, tokens, h, gate.data, gate.dtype, e, nullptr, DType::kF32, logits->data(), pool);
  idx->resize(tokens * k);
  w->resize(tokens * k);
  cpu::RouterSoftmaxTopK(logits->data(), tokens, e, k, false, idx->data(), w->data(), pool);
  std::vector<int32_t> set(idx->begin(), idx->end());
  std::sort(set.begin(), set.end());
  set.erase(std::unique(set.begin(), set.end()), set.end());
  return set;
}

absl::Status CheckInput(const PredictorInput& in, const ModelConfig& c, bool needs_hidden) {
  if (in.layer < -1 || in.layer >= c.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("predictor: layer ", in.layer, " outside [-1, ", c.num_layers, ")"));
  }
  if (needs_hidden && in.num_tokens > 0 && in.hidden == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("predictor: layer ", in.layer, ": no hidden state given"));
  }
  return absl::OkStatus();
}

}  // namespace

// ---- NextGatePredictor ----

NextGatePredictor::NextGatePredictor(const ModelConfig& config, const DecoderWeights& weights,
                                     cpu::ThreadPool* pool)
    : config_(config), weights_(weights), pool_(pool) {}

absl::Status NextGatePredictor::PredictNextLayers(const PredictorInput& in, int depth,
                                                  std::vector<LayerPrediction>* out) {
  out->clear();
  if (in.layer < 0) return CheckInput(in, config_, false);  // nothing to apply gates to
  if (auto st = CheckInput(in, config_, true); !st.ok()) return st;
  for (int m = in.layer + 1; m < config_.num_layers && static_cast<int>(out->size()) < depth;
       ++m) {
    const LayerWeights& lw = weights_.layers[m];
    if (!lw.is_moe) continue;
    if (!lw.router.present()) {
      return absl::FailedPreconditionError(
          absl::StrCat("next-gate predictor: layer ", m, " has no gate bound"));
    }
    LayerPrediction p;
    p.layer = m;
    if (in.num_tokens > 0) {
      p.experts = GateTopK(in.hidden, in.num_tokens, config_, lw.post_attention_norm, lw.router,
                           pool_, &normed_, &logits_, &topk_idx_, &topk_w_);
    }
    out->push_back(std::move(p));
  }
  return absl::OkStatus();
}

// ---- PregatedPredictor ----

PregatedPredictor::PregatedPredictor(const ModelConfig& config,
                                     std::vector<WeightRef> post_attention_norms,
                                     const RoutingWeights& routing, cpu::ThreadPool* pool)
    : config_(config), norms_(std::move(post_attention_norms)), routing_(routing), pool_(pool) {
  norms_.resize(config.num_layers);
}

absl::Status PregatedPredictor::PredictNextLayers(const PredictorInput& in, int depth,
                                                  std::vector<LayerPrediction>* out) {
  out->clear();
  if (in.layer < 0 || depth < 1) return CheckInput(in, config_, false);
  if (auto st = CheckInput(in, config_, true); !st.ok()) return st;
  const WeightRef& pregate = routing_.pregate[in.layer];
  if (!pregate.present()) return absl::OkStatus();  // dense, or the last MoE layer
  LayerPrediction p;
  p.layer = routing_.format.NextMoeLayer(in.layer);
  if (in.num_tokens > 0) {
    p.experts = GateTopK(in.hidden, in.num_tokens, config_, norms_[in.layer], pregate, pool_,
                         &normed_, &logits_, &topk_idx_, &topk_w_);
  }
  out->push_back(std::move(p));
  return absl::OkStatus();
}

// ---- DecoupledRouterPredictor ----

DecoupledRouterPredictor::DecoupledRouterPredictor(const ModelConfig& config,
                                                   WeightRef embed_tokens,
                                                   const RoutingWeights& routing,
                                                   cpu::ThreadPool* pool)
    : config_(config), embed_(std::move(embed_tokens)), routing_(routing), pool_(pool) {}

absl::Status DecoupledRouterPredictor::RouteTokens(absl::Span<const int32_t> tokens,
                                                   std::vector<int32_t>* topk_idx,
                                                   std::vector<float>* topk_weight) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t h = config_.hidden_size;
  const int64_t r = routing_.format.router_hidden_size;
  const int e = config_.num_experts;
  const int moe = static_cast<int>(routing_.format.moe_layers.size());
  const int k = std::min(config_.num_experts_per_tok, e);
  std::vector<float> x(n * h);
  for (int64_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= embed_.rows) {
      return absl::InvalidArgumentError(absl::StrCat("router predictor: token id ", tokens[t],
                                                     " outside the vocabulary of ", embed_.rows));
    }
    cpu::ConvertToF32(static_cast<const char*>(embed_.data) +
                          static_cast<size_t>(tokens[t]) * h * DTypeSize(embed_.dtype),
                      embed_.dtype, h, x.data() + t * h);
  }
  cpu::RmsNorm(x.data(), n, h, routing_.router_norm.data, routing_.router_norm.dtype,
               config_.rms_norm_eps, x.data(), pool_);
  std::vector<float> u(n * r), logits(n * int64_t{moe} * e);
  cpu::Linear(x.data(), n, h, routing_.router_up.data, routing_.router_up.dtype, r, nullptr,
              DType::kF32, u.data(), pool_);
  for (float& v : u) v = v / (1.f + std::exp(-v));  // SiLU
  cpu::Linear(u.data(), n, r, routing_.router_out.data, routing_.router_out.dtype,
              int64_t{moe} * e, nullptr, DType::kF32, logits.data(), pool_);
  // Rows of `logits` are [token][moe layer][expert]: route each (token, layer) row.
  topk_idx->resize(n * moe * k);
  topk_weight->resize(n * moe * k);
  cpu::RouterSoftmaxTopK(logits.data(), n * moe, e, k, config_.norm_topk_prob, topk_idx->data(),
                         topk_weight->data(), pool_);
  return absl::OkStatus();
}

absl::Status DecoupledRouterPredictor::PredictNextLayers(const PredictorInput& in, int depth,
                                                         std::vector<LayerPrediction>* out) {
  out->clear();
  if (auto st = CheckInput(in, config_, false); !st.ok()) return st;
  if (static_cast<int64_t>(in.token_ids.size()) != in.num_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("router predictor: ", in.token_ids.size(),
                                                   " token ids for ", in.num_tokens, " rows"));
  }
  // The whole step's routing is computed once (usually at layer -1) and reused.
  if (!cache_valid_ || !std::equal(cached_tokens_.begin(), cached_tokens_.end(),
                                   in.token_ids.begin(), in.token_ids.end())) {
    if (auto st = RouteTokens(in.token_ids, &cached_idx_, &cached_w_); !st.ok()) return st;
    cached_tokens_.assign(in.token_ids.begin(), in.token_ids.end());
    cache_valid_ = true;
  }
  const auto& f = routing_.format;
  const int moe = static_cast<int>(f.moe_layers.size());
  const int k = std::min(config_.num_experts_per_tok, config_.num_experts);
  for (int m = f.NextMoeLayer(in.layer); m >= 0 && static_cast<int>(out->size()) < depth;
       m = f.NextMoeLayer(m)) {
    const int mi = f.MoeIndex(m);
    LayerPrediction p;
    p.layer = m;
    for (int64_t t = 0; t < in.num_tokens; ++t)
      for (int j = 0; j < k; ++j) p.experts.push_back(cached_idx_[(t * moe + mi) * k + j]);
    std::sort(p.experts.begin(), p.experts.end());
    p.experts.erase(std::unique(p.experts.begin(), p.experts.end()), p.experts.end());
    out->push_back(std::move(p));
  }
  return absl::OkStatus();
}

}  // namespace moe::engine
