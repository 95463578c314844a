#include "engine/cuda/cuda_runner.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <tuple>
#include <type_traits>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/cuda_util.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/expert_offload.h"
#include "engine/models/registry.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/experts.h"
#include "kernels/cuda/linear.h"
#include "kernels/cuda/moe_permute.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/router.h"
#include "kernels/cuda/small_batch_experts.h"

namespace moe::engine::cuda {
namespace {

bool EnvFlag(const char* name, bool dflt) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return dflt;
  return !(v[0] == '0' || v[0] == 'n' || v[0] == 'N' || v[0] == 'f' || v[0] == 'F');
}

uint64_t DenseNumel(const DecoderWeights& w) {
  uint64_t n = w.embed_tokens.numel() + w.final_norm.numel();
  if (w.lm_head.data != w.embed_tokens.data) n += w.lm_head.numel();
  auto ffn = [](const FfnWeights& f) { return f.present() ? f.gate.numel() + f.up.numel() + f.down.numel() : 0; };
  for (const LayerWeights& L : w.layers) {
    for (const WeightRef* r : {&L.input_norm, &L.post_attention_norm, &L.q_proj, &L.k_proj, &L.v_proj, &L.o_proj,
                               &L.q_bias, &L.k_bias, &L.v_bias, &L.o_bias, &L.q_norm, &L.k_norm, &L.router,
                               &L.pregate, &L.shared_expert_gate}) {
      n += r->numel();
    }
    n += ffn(L.shared_expert) + ffn(L.dense_mlp);
  }
  return n;
}

std::string GiB(uint64_t b) { return absl::StrCat(absl::SixDigits(b / double(1ull << 30)), " GiB"); }


}  // namespace

