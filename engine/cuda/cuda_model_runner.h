// The CUDA backend's runner class, shared by its sources (cuda_runner.cc: set-up, memory
// plan, attention, the step and CUDA graphs; cuda_runner_moe.cc: routing, expert FFNs,
// expert offload; cuda_runner_router.cc: the decoupled router and its whole-step
// foresight; cuda_runner_sampling.cc: device sampling and the logits copy at the end of a
// step; cuda_runner_footprint.cc: expert footprints for expert-aware batching). Not a public header: users call CreateCudaRunner (cuda_runner.h).
//
// Thread safety: as ModelRunner: one thread drives Forward at a time; offload_stats() may
// be called from any thread (ExpertOffload::Stats takes its own lock).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/expert_offload.h"
#include "engine/model_runner.h"
#include "engine/models/decoder_weights.h"
#include "kernels/cuda/experts.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/sampling.h"
#include "kernels/cuda/small_batch_experts.h"

namespace moe::engine::cuda {

namespace kg = ::moe::kernels::cuda;

template <typename T>
class CudaModelRunner : public ModelRunner {
 public:
  CudaModelRunner(const ModelConfig& config, bool renormalize, std::optional<float> clip,
                  int block_size, int num_blocks, const char* dtype_name, const RunnerOptions& options)
      : config_(config), renormalize_(renormalize), clip_(clip), block_size_(block_size),
        num_blocks_(num_blocks), dtype_name_(dtype_name), options_(options) {}
  ~CudaModelRunner() override {
    offload_.reset();
    for (auto& [key, g] : graphs_) {
      if (g.exec) cudaGraphExecDestroy(g.exec);
    }
    for (auto& p : kv_) cudaFree(p);
    if (expert_ptrs_) cudaFree(expert_ptrs_);
    if (cublas_ws_) cudaFree(cublas_ws_);
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  absl::Status Init(const DecoderWeights& w);

  const ModelConfig& config() const override { return config_; }
  int kv_block_size() const override { return block_size_; }
  int num_kv_blocks() const override { return num_blocks_; }
  std::string device_name() const override { return device_name_; }
  absl::Status Forward(const ForwardBatch& batch, ForwardResult* out) override;
  bool samples_on_device() const override { return true; }
  std::optional<OffloadStats> offload_stats() const override {
    if (!offload_) return std::nullopt;
    return offload_->Stats();
  }
  // Expert footprints (cuda_runner_footprint.cc). TokenFootprint builds its table of every
  // vocabulary token's routing on the first call (decoupled-router checkpoints only).
  int32_t expert_footprint_keys() const override;
  int32_t expert_cache_slots() const override;
  bool TokenFootprint(int32_t token, ExpertFootprint* out) override;
  // The offload's slot table, as footprint keys; false without offload.
  bool ResidentExpertKeys(std::vector<uint64_t>* bits) const override;

 private:
  absl::Status Validate(const ForwardBatch& batch) const;
  absl::Status Attention(int l, int64_t n);
  absl::Status Ffn(int l, int64_t n);
  // MOE_COMBINE_FUSED: whether Ffn(l) leaves its MoE combine to the residual-add + RMSNorm
  // that follows it (AddNormAfter). Not with a shared expert: it adds into delta_ after the
  // combine.
  bool CombineDeferred(int l) const {
    return l >= 0 && w_.layers[l].is_moe && !w_.layers[l].shared.present() && kg::MoeCombineNormFusedDefault();
  }
  // Whether the expert rows in eout_ are T (RunExpertsOutT) rather than fp32.
  bool ExpertRowsInT(int64_t n) const { return !SmallBatchExperts(n) && kg::ExpertsDefaultOutT(); }
  // x_ += the output of layer prev (-1: none), then RMSNorm(weight) into h_; with a deferred
  // combine one launch sums the expert rows into x_ and normalises.
  absl::Status AddNormAfter(int prev, const T* weight, int64_t n);
  // The layer's routing into topk_idx_ / topk_w_: its own gate, or (pre-gated) what the
  // previous MoE layer's pre-gate chose; then its pre-gate's choice for the next MoE layer.
  absl::Status Route(int l, int64_t n);
  // h_ through `gate` ([experts, hidden]) and the softmax/top-k into idx / weight ([n, k]).
  absl::Status Gate(const T* gate, int64_t n, int32_t* idx, float* weight);
  // The routed experts through the expert cache (offload): routing to the host, the layer's
  // experts acquired in chunks of at most num_slots, predictions handed to the prefetcher.
  absl::Status OffloadedExperts(int l, int64_t n);
  absl::Status PlanMemory(const DecoderWeights& w, bool* offload, int32_t* slots) const;
  absl::Status DenseFfn(const DeviceFfn<T>& f, int64_t n, float* out);
  // Embedding, every layer and (r > 0) the lm_head rows for the step's metadata already on
  // the device. Host-sync free when SyncFree(n): then it may be captured into a graph.
  absl::Status RunLayers(int64_t n, int64_t r);
  bool SmallBatchExperts(int64_t n) const {
    return small_experts_ && n <= small_max_tokens_ &&
           (n <= kg::kSmallBatchExpertsAlwaysTokens ||
            n * config_.num_experts_per_tok <= kg::kSmallBatchExpertsMaxMeanRows * config_.num_experts);
  }
  bool SyncFree(int64_t n) const { return !has_moe_ || (!offload_ && SmallBatchExperts(n)); }
  // After the step's kernels: samples the rows whose chunks ask for it (out->tokens) and
  // queues the copy of every other row's logits (the caller synchronises).
  absl::Status SampleAndCopyLogits(const ForwardBatch& batch, int64_t R, ForwardResult* out);
  // Replays (or first runs eagerly, then captures) the decode-step graph for this shape.
  absl::Status RunGraphed(int64_t n, int64_t r);
  std::vector<const void*> Fingerprint() const;
  // Expert footprints of a step (cuda_runner_footprint.cc), hooked into Forward: Begin
  // before the layers run (sizes fp_route_ at a stable address, before any graph capture),
  // RecordRoute at the end of Route (a device copy of the layer's routing; captured into
  // graphs like the rest), QueueCopy before the step's final synchronisation (the one
  // device-to-host copy), Finish after it (per-chunk bitsets; clears out->footprints when
  // the batch did not ask). All no-ops unless the batch asks.
  absl::Status BeginFootprints(const ForwardBatch& batch, int64_t n);
  absl::Status RecordRoute(int l, int64_t n);
  absl::Status QueueFootprintCopy(int64_t n);
  absl::Status FinishFootprints(const ForwardBatch& batch, int64_t n, ForwardResult* out);
  // Fills token_routes_ (decoupled router): RouterTopK over every vocabulary token.
  absl::Status BuildTokenRoutes();

  const ModelConfig config_;
  const bool renormalize_;
  const std::optional<float> clip_;
  const int block_size_;
  const int num_blocks_;
  const char* dtype_name_;
  const RunnerOptions options_;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceWeights<T> w_;
  std::vector<T*> kv_;  // per layer: k then v
  int rotary_dim_ = 0;
  float scale_ = 1.f;
  Scratch<float> inv_freq_;

  // Per-step metadata (device) and host copies.
  int num_prefill_tiles_ = 0, num_decode_ = 0, num_splits_ = 1;
  Scratch<int32_t> tokens_, positions_, slots_, tables_, tiles_, decode_, rows_;
  Scratch<kg::CudaAttnSeq> seqs_;
  // Activations.
  Scratch<float> x_, delta_, qkv_, logits_, router_logits_, topk_w_, gu_, eout_, shared_out_,
      shared_logit_, ws_;
  Scratch<T> h_, attn_, perm_, act_, rows_h_;
  Scratch<int32_t> topk_idx_, counts_, offsets_, row_token_, slot_row_;
  std::vector<int32_t> h_counts_, h_offsets_;
  Scratch<int32_t> active_;

  // Small-batch expert path: per MoE layer, device arrays of the experts' gate_up and
  // down pointers (one allocation, expert_ptrs_). Off with MOE_CUDA_SMALL_BATCH_EXPERTS=0.
  bool has_moe_ = false;
  bool small_experts_ = false;
  // Steps of at most this many tokens take the small-batch path (env
  // MOE_CUDA_SMALL_BATCH_MAX_TOKENS, default kSmallBatchExpertsMaxTokens; an experiment knob),
  // past kSmallBatchExpertsAlwaysTokens only at few rows per expert (small_batch_experts.h).
  int64_t small_max_tokens_ = kg::kSmallBatchExpertsMaxTokens;
  void* expert_ptrs_ = nullptr;
  std::vector<const T* const*> gate_up_ptrs_, down_ptrs_;
  // CUDA graphs of pure-decode steps, keyed by (tokens, logit rows, decode splits); each
  // remembers the scratch addresses it was captured with and is re-captured when they
  // move. Off with MOE_CUDA_GRAPHS=0.
  struct GraphEntry {
    std::vector<const void*> fingerprint;
    bool seen = false;
    cudaGraphExec_t exec = nullptr;
  };
  bool use_graphs_ = false;
  // The key's bool: the step records its routing for footprints (record_routes_).
  std::map<std::tuple<int64_t, int64_t, int, bool>, GraphEntry> graphs_;
  void* cublas_ws_ = nullptr;

  // Sampling on the device (SampleAndCopyLogits): per-row params and the sampled ids.
  std::vector<kg::CudaSampleParams> h_sample_;
  std::vector<char> h_sample_on_;
  Scratch<kg::CudaSampleParams> sample_params_;
  Scratch<int32_t> sampled_;

  // Expert offload (null when every expert is resident) and routing foresight.
  enum class Prefetch { kOff, kNextGate, kPregate, kRouter };
  std::unique_ptr<ExpertOffload> offload_;
  Prefetch prefetch_ = Prefetch::kOff;
  int prefetch_depth_ = 1;
  std::vector<int32_t> moe_layers_;
  Scratch<int32_t> pg_idx_, pred_idx_;
  Scratch<float> pg_w_, pred_w_;
  Scratch<const T*> chunk_ptrs_;
  Scratch<int32_t> chunk_active_;
  std::vector<int32_t> h_route_, first_layer_experts_;

  // Decoupled-router checkpoints (RoutingVariant::kRouter; cuda_runner_router.cc). Layers
  // have no own gate: RouteStep runs the router over the step's embeddings (RunLayers,
  // before layer 0) into step_idx_ / step_w_, [n, M, k] token-major (M = MoE layers), and
  // Route(l) copies MoE layer m's [n, k] slice into topk_idx_ / topk_w_ (a strided
  // device copy: no host sync, graph-capturable). Offloaded, the step's routing comes to
  // the host once (the step's only routing sync) and step_experts_ holds each MoE layer's
  // distinct experts; with --prefetch router the Belady oracle gets every layer's uses
  // and the layers are predicted in order as deep as the slots allow (foreseen_).
  bool decoupled_router() const { return w_.router.present(); }
  absl::Status RouteStep(int64_t n);
  // The router's kernels over n fp32 embedding rows x ([n, hidden]): RMSNorm into h
  // ([n, hidden]), up_proj into gu ([n, 2R]; each row's second half must hold 1.0, see
  // RouteStep), SiLU into act ([n, R]), out_proj into logits ([n, M*E]), then per (token,
  // MoE layer) softmax / top-k into idx / w ([n, M, k]). Enqueued on stream_, no host sync.
  absl::Status RouterTopK(const float* x, int64_t n, T* h, float* gu, T* act, float* logits, int32_t* idx, float* w);
  absl::Status RouteSlice(int l, int64_t n);
  // Offload: routing to the host, step_experts_, known uses, the first predictions.
  absl::Status ForeseeStep(int64_t n);
  // Predicts the layers after MoE layer m (-1: before the first) while their experts fit
  // beside layer m's in the cache.
  absl::Status PredictAhead(int m);
  // MoE layer m's per-expert row counts and offsets (as LaunchMoePermute computes them)
  // from the host copy of the step's routing, into h_counts_ / h_offsets_.
  void HostCountsOffsets(int m, int64_t n);
  Scratch<float> router_gu_, router_all_logits_, step_w_;
  Scratch<T> router_act_;
  Scratch<int32_t> step_idx_;
  std::vector<int32_t> h_step_route_;
  std::vector<std::vector<int32_t>> step_experts_;
  int foreseen_ = -1;  // the last MoE layer index predicted this step

  // Expert footprints (cuda_runner_footprint.cc). footprints_on_: this step's batch asked;
  // record_routes_: and the layers' routing must be recorded (own gates / pre-gates) into
  // fp_route_, [M, n, k] (a decoupled router's step_idx_ already holds the step's routing).
  // h_fp_route_: the host copy. token_routes_: [V, M, k] expert ids of every vocabulary
  // token (decoupled router; built by the first TokenFootprint call, V*M*k*2 bytes).
  bool footprints_on_ = false, record_routes_ = false;
  Scratch<int32_t> fp_route_;
  std::vector<int32_t> h_fp_route_;
  std::vector<uint16_t> token_routes_;
  bool token_routes_failed_ = false;
};

// Explicitly instantiated in every source for bf16, f16 and float.
extern template class CudaModelRunner<bf16>;
extern template class CudaModelRunner<f16>;
extern template class CudaModelRunner<float>;

}  // namespace moe::engine::cuda
