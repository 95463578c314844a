#include "engine/cpu/cpu_runner.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "engine/cpu/attention_step.h"
#include "engine/cpu/batch_validation.h"
#include "engine/cpu/ffn_step.h"
#include "engine/cpu/routing_step.h"
#include "engine/cpu/step_context.h"
#include "engine/models/registry.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/rms_norm.h"

namespace moe::engine {
namespace {

namespace kc = ::moe::kernels::cpu;

// TokenFootprint results kept at most (a real vocabulary is ~150k ids; the map is
// cleared when full, as a cheap bound).
constexpr size_t kMaxCachedTokenFootprints = 65536;

// Sets the footprint bit (moe index * num_experts + expert) of every expert tokens
// [begin, begin + n) of `record` used.
void AddFootprint(const RoutingRecord& record, int num_experts, int64_t begin, int64_t n,
                  std::vector<uint64_t>* bits) {
  for (int m = 0; m < record.num_moe_layers(); ++m) {
    for (int64_t t = begin; t < begin + n; ++t) {
      for (int32_t e : record.Experts(m, t)) {
        if (e < 0 || e >= num_experts) continue;
        const int64_t key = int64_t{m} * num_experts + e;
        (*bits)[key / 64] |= uint64_t{1} << (key % 64);
      }
    }
  }
}

class CpuModelRunner : public CpuRunner {
 public:
  CpuModelRunner(const ModelConfig& config, DecoderWeights weights, int block_size,
                 int num_blocks, int num_threads)
      : config_(config),
        weights_(std::move(weights)),
        block_size_(block_size),
        num_blocks_(num_blocks),
        pool_(num_threads),
        attention_(config_, block_size),
        ffn_(config_),
        routing_(config_, weights_),
        token_routing_(config_, weights_) {
    const size_t per_layer = static_cast<size_t>(num_blocks) * block_size * config_.kv_size();
    kv_.resize(config_.num_layers);
    for (auto& layer : kv_) {
      layer.k.assign(per_layer, 0.f);
      layer.v.assign(per_layer, 0.f);
    }
  }

  const ModelConfig& config() const override { return config_; }
  int kv_block_size() const override { return block_size_; }
  int num_kv_blocks() const override { return num_blocks_; }
  std::string device_name() const override { return "cpu"; }

  absl::Status Forward(const ForwardBatch& batch, ForwardResult* out) override;

  // Every MoE layer's experts, resident: expert-aware batching has no cache to fit.
  int32_t expert_footprint_keys() const override {
    return routing_.record().num_moe_layers() * std::max(0, config_.num_experts);
  }
  int32_t expert_cache_slots() const override { return 0; }
  bool TokenFootprint(int32_t token, ExpertFootprint* out) override;

  const RoutingRecord* last_routing() const override {
    return has_routing_ ? &routing_.record() : nullptr;
  }
  void set_routing_observer(RoutingObserver observer) override {
    observer_ = std::move(observer);
  }
  void set_layer_observer(LayerObserver observer) override {
    layer_observer_ = std::move(observer);
  }

 private:
  void BuildContext(const ForwardBatch& batch);
  void FillFootprints(const ForwardBatch& batch, ForwardResult* out) const;