template <typename T>
absl::Status CudaModelRunner<T>::Init(const DecoderWeights& w) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no usable CUDA device: ", e != cudaSuccess ? cudaGetErrorString(e) : "none found"));
  }
  cudaDeviceProp prop;
  CU(cudaGetDeviceProperties(&prop, 0));
  device_name_ = absl::StrCat(prop.name, " (", dtype_name_, ")");
  CU(cudaStreamCreate(&stream_));
  CB(cublasCreate(&cublas_));
  CB(cublasSetStream(cublas_, stream_));
  // A fixed cuBLAS workspace, so that GEMMs captured into graphs allocate nothing.
  constexpr size_t kCublasWorkspace = size_t{32} << 20;
  CU(cudaMalloc(&cublas_ws_, kCublasWorkspace));
  CB(cublasSetWorkspace(cublas_, cublas_ws_, kCublasWorkspace));
  bool offload = false;
  int32_t slots = 0;
  RET(PlanMemory(w, &offload, &slots));
  for (int l = 0; l < config_.num_layers; ++l) {
    if (w.layers[l].is_moe) moe_layers_.push_back(l);
  }
  RET(w_.Upload(w, config_, !offload));
  if (offload) {
    const OffloadOptions& oo = options_.offload;
    const bool pregated = w.routing == RoutingVariant::kPregated;
    const bool router = w.routing == RoutingVariant::kRouter;
    const char* variant = pregated ? "this pre-gated checkpoint" : router ? "this decoupled-router checkpoint" : "this checkpoint";
    if (oo.prefetch == "auto") {
      prefetch_ = pregated ? Prefetch::kPregate : router ? Prefetch::kRouter : Prefetch::kNextGate;
    } else if (oo.prefetch == "off") {
      prefetch_ = Prefetch::kOff;
    } else if (oo.prefetch == "next-gate") {
      if (pregated || router) {
        return absl::InvalidArgumentError(absl::StrCat("prefetch: next-gate needs every MoE layer's own gate; ", variant,
                                                       pregated ? " has none past the first (use pregate)" : " has none (use router)"));
      }
      prefetch_ = Prefetch::kNextGate;
    } else if (oo.prefetch == "pregate") {
      if (!pregated) return absl::InvalidArgumentError(absl::StrCat("prefetch: pregate needs a pre-gated checkpoint (engine/experts/FORMATS.md); ", variant, " has no pre-gates"));
      prefetch_ = Prefetch::kPregate;
    } else if (oo.prefetch == "router") {
      if (!router) return absl::InvalidArgumentError(absl::StrCat("prefetch: router needs a decoupled-router checkpoint (engine/experts/FORMATS.md); ", variant, " has no router"));
      prefetch_ = Prefetch::kRouter;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("prefetch: '", oo.prefetch, "' is not one of auto, off, next-gate, pregate, router"));
    }
    if (oo.prefetch_depth < 1) return absl::InvalidArgumentError(absl::StrCat("prefetch_depth must be >= 1, got ", oo.prefetch_depth));
    // Exact foresight sets its own depth: one MoE layer (pregate), as deep as the slots allow (router).
    prefetch_depth_ = prefetch_ == Prefetch::kNextGate ? oo.prefetch_depth : 1;
    auto policy = ParseEvictionPolicy(oo.policy);
    if (!policy.ok()) return absl::InvalidArgumentError(absl::StrCat("policy: ", policy.status().message()));
    ExpertOffloadConfig oc;
    oc.grid = {config_.num_layers, config_.num_experts};
    oc.moe_layers = moe_layers_;
    oc.hidden = config_.hidden_size;
    for (int l : moe_layers_) oc.inter = w_.layers[l].expert_inter;
    oc.elem_size = sizeof(T);
    oc.num_slots = slots;
    oc.policy = *policy;
    oc.prefetch = prefetch_ == Prefetch::kOff       ? "off"
                  : prefetch_ == Prefetch::kPregate ? "pregate"
                  : prefetch_ == Prefetch::kRouter  ? "router"
                                                    : "next-gate";
    auto convert = [](const WeightRef& ref, void* dst) { ConvertWeight(ref, static_cast<T*>(dst)); };
    auto o = ExpertOffload::Create(oc, w, convert, stream_);
    if (!o.ok()) return o.status();
    offload_ = *std::move(o);
    device_name_ = absl::StrCat(device_name_, ", experts offloaded: ", slots, " of ",
                                moe_layers_.size() * config_.num_experts, " in the GPU cache, prefetch ", oc.prefetch,
                                ", ", oo.policy);
  }
  {
    const int E = config_.num_experts;
    bool ok = E > 0;
    std::vector<const T*> ptrs;
    for (const auto& L : w_.layers) {
      if (!L.is_moe) continue;
      has_moe_ = true;
      ok = ok && static_cast<int>(L.experts.size()) == E &&
           kg::SmallBatchExpertsSupported(config_.hidden_size, L.expert_inter, sizeof(T));
      for (const auto& ew : L.experts) {
        ok = ok && reinterpret_cast<uintptr_t>(ew.gate_up) % 16 == 0 && reinterpret_cast<uintptr_t>(ew.down) % 16 == 0;
        ptrs.push_back(ew.gate_up);
      }
      for (const auto& ew : L.experts) ptrs.push_back(ew.down);
    }
    small_experts_ = has_moe_ && ok && EnvFlag("MOE_CUDA_SMALL_BATCH_EXPERTS", true);
    if (small_experts_) {
      CU(cudaMalloc(&expert_ptrs_, ptrs.size() * sizeof(const T*)));
      CU(cudaMemcpy(expert_ptrs_, ptrs.data(), ptrs.size() * sizeof(const T*), cudaMemcpyHostToDevice));
      const T* const* base = static_cast<const T* const*>(expert_ptrs_);
      gate_up_ptrs_.assign(w_.layers.size(), nullptr);
      down_ptrs_.assign(w_.layers.size(), nullptr);
      size_t at = 0;
      for (size_t l = 0; l < w_.layers.size(); ++l) {
        if (!w_.layers[l].is_moe) continue;
        gate_up_ptrs_[l] = base + at;
        down_ptrs_[l] = base + at + E;
        at += 2 * static_cast<size_t>(E);
      }
    }
    use_graphs_ = EnvFlag("MOE_CUDA_GRAPHS", true);
    if (const char* v = std::getenv("MOE_CUDA_SMALL_BATCH_MAX_TOKENS"); v != nullptr && std::atoi(v) > 0) {
      small_max_tokens_ = std::atoi(v);
    }
  }
  const size_t per_layer = static_cast<size_t>(num_blocks_) * block_size_ * config_.kv_size();
  for (int l = 0; l < 2 * config_.num_layers; ++l) {
    T* p = nullptr;
    e = cudaMalloc(reinterpret_cast<void**>(&p), per_layer * sizeof(T));
    if (e != cudaSuccess) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "KV cache of ", num_blocks_, " blocks (", per_layer * sizeof(T), " bytes per layer and K/V) does "
          "not fit after ", w_.bytes, " bytes of weights: ", cudaGetErrorString(e)));
    }
    kv_.push_back(p);
  }
  rotary_dim_ = static_cast<int>(config_.head_dim * config_.partial_rotary_factor);
  rotary_dim_ -= rotary_dim_ % 2;
  const double factor = config_.rope_type == "linear" ? config_.rope_scaling_factor : 1.0;
  // Block tables at a stable address (graphs keep pointers): room for every block plus slack.
  RET(tables_.Reserve(static_cast<size_t>(std::min(num_blocks_, 1 << 20)) + 4096, "block tables"));
  RET(inv_freq_.Put(kernels::cpu::RopeInvFreq(rotary_dim_, config_.rope_theta, factor), "inv_freq", stream_));
  scale_ = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  CU(cudaStreamSynchronize(stream_));
  return absl::OkStatus();
}

