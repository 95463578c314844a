// Predictors of future routing: at layer l, the experts the next MoE layers will use, so
// the prefetcher can copy them while layer l computes. The CPU implementations here use
// the kernels/cpu router and linear functions; the CUDA backend will run the same math
// on the device (same inputs, same contracts).
//
//   NextGatePredictor          any standard model: applies the gates of the next d MoE
//                              layers to layer l's hidden state (speculative).
//   PregatedPredictor          pre-gated checkpoints: layer l's pre-gate selects the next
//                              MoE layer's experts (exact, one layer ahead).
//   DecoupledRouterPredictor   router checkpoints: the router over token embeddings gives
//                              every MoE layer's routing before the step (exact, any depth).
//
// Depth counts MoE layers: depth d means the next d MoE layers after `layer` (dense
// layers are skipped; there is nothing to fetch for them). Predictions past the last
// layer are not returned; exact predictors return only the layers they know.
//
// Thread safety: a predictor is driven by one thread (the engine thread); it keeps
// scratch buffers. The weights it views must outlive it.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/experts/routing_format.h"
#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"
#include "kernels/cpu/thread_pool.h"

namespace moe::engine {

struct PredictorInput {
  // The layer now running; -1: before the step's first layer.
  int layer = -1;
  // [num_tokens, hidden_size] fp32: the residual stream of `layer` after its attention
  // block, i.e. the input of its post-attention norm (what its gate sees once normed).
  // May be null for layer -1.
  const float* hidden = nullptr;
  int64_t num_tokens = 0;
  // The step's token ids, one per row (the decoupled router needs them).
  absl::Span<const int32_t> token_ids;
};

struct LayerPrediction {
  int32_t layer = 0;
  std::vector<int32_t> experts;  // distinct, ascending: the union over the step's tokens
};

class ExpertPredictor {
 public:
  virtual ~ExpertPredictor() = default;
  virtual const char* name() const = 0;
  // True when predictions are the routing itself (never wrong).
  virtual bool exact() const = 0;
  // Clears `out` and fills it with one entry per predicted MoE layer, nearest first.
  // Fails on an input that does not match the model (a missing hidden state or token
  // ids the predictor needs, an out-of-range layer or token).
  virtual absl::Status PredictNextLayers(const PredictorInput& in, int depth,
                                         std::vector<LayerPrediction>* out) = 0;
};

class NextGatePredictor : public ExpertPredictor {
 public:
  // `weights` of a standard checkpoint (router and post_attention_norm of every MoE
  // layer). `pool` may be null.
  NextGatePredictor(const ModelConfig& config, const DecoderWeights& weights,
                    kernels::cpu::ThreadPool* pool);
  const char* name() const override { return "next-gate"; }
  bool exact() const override { return false; }
  absl::Status PredictNextLayers(const PredictorInput& in, int depth,
                                 std::vector<LayerPrediction>* out) override;

 private:
  const ModelConfig& config_;
  const DecoderWeights& weights_;
  kernels::cpu::ThreadPool* pool_;
  std::vector<float> normed_, logits_, topk_w_;
  std::vector<int32_t> topk_idx_;
};

class PregatedPredictor : public ExpertPredictor {
 public:
  // `post_attention_norms`: one per layer ([hidden]; the norm the pre-gate's input goes
  // through, as the layer's own gate's would). `routing` bound in pregated mode.
  PregatedPredictor(const ModelConfig& config, std::vector<WeightRef> post_attention_norms,
                    const RoutingWeights& routing, kernels::cpu::ThreadPool* pool);
  const char* name() const override { return "pregate"; }
  bool exact() const override { return true; }
  absl::Status PredictNextLayers(const PredictorInput& in, int depth,
                                 std::vector<LayerPrediction>* out) override;

 private:
  const ModelConfig& config_;
  std::vector<WeightRef> norms_;
  const RoutingWeights& routing_;
  kernels::cpu::ThreadPool* pool_;
  std::vector<float> normed_, logits_, topk_w_;
  std::vector<int32_t> topk_idx_;
};

class DecoupledRouterPredictor : public ExpertPredictor {
 public:
  // `embed_tokens` [vocab, hidden]; `routing` bound in router mode.
  DecoupledRouterPredictor(const ModelConfig& config, WeightRef embed_tokens,
                           const RoutingWeights& routing, kernels::cpu::ThreadPool* pool);
  const char* name() const override { return "router"; }
  bool exact() const override { return true; }
  absl::Status PredictNextLayers(const PredictorInput& in, int depth,
                                 std::vector<LayerPrediction>* out) override;

  // Every MoE layer's routing of `tokens`: topk_idx / topk_weight [tokens, moe_layers, k]
  // (descending weight; weights renormalised when the config says norm_topk_prob). This
  // is the routing the backbone uses, so the scheduler may call it for queued requests.
  absl::Status RouteTokens(absl::Span<const int32_t> tokens, std::vector<int32_t>* topk_idx,
                           std::vector<float>* topk_weight);

 private:
  const ModelConfig& config_;
  WeightRef embed_;
  const RoutingWeights& routing_;
  kernels::cpu::ThreadPool* pool_;
  std::vector<int32_t> cached_tokens_, cached_idx_;
  std::vector<float> cached_w_;
  bool cache_valid_ = false;
};

}  // namespace moe::engine