  const ModelConfig config_;
  const DecoderWeights weights_;
  const int block_size_;
  const int num_blocks_;
  kc::ThreadPool pool_;
  std::vector<cpu::LayerKvCache> kv_;
  cpu::AttentionStep attention_;
  cpu::FfnStep ffn_;
  cpu::RoutingStep routing_;
  // TokenFootprint's own router pass (one token), so last_routing() is left alone; it and
  // the cache below are engine-thread only, like Forward (no lock).
  cpu::RoutingStep token_routing_;
  cpu::StepContext token_ctx_;
  std::vector<float> token_embedding_;
  std::unordered_map<int32_t, std::vector<uint64_t>> token_footprints_;
  bool has_routing_ = false;
  RoutingObserver observer_;
  LayerObserver layer_observer_;
  cpu::StepContext ctx_;
  std::vector<float> x_, h_, delta_, rows_x_, rows_h_;
};

void CpuModelRunner::BuildContext(const ForwardBatch& batch) {
  ctx_.config = &config_;
  ctx_.weights = &weights_;
  ctx_.pool = &pool_;
  ctx_.tokens.clear();
  ctx_.positions.clear();
  ctx_.attn_seqs.clear();
  for (const SequenceChunk& s : batch.seqs) {
    kc::AttentionSeq a;
    a.token_begin = static_cast<int64_t>(ctx_.tokens.size());
    a.num_tokens = static_cast<int32_t>(s.tokens.size());
    a.start_pos = s.start_pos;
    a.block_table = s.block_table.data();
    ctx_.attn_seqs.push_back(a);
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      ctx_.tokens.push_back(s.tokens[t]);
      ctx_.positions.push_back(s.start_pos + static_cast<int32_t>(t));
    }
  }
  ctx_.num_tokens = static_cast<int64_t>(ctx_.tokens.size());
}

void CpuModelRunner::FillFootprints(const ForwardBatch& batch, ForwardResult* out) const {
  const int keys = expert_footprint_keys();
  out->footprints.assign(batch.seqs.size(), ExpertFootprint{});
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const int64_t n = static_cast<int64_t>(batch.seqs[i].tokens.size());
    if (n == 0) continue;
    std::vector<uint64_t>& bits = out->footprints[i].bits;
    bits.assign((keys + 63) / 64, 0);
    AddFootprint(routing_.record(), config_.num_experts, ctx_.attn_seqs[i].token_begin, n, &bits);
  }
}

bool CpuModelRunner::TokenFootprint(int32_t token, ExpertFootprint* out) {
  if (weights_.routing != RoutingVariant::kRouter || expert_footprint_keys() <= 0) return false;
  if (token < 0 || token >= config_.vocab_size) return false;
  out->exact = true;
  auto it = token_footprints_.find(token);
  if (it != token_footprints_.end()) {
    out->bits = it->second;
    return true;
  }
  // The decoupled router over the token's embedding: what Forward's RoutingStep::Begin
  // computes for this token, alone.
  const int64_t H = config_.hidden_size;
  token_ctx_.config = &config_;
  token_ctx_.weights = &weights_;
  token_ctx_.pool = &pool_;
  token_ctx_.num_tokens = 1;
  token_ctx_.tokens.assign(1, token);
  token_embedding_.resize(H);
  const WeightRef& emb = weights_.embed_tokens;
  kc::EmbeddingLookup(&token, 1, emb.data, emb.dtype, H, token_embedding_.data(), &pool_);
  token_routing_.Begin(token_ctx_, token_embedding_.data());
  out->bits.assign((expert_footprint_keys() + 63) / 64, 0);
  AddFootprint(token_routing_.record(), config_.num_experts, 0, 1, &out->bits);
  if (token_footprints_.size() >= kMaxCachedTokenFootprints) token_footprints_.clear();
  token_footprints_.emplace(token, out->bits);
  return true;
}