// Bytes of every tensor the runner uploads except the routed experts.
template <typename T>
absl::Status CudaModelRunner<T>::PlanMemory(const DecoderWeights& w, bool* offload, int32_t* slots) const {
  const OffloadOptions& oo = options_.offload;
  const double util = options_.gpu_memory_utilization;
  if (!(util > 0 && util <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("gpu_memory_utilization must be in (0, 1], got ", util));
  }
  if (oo.mode != "auto" && oo.mode != "on" && oo.mode != "off") {
    return absl::InvalidArgumentError(absl::StrCat("offload: '", oo.mode, "' is not one of auto, on, off"));
  }
  if (!(oo.expert_cache_gb >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("expert_cache_gb must be >= 0, got ", oo.expert_cache_gb));
  }
  size_t free_b = 0, total_b = 0;
  CU(cudaMemGetInfo(&free_b, &total_b));
  const uint64_t budget = static_cast<uint64_t>(util * static_cast<double>(total_b));
  const uint64_t elem = sizeof(T);
  const uint64_t dense = DenseNumel(w) * elem;
  uint64_t num_experts = 0, expert_bytes = 0;
  for (const LayerWeights& L : w.layers) {
    if (!L.is_moe || L.experts.empty()) continue;
    num_experts += L.experts.size();
    expert_bytes = ExpertBytes(config_.hidden_size, L.experts[0].gate.rows, elem);
  }
  const uint64_t all_experts = num_experts * expert_bytes;
  const uint64_t kv = static_cast<uint64_t>(num_blocks_) * block_size_ * config_.kv_size() * 2 * config_.num_layers * elem;
  constexpr uint64_t kReserve = 1ull << 30;  // activations, cuBLAS workspace, graphs
  const uint64_t fixed = dense + kv + kReserve;
  const std::string sizes = absl::StrCat("dense weights ", GiB(dense), " + routed experts ", GiB(all_experts), " + KV cache ",
                                         GiB(kv), " + 1 GiB working memory; budget ", GiB(budget), " = gpu_memory_utilization ",
                                         util, " x ", GiB(total_b));
  const bool fits = fixed + all_experts <= budget;
  *offload = num_experts > 0 && (oo.mode == "on" || (oo.mode == "auto" && !fits));
  if (!*offload) {
    if (!fits) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the model does not fit on the GPU: ", sizes,
          num_experts > 0 ? "; use --offload auto|on, a smaller KV cache, or a larger --gpu-memory-utilization"
                          : "; use a smaller KV cache or a larger --gpu-memory-utilization"));
    }
    *slots = 0;
    return absl::OkStatus();
  }
  if (fixed > budget) {
    return absl::ResourceExhaustedError(absl::StrCat("even with the experts offloaded the rest does not fit on the GPU: ", sizes));
  }
  uint64_t cache = oo.expert_cache_gb > 0 ? static_cast<uint64_t>(oo.expert_cache_gb * double(1ull << 30)) : budget - fixed;
  if (oo.expert_cache_gb > 0 && fixed + cache > budget) {
    return absl::ResourceExhaustedError(absl::StrCat("expert_cache_gb ", oo.expert_cache_gb, " does not fit beside the rest: ", sizes));
  }
  const uint64_t n = std::min<uint64_t>(cache / expert_bytes, num_experts);
  if (n < 1) {
    return absl::ResourceExhaustedError(absl::StrCat("the expert cache holds no expert (one needs ", expert_bytes, " bytes; cache ",
                                                     cache, " bytes): ", sizes));
  }
  *slots = static_cast<int32_t>(n);
  return absl::OkStatus();
}
template <typename T>
absl::Status CudaModelRunner<T>::Validate(const ForwardBatch& batch) const {
  std::set<int64_t> ids;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& s = batch.seqs[i];
    const std::string where = absl::StrCat("batch entry ", i, " (seq ", s.seq_id, ")");
    if (s.tokens.empty()) return absl::InvalidArgumentError(where + ": no tokens");
    if (s.start_pos < 0) return absl::InvalidArgumentError(where + ": negative start_pos");
    if (!ids.insert(s.seq_id).second) return absl::InvalidArgumentError(where + ": seq_id repeated");
    for (int32_t t : s.tokens) {
      if (t < 0 || t >= config_.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": token id ", t, " outside [0, ", config_.vocab_size, ")"));
      }
    }
    const int64_t end = int64_t{s.start_pos} + static_cast<int64_t>(s.tokens.size());
    if (config_.max_position_embeddings > 0 && end > config_.max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": position ", end - 1, " past max_position_embeddings ", config_.max_position_embeddings));
    }
    if (static_cast<int64_t>(s.block_table.size()) * block_size_ < end) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": block table of ", s.block_table.size(), " blocks does not cover ", end, " positions"));
    }
    for (int32_t b : s.block_table) {
      if (b < 0 || b >= num_blocks_) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": block ", b, " outside [0, ", num_blocks_, ")"));
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::Attention(int l, int64_t n) {
  const DeviceLayer<T>& L = w_.layers[l];
  const int64_t H = config_.hidden_size, Q = config_.q_size(), KV = config_.kv_size(), S = Q + 2 * KV;
  const int hd = config_.head_dim;
  const float eps = config_.rms_norm_eps;
  CB(kg::Linear(cublas_, h_.p, n, H, H, L.qkv, S, qkv_.p, S));
  if (L.qkv_bias) CU(kg::LaunchAddBias(qkv_.p, n, S, S, L.qkv_bias, stream_));
  if (config_.qk_norm == QkNorm::kPerHead) {
    CU(kg::LaunchRmsNormGroups(qkv_.p, n, S, config_.num_heads, hd, L.q_norm, eps, stream_));
    CU(kg::LaunchRmsNormGroups(qkv_.p + Q, n, S, config_.num_kv_heads, hd, L.k_norm, eps, stream_));
  } else if (config_.qk_norm == QkNorm::kWholeProjection) {
    CU(kg::LaunchRmsNormGroups(qkv_.p, n, S, 1, static_cast<int>(Q), L.q_norm, eps, stream_));
    CU(kg::LaunchRmsNormGroups(qkv_.p + Q, n, S, 1, static_cast<int>(KV), L.k_norm, eps, stream_));
  }
  if (clip_.has_value()) CU(kg::LaunchClamp(qkv_.p, n * S, *clip_, stream_));
  T* kc = kv_[2 * l];
  T* vc = kv_[2 * l + 1];
  // RoPE on q and k fused with the paged KV write (rotary_dim 0: the write alone).
  CU(kg::LaunchRopeQkWriteKv(qkv_.p, S, config_.num_heads, qkv_.p + Q, qkv_.p + Q + KV, S, config_.num_kv_heads, n, hd,
                             rotary_dim_, positions_.p, inv_freq_.p, slots_.p, kc, vc, stream_));
  kg::PagedAttentionParamsT<T> p;
  p.q = qkv_.p;
  p.q_stride = S;
  p.num_heads = config_.num_heads;
  p.num_kv_heads = config_.num_kv_heads;
  p.head_dim = hd;
  p.block_size = block_size_;
  p.k_cache = kc;
  p.v_cache = vc;
  p.seqs = seqs_.p;
  p.block_tables = tables_.p;
  p.scale = scale_;
  p.sliding_window = config_.sliding_window;
  p.out = attn_.p;
  p.out_stride = Q;
  CU(kg::LaunchPrefillAttention(p, tiles_.p, num_prefill_tiles_, stream_));
  CU(kg::LaunchDecodeAttention(p, decode_.p, num_decode_, num_splits_, ws_.p, stream_));
  CB(kg::Linear(cublas_, attn_.p, n, Q, Q, L.o_proj, H, delta_.p, H));
  if (L.o_bias) CU(kg::LaunchAddBias(delta_.p, n, H, H, L.o_bias, stream_));
  return absl::OkStatus();
}
template <typename T>
absl::Status CudaModelRunner<T>::Forward(const ForwardBatch& batch, ForwardResult* out) {
  RET(Validate(batch));
  // Flatten the batch on the host.
  std::vector<int32_t> tokens, positions, slots, tables, rows, prefill, decode;
  std::vector<kg::CudaAttnSeq> seqs;
  out->row_begin.clear();
  int max_ctx = 1;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& s = batch.seqs[i];
    kg::CudaAttnSeq a;
    a.token_begin = static_cast<int32_t>(tokens.size());
    a.num_tokens = static_cast<int32_t>(s.tokens.size());
    a.start_pos = s.start_pos;
    a.block_table_offset = static_cast<int32_t>(tables.size());
    tables.insert(tables.end(), s.block_table.begin(), s.block_table.end());
    out->row_begin.push_back(static_cast<int32_t>(rows.size()));
    for (int32_t t = 0; t < a.num_tokens; ++t) {
      const int32_t pos = s.start_pos + t;
      tokens.push_back(s.tokens[t]);
      positions.push_back(pos);
      slots.push_back(s.block_table[pos / block_size_] * block_size_ + pos % block_size_);
      if (s.logits == SequenceChunk::Logits::kAll ||
          (s.logits == SequenceChunk::Logits::kLast && t == a.num_tokens - 1)) {
        rows.push_back(a.token_begin + t);
      }
    }
    if (a.num_tokens == 1) {
      decode.push_back(static_cast<int32_t>(i));
      max_ctx = std::max(max_ctx, s.start_pos + 1);
    } else {
      prefill.push_back(static_cast<int32_t>(i));
    }
    seqs.push_back(a);
  }
  out->row_begin.push_back(static_cast<int32_t>(rows.size()));
  const std::vector<int32_t> tiles = kg::BuildPrefillTiles(seqs.data(), prefill.data(), static_cast<int>(prefill.size()));
  num_prefill_tiles_ = static_cast<int>(tiles.size() / 2);
  num_decode_ = static_cast<int>(decode.size());
  num_splits_ = kg::DecodeNumSplits(max_ctx, config_.num_heads, num_decode_);

  const int64_t NT = static_cast<int64_t>(tokens.size()), H = config_.hidden_size;
  const int64_t Q = config_.q_size(), KV = config_.kv_size();
  const int E = std::max(config_.num_experts, 1), k = std::max(config_.num_experts_per_tok, 1);
  RET(tokens_.Put(tokens, "tokens", stream_));
  RET(positions_.Put(positions, "positions", stream_));
  RET(slots_.Put(slots, "slots", stream_));
  RET(tables_.Put(tables, "block tables", stream_));
  RET(tiles_.Put(tiles, "tiles", stream_));
  RET(decode_.Put(decode, "decode list", stream_));
  RET(rows_.Put(rows, "logit rows", stream_));
  RET(seqs_.Put(seqs, "seqs", stream_));
  RET(x_.Reserve(NT * H, "x"));
  RET(delta_.Reserve(NT * H, "delta"));
  RET(h_.Reserve(NT * H, "h"));
  RET(qkv_.Reserve(NT * (Q + 2 * KV), "qkv"));
  RET(attn_.Reserve(NT * Q, "attn"));
  {
    // The decode workspace's merge counters must start at zero (paged_attention.h): clear
    // them whenever the buffer is (re)allocated; every launch leaves them zero.
    const float* ws_before = ws_.p;
    RET(ws_.Reserve(kg::DecodeWorkspaceFloats(num_decode_, config_.num_heads, config_.head_dim, num_splits_), "decode workspace"));
    if (ws_.p != ws_before) CU(kg::LaunchClearDecodeCounters(ws_.p, stream_));
  }
  RET(router_logits_.Reserve(NT * E, "router logits"));
  RET(topk_idx_.Reserve(NT * k, "topk idx"));
  RET(topk_w_.Reserve(NT * k, "topk w"));
  RET(counts_.Reserve(E, "counts"));
  RET(offsets_.Reserve(E + 1, "offsets"));
  RET(row_token_.Reserve(NT * k, "row_token"));
  RET(slot_row_.Reserve(NT * k, "slot_row"));
  RET(perm_.Reserve(NT * k * H, "permuted rows"));
  RET(eout_.Reserve(NT * k * H, "expert out"));
  RET(active_.Reserve(E + 1, "active experts"));
  RET(pg_idx_.Reserve(NT * k, "pre-gate idx"));
  RET(pg_w_.Reserve(NT * k, "pre-gate w"));
  const int64_t R = static_cast<int64_t>(rows.size());
  if (R > 0) {
    RET(rows_h_.Reserve(R * H, "logit rows"));
    RET(logits_.Reserve(R * config_.vocab_size, "logits"));
  }
  RET(BeginFootprints(batch, NT));
  if (offload_) offload_->BeginStep();
  if (use_graphs_ && prefill.empty() && SyncFree(NT)) {
    RET(RunGraphed(NT, R));
  } else {
    RET(RunLayers(NT, R));
  }
  out->vocab_size = config_.vocab_size;
  RET(SampleAndCopyLogits(batch, R, out));
  RET(QueueFootprintCopy(NT));
  CU(cudaStreamSynchronize(stream_));
  CU(cudaGetLastError());
  RET(FinishFootprints(batch, NT, out));
  if (offload_) RET(offload_->EndStep());
  return absl::OkStatus();
}

template <typename T>
std::vector<const void*> CudaModelRunner<T>::Fingerprint() const {
  return {tokens_.p, positions_.p, slots_.p, tables_.p, tiles_.p, decode_.p, rows_.p, seqs_.p,
          x_.p, delta_.p, qkv_.p, logits_.p, router_logits_.p, topk_w_.p, gu_.p, eout_.p,
          shared_out_.p, shared_logit_.p, ws_.p, h_.p, attn_.p, perm_.p, act_.p, rows_h_.p,
          topk_idx_.p, counts_.p, offsets_.p, row_token_.p, slot_row_.p, active_.p, pg_idx_.p, pg_w_.p, router_gu_.p, router_act_.p, router_all_logits_.p, step_idx_.p, step_w_.p, fp_route_.p};
}

template <typename T>
absl::Status CudaModelRunner<T>::RunGraphed(int64_t n, int64_t r) {
  GraphEntry& g = graphs_[std::make_tuple(n, r, num_splits_, record_routes_)];
  std::vector<const void*> fp = Fingerprint();
  if (g.exec != nullptr && g.fingerprint == fp) {
    CU(cudaGraphLaunch(g.exec, stream_));
    return absl::OkStatus();
  }
  if (g.exec != nullptr) {
    cudaGraphExecDestroy(g.exec);
    g.exec = nullptr;
  }
  if (!g.seen || g.fingerprint != fp) {
    // First sight of this shape (or its buffers moved): run eagerly, which also grows
    // every scratch buffer the step needs, so the capture next time allocates nothing.
    RET(RunLayers(n, r));
    g.seen = true;
    g.fingerprint = Fingerprint();
    return absl::OkStatus();
  }
  CU(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  absl::Status st = RunLayers(n, r);
  cudaGraph_t graph = nullptr;
  const cudaError_t ce = cudaStreamEndCapture(stream_, &graph);
  if (!st.ok()) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return st;
  }
  CU(ce);
  if (Fingerprint() != fp) {  // a buffer moved during capture: not replayable
    cudaGraphDestroy(graph);
    RET(RunLayers(n, r));
    g.fingerprint = Fingerprint();
    return absl::OkStatus();
  }
  const cudaError_t ie = cudaGraphInstantiate(&g.exec, graph, 0);
  cudaGraphDestroy(graph);
  if (ie != cudaSuccess) {
    g.exec = nullptr;
    return absl::InternalError(absl::StrCat("cudaGraphInstantiate: ", cudaGetErrorString(ie)));
  }
  CU(cudaGraphLaunch(g.exec, stream_));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::RunLayers(int64_t NT, int64_t R) {
  const int64_t H = config_.hidden_size;
  CU(kg::LaunchEmbedding(tokens_.p, NT, w_.embed, H, x_.p, stream_));
  // Decoupled router: every MoE layer's routing from the embeddings, before layer 0.
  if (decoupled_router()) RET(RouteStep(NT));
  const float eps = config_.rms_norm_eps;
  for (int l = 0; l < config_.num_layers; ++l) {
    const DeviceLayer<T>& L = w_.layers[l];
    RET(AddNormAfter(l - 1, L.input_norm, NT));
    RET(Attention(l, NT));
    CU(kg::LaunchAddRmsNorm(x_.p, delta_.p, NT, static_cast<int>(H), L.post_norm, eps, h_.p, stream_));
    RET(Ffn(l, NT));
  }
  // (Without logit rows the final norm runs only to finish a pending combine into x_.)
  if (R > 0 || CombineDeferred(config_.num_layers - 1)) RET(AddNormAfter(config_.num_layers - 1, w_.final_norm, NT));
  if (R > 0) {
    CU(kg::LaunchGatherRows(h_.p, rows_.p, R, H, rows_h_.p, stream_));
    CB(kg::Linear(cublas_, rows_h_.p, R, H, H, w_.lm_head, config_.vocab_size, logits_.p, config_.vocab_size));
  }
  return absl::OkStatus();
}

template class CudaModelRunner<bf16>;
template class CudaModelRunner<f16>;
template class CudaModelRunner<float>;

}  // namespace moe::engine::cuda