absl::Status CpuModelRunner::Forward(const ForwardBatch& batch, ForwardResult* out) {
  has_routing_ = false;
  out->footprints.clear();
  absl::Status valid = cpu::ValidateBatch(batch, config_, block_size_, num_blocks_);
  if (!valid.ok()) return valid;
  BuildContext(batch);
  const int64_t T = ctx_.num_tokens, H = config_.hidden_size;
  const float eps = config_.rms_norm_eps;

  x_.resize(T * H);
  h_.resize(T * H);
  delta_.resize(T * H);
  const WeightRef& emb = weights_.embed_tokens;
  kc::EmbeddingLookup(ctx_.tokens.data(), T, emb.data, emb.dtype, H, x_.data(), &pool_);
  routing_.Begin(ctx_, x_.data());

  // x_ is the residual stream; delta_ holds the previous sub-layer's output until the next
  // fused add + norm folds it in.
  bool pending = false;
  for (int l = 0; l < config_.num_layers; ++l) {
    const LayerWeights& layer = weights_.layers[l];
    kc::AddRmsNorm(x_.data(), pending ? delta_.data() : nullptr, T, H, layer.input_norm.data,
                   layer.input_norm.dtype, eps, h_.data(), &pool_);
    attention_.Run(ctx_, layer, h_.data(), &kv_[l], delta_.data());
    kc::AddRmsNorm(x_.data(), delta_.data(), T, H, layer.post_attention_norm.data,
                   layer.post_attention_norm.dtype, eps, h_.data(), &pool_);
    if (layer_observer_) layer_observer_(l, x_.data(), T, ctx_.tokens);
    if (layer.is_moe) {
      const int m = routing_.AtMoeLayer(ctx_, l, h_.data(), &ffn_);
      ffn_.RunRoutedMoe(ctx_, layer, h_.data(), routing_.topk_idx(m), routing_.topk_weight(m),
                        delta_.data());
    } else {
      ffn_.Run(ctx_, layer, h_.data(), delta_.data());
    }
    pending = true;
  }
  has_routing_ = true;
  if (observer_) observer_(routing_.record());
  if (batch.want_footprints && expert_footprint_keys() > 0) FillFootprints(batch, out);

  // Rows that need logits, in batch order.
  std::vector<int64_t> rows;
  out->row_begin.clear();
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& s = batch.seqs[i];
    out->row_begin.push_back(static_cast<int32_t>(rows.size()));
    const int64_t begin = ctx_.attn_seqs[i].token_begin;
    const int64_t n = static_cast<int64_t>(s.tokens.size());
    if (s.logits == SequenceChunk::Logits::kLast) rows.push_back(begin + n - 1);
    if (s.logits == SequenceChunk::Logits::kAll) {
      for (int64_t t = 0; t < n; ++t) rows.push_back(begin + t);
    }
  }
  out->row_begin.push_back(static_cast<int32_t>(rows.size()));
  out->vocab_size = config_.vocab_size;
  const int64_t R = static_cast<int64_t>(rows.size());
  out->logits.assign(static_cast<size_t>(R) * config_.vocab_size, 0.f);
  if (R == 0) return absl::OkStatus();
  rows_x_.resize(R * H);
  rows_h_.resize(R * H);
  std::vector<float> rows_delta(R * H);
  for (int64_t r = 0; r < R; ++r) {
    std::memcpy(rows_x_.data() + r * H, x_.data() + rows[r] * H, sizeof(float) * H);
    std::memcpy(rows_delta.data() + r * H, delta_.data() + rows[r] * H, sizeof(float) * H);
  }
  const WeightRef& fn = weights_.final_norm;
  kc::AddRmsNorm(rows_x_.data(), pending ? rows_delta.data() : nullptr, R, H, fn.data, fn.dtype,
                 eps, rows_h_.data(), &pool_);
  const WeightRef& head = weights_.lm_head;
  kc::Linear(rows_h_.data(), R, H, head.data, head.dtype, head.rows, nullptr, DType::kF32,
             out->logits.data(), &pool_);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCpuRunner(const Checkpoint& checkpoint,
                                                             const ModelConfig& config,
                                                             const RunnerOptions& options) {
  if (options.kv_block_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_block_size must be positive, got ", options.kv_block_size));
  }
  if (config.num_kv_heads <= 0 || config.num_heads % config.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_attention_heads ", config.num_heads,
                                                   " is not a multiple of num_key_value_heads ",
                                                   config.num_kv_heads));
  }
  auto weights = BindDecoderWeights(checkpoint, config);
  if (!weights.ok()) return weights.status();
  int num_blocks = options.num_kv_blocks;
  if (num_blocks <= 0) {
    const size_t block_bytes = static_cast<size_t>(config.num_layers) * 2 * options.kv_block_size *
                               config.kv_size() * sizeof(float);
    num_blocks = static_cast<int>(options.kv_cache_bytes / std::max<size_t>(1, block_bytes));
    if (num_blocks <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kv_cache_bytes ", options.kv_cache_bytes, " holds no KV block (one block needs ",
          block_bytes, " bytes)"));
    }
  }
  return std::unique_ptr<ModelRunner>(new CpuModelRunner(
      config, *std::move(weights), options.kv_block_size, num_blocks, options.num_threads));
}

}  // namespace moe::engine