namespace moe::engine {
namespace {
namespace kg = ::moe::kernels::cuda;
using cuda::bf16;
using cuda::CudaModelRunner;
}  // namespace

absl::StatusOr<CudaDType> ParseCudaDType(std::string_view s) {
  if (s == "auto") return CudaDType::kAuto;
  if (s == "bf16" || s == "bfloat16") return CudaDType::kBF16;
  if (s == "fp16" || s == "float16" || s == "half") return CudaDType::kF16;
  if (s == "fp32" || s == "float32" || s == "float") return CudaDType::kF32;
  return absl::InvalidArgumentError(absl::StrCat("dtype '", std::string(s), "' is not one of auto, bf16, fp16, fp32"));
}

const char* CudaDTypeName(CudaDType d) {
  switch (d) {
    case CudaDType::kAuto: return "auto";
    case CudaDType::kBF16: return "bf16";
    case CudaDType::kF16: return "fp16";
    case CudaDType::kF32: return "fp32";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              const ModelConfig& config,
                                                              const RunnerOptions& options) {
  CudaDType dtype = CudaDType::kAuto;
  if (const char* env = std::getenv("MOE_CUDA_DTYPE"); env != nullptr && *env != '\0') {
    auto d = ParseCudaDType(env);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("MOE_CUDA_DTYPE: ", d.status().message()));
    dtype = *d;
  }
  return CreateCudaRunner(checkpoint, config, options, dtype);
}

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              const ModelConfig& config,
                                                              const RunnerOptions& options,
                                                              CudaDType dtype) {
  if (options.kv_block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv_block_size must be positive, got ", options.kv_block_size));
  }
  if (config.num_kv_heads <= 0 || config.num_heads % config.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_attention_heads ", config.num_heads,
                                                   " is not a multiple of num_key_value_heads ", config.num_kv_heads));
  }
  if (config.head_dim > kg::kMaxHeadDim) {
    return absl::InvalidArgumentError(absl::StrCat("head_dim ", config.head_dim, " exceeds the CUDA attention's limit ", kg::kMaxHeadDim));
  }
  if (config.num_experts > kg::kRouterMaxExperts) {
    return absl::InvalidArgumentError(absl::StrCat("num_experts ", config.num_experts, " exceeds the CUDA router's limit ", kg::kRouterMaxExperts));
  }
  auto weights = BindDecoderWeights(checkpoint, config);
  if (!weights.ok()) return weights.status();
  if (dtype == CudaDType::kAuto) {
    // The checkpoint's own dtype (as vLLM's --dtype auto), read off the first projection.
    const WeightRef& probe = weights->layers.empty() ? weights->embed_tokens : weights->layers[0].q_proj;
    dtype = probe.dtype == DType::kF32 ? CudaDType::kF32
            : probe.dtype == DType::kF16 ? CudaDType::kF16 : CudaDType::kBF16;
  }
  const size_t elem = dtype == CudaDType::kF32 ? 4 : 2;
  int num_blocks = options.num_kv_blocks;
  if (num_blocks <= 0) {
    const size_t block_bytes = static_cast<size_t>(config.num_layers) * 2 * options.kv_block_size * config.kv_size() * elem;
    num_blocks = static_cast<int>(options.kv_cache_bytes / std::max<size_t>(1, block_bytes));
    if (num_blocks <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("kv_cache_bytes ", options.kv_cache_bytes,
                                                     " holds no KV block (one block needs ", block_bytes, " bytes)"));
    }
  }
  auto make = [&](auto* tag) -> absl::StatusOr<std::unique_ptr<ModelRunner>> {
    using T = std::remove_pointer_t<decltype(tag)>;
    auto runner = std::make_unique<CudaModelRunner<T>>(config, weights->router_renormalize, weights->clip_qkv,
                                                       options.kv_block_size, num_blocks, CudaDTypeName(dtype), options);
    absl::Status s = runner->Init(*weights);
    if (!s.ok()) return s;
    return std::unique_ptr<ModelRunner>(std::move(runner));
  };
  switch (dtype) {
    case CudaDType::kF32: return make(static_cast<float*>(nullptr));
    case CudaDType::kF16: return make(static_cast<cuda::f16*>(nullptr));
    default: return make(static_cast<bf16*>(nullptr));
  }
}

}  // namespace moe::engine
