// The MoE half of the CUDA runner: routing (own gate or pre-gate), the resident expert
// paths (small-batch kernels, cuBLAS per expert) and the offloaded one. See
// cuda_model_runner.h.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/cuda_util.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/experts.h"
#include "kernels/cuda/linear.h"
#include "kernels/cuda/moe_permute.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/router.h"
#include "kernels/cuda/router_permute.h"
#include "kernels/cuda/small_batch_experts.h"

namespace moe::engine::cuda {
namespace {

// Tiny steps (n * k <= 32 slots, MOE_ROUTER_FUSED on): Route permutes the layer's routing
// in the launch that produces it (softmax/top-k, or the pre-gate's copy), and Ffn /
// OffloadedExperts skip their LaunchMoePermute. Not for a decoupled router (RouteSlice).
// The fused kernels run the same device routines: identical bits either way, so the
// resident and offloaded paths stay bit-identical.
bool RoutePermutes(bool decoupled_router, int64_t n, int k) {
  return !decoupled_router && n * k <= kg::kRouterPermuteMaxSlots && kg::RouterPermuteFusedDefault();
}

}  // namespace

template <typename T>
absl::Status CudaModelRunner<T>::DenseFfn(const DeviceFfn<T>& f, int64_t n, float* out) {
  const int64_t H = config_.hidden_size;
  RET(gu_.Reserve(n * 2 * f.inter, "gate_up"));
  RET(act_.Reserve(n * f.inter, "act"));
  CB(kg::Linear(cublas_, h_.p, n, H, H, f.gate_up, 2 * f.inter, gu_.p, 2 * f.inter));
  CU(kg::LaunchSiluMul(gu_.p, n, f.inter, act_.p, stream_));
  CB(kg::Linear(cublas_, act_.p, n, f.inter, f.inter, f.down, H, out, H));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::Ffn(int l, int64_t n) {
  const DeviceLayer<T>& L = w_.layers[l];
  const int64_t H = config_.hidden_size;
  if (!L.is_moe) return DenseFfn(L.dense, n, delta_.p);
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  const int64_t S = n * k, I = L.expert_inter;
  RET(Route(l, n));
  if (offload_) {
    RET(OffloadedExperts(l, n));
  } else if (SmallBatchExperts(n)) {
    // Expert assignment stays on the device: no host round trip, no gather pass.
    RET(act_.Reserve(S * I, "expert act"));
    if (!RoutePermutes(decoupled_router(), n, k)) {
      CU(kg::LaunchMoePermute(topk_idx_.p, S, k, E, counts_.p, offsets_.p, row_token_.p, slot_row_.p, stream_, active_.p));
    }
    CU(kg::LaunchSmallBatchExperts(h_.p, row_token_.p, counts_.p, offsets_.p, active_.p,
                                   static_cast<int>(std::min<int64_t>(E, S)), n, gate_up_ptrs_[l],
                                   down_ptrs_[l], H, I, act_.p, eout_.p, stream_));
  } else {
    if (!RoutePermutes(decoupled_router(), n, k)) {
      CU(kg::LaunchMoePermute(topk_idx_.p, S, k, E, counts_.p, offsets_.p, row_token_.p, slot_row_.p, stream_));
    }
    h_counts_.resize(E);
    h_offsets_.resize(E + 1);
    CU(cudaMemcpyAsync(h_counts_.data(), counts_.p, E * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    CU(cudaMemcpyAsync(h_offsets_.data(), offsets_.p, (E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    CU(kg::LaunchGatherRows(h_.p, row_token_.p, S, H, perm_.p, stream_));
    RET(gu_.Reserve(S * 2 * I, "expert gate_up"));
    RET(act_.Reserve(S * I, "expert act"));
    CU(cudaStreamSynchronize(stream_));  // the host needs the counts to launch the GEMMs
    // Grouped: down writes T into eout_'s storage (fp32-sized, so it fits) for the T combine.
    const char* err = kg::ExpertsDefaultOutT()
        ? kg::RunExpertsOutT(cublas_, stream_, perm_.p, h_counts_.data(), h_offsets_.data(), E, L.experts.data(), H, I,
                             gu_.p, act_.p, reinterpret_cast<T*>(eout_.p))
        : kg::RunExperts(cublas_, stream_, perm_.p, h_counts_.data(), h_offsets_.data(), E, L.experts.data(), H, I,
                         gu_.p, act_.p, eout_.p);
    if (err != nullptr) return absl::InternalError(absl::StrCat("layer ", l, ": ", err));
  }
  if (CombineDeferred(l)) return absl::OkStatus();  // AddNormAfter(l, ...) combines
  if (ExpertRowsInT(n)) {
    CU(kg::LaunchMoeCombine(reinterpret_cast<const T*>(eout_.p), slot_row_.p, topk_w_.p, n, k, H, delta_.p, stream_));
  } else {
    CU(kg::LaunchMoeCombine(eout_.p, slot_row_.p, topk_w_.p, n, k, H, delta_.p, stream_));
  }
  if (L.shared.present()) {
    RET(shared_out_.Reserve(n * H, "shared expert out"));
    RET(shared_logit_.Reserve(n, "shared gate"));
    RET(DenseFfn(L.shared, n, shared_out_.p));
    CB(kg::Linear(cublas_, h_.p, n, H, H, L.shared_gate, 1, shared_logit_.p, 1));
    CU(kg::LaunchSigmoidGatedAdd(delta_.p, shared_logit_.p, shared_out_.p, n, H, stream_));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::AddNormAfter(int prev, const T* weight, int64_t n) {
  const int H = static_cast<int>(config_.hidden_size), k = config_.num_experts_per_tok;
  const float eps = config_.rms_norm_eps;
  if (!CombineDeferred(prev)) {
    CU(kg::LaunchAddRmsNorm(x_.p, prev >= 0 ? delta_.p : nullptr, n, H, weight, eps, h_.p, stream_));
  } else if (ExpertRowsInT(n)) {
    CU(kg::LaunchMoeCombineAddRmsNorm(reinterpret_cast<const T*>(eout_.p), slot_row_.p, topk_w_.p, k, x_.p, n, H,
                                      weight, eps, h_.p, stream_));
  } else {
    CU(kg::LaunchMoeCombineAddRmsNorm(eout_.p, slot_row_.p, topk_w_.p, k, x_.p, n, H, weight, eps, h_.p, stream_));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::Gate(const T* gate, int64_t n, int32_t* idx, float* weight) {
  const int64_t H = config_.hidden_size;
  const int E = config_.num_experts;
  CB(kg::Linear(cublas_, h_.p, n, H, H, gate, E, router_logits_.p, E));
  CU(kg::LaunchRouterSoftmaxTopK(router_logits_.p, n, E, config_.num_experts_per_tok, renormalize_, idx, weight, stream_));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::Route(int l, int64_t n) {
  const DeviceLayer<T>& L = w_.layers[l];
  const int k = config_.num_experts_per_tok;
  if (decoupled_router()) {
    RET(RouteSlice(l, n));  // routed with every other MoE layer before layer 0
  } else if (L.router != nullptr && RoutePermutes(false, n, k)) {
    // Gate() and the permutation in one launch after the router GEMM.
    const int64_t H = config_.hidden_size;
    const int E = config_.num_experts;
    CB(kg::Linear(cublas_, h_.p, n, H, H, L.router, E, router_logits_.p, E));
    CU(kg::LaunchRouterTopKPermuteTiny(router_logits_.p, n, E, k, renormalize_, topk_idx_.p, topk_w_.p, counts_.p,
                                       offsets_.p, row_token_.p, slot_row_.p, active_.p, stream_));
  } else if (L.router != nullptr) {
    RET(Gate(L.router, n, topk_idx_.p, topk_w_.p));
  } else if (RoutePermutes(false, n, k)) {
    // Pre-gated: the previous MoE layer's pre-gate chose this layer's experts (copied and
    // permuted in one launch).
    CU(kg::LaunchCopyRoutesPermuteTiny(pg_idx_.p, pg_w_.p, n, config_.num_experts, k, topk_idx_.p, topk_w_.p, counts_.p,
                                       offsets_.p, row_token_.p, slot_row_.p, active_.p, stream_));
  } else {
    // Pre-gated: the previous MoE layer's pre-gate chose this layer's experts.
    CU(cudaMemcpyAsync(topk_idx_.p, pg_idx_.p, n * k * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream_));
    CU(cudaMemcpyAsync(topk_w_.p, pg_w_.p, n * k * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
  }
  if (L.pregate != nullptr) RET(Gate(L.pregate, n, pg_idx_.p, pg_w_.p));
  if (record_routes_) RET(RecordRoute(l, n));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::OffloadedExperts(int l, int64_t n) {
  const DeviceLayer<T>& L = w_.layers[l];
  const int64_t H = config_.hidden_size;
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  const int64_t S = n * k, I = L.expert_inter;
  const bool small = SmallBatchExperts(n);
  const int m = static_cast<int>(std::lower_bound(moe_layers_.begin(), moe_layers_.end(), l) - moe_layers_.begin());
  // Decoupled router: the step's routing is on the host since the step began (ForeseeStep),
  // so this layer needs no host round trip.
  const bool foreseen = decoupled_router();
  const bool permuted = RoutePermutes(decoupled_router(), n, k);  // by Route, in its launch
  if (small) {
    RET(act_.Reserve(S * I, "expert act"));
    if (!permuted) {
      CU(kg::LaunchMoePermute(topk_idx_.p, S, k, E, counts_.p, offsets_.p, row_token_.p, slot_row_.p, stream_, active_.p));
    }
  } else {
    if (!permuted) {
      CU(kg::LaunchMoePermute(topk_idx_.p, S, k, E, counts_.p, offsets_.p, row_token_.p, slot_row_.p, stream_));
    }
    CU(kg::LaunchGatherRows(h_.p, row_token_.p, S, H, perm_.p, stream_));
    RET(gu_.Reserve(S * 2 * I, "expert gate_up"));
    RET(act_.Reserve(S * I, "expert act"));
    if (foreseen) {
      HostCountsOffsets(m, n);
    } else {
      h_counts_.resize(E);
      h_offsets_.resize(E + 1);
      CU(cudaMemcpyAsync(h_counts_.data(), counts_.p, E * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
      CU(cudaMemcpyAsync(h_offsets_.data(), offsets_.p, (E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    }
  }
  // Foresight computed on the device before the one host round trip of the layer.
  std::vector<int32_t> pred_layers;
  if (prefetch_ == Prefetch::kPregate && L.pregate != nullptr && m + 1 < static_cast<int>(moe_layers_.size())) {
    pred_layers.push_back(moe_layers_[m + 1]);
  } else if (prefetch_ == Prefetch::kNextGate) {
    for (int j = 1; j <= prefetch_depth_ && m + j < static_cast<int>(moe_layers_.size()); ++j) {
      pred_layers.push_back(moe_layers_[m + j]);
    }
    RET(pred_idx_.Reserve(pred_layers.size() * S + 1, "predicted experts"));
    RET(pred_w_.Reserve(pred_layers.size() * S + 1, "predicted weights"));
    for (size_t j = 0; j < pred_layers.size(); ++j) {
      // The next layers' gates applied to this layer's gate input (speculative).
      RET(Gate(w_.layers[pred_layers[j]].router, n, pred_idx_.p + j * S, pred_w_.p + j * S));
    }
  }
  if (!foreseen) {
    h_route_.resize((1 + pred_layers.size()) * S);
    CU(cudaMemcpyAsync(h_route_.data(), topk_idx_.p, S * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    if (!pred_layers.empty()) {
      const int32_t* src = prefetch_ == Prefetch::kPregate ? pg_idx_.p : pred_idx_.p;
      CU(cudaMemcpyAsync(h_route_.data() + S, src, pred_layers.size() * S * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    }
    CU(cudaStreamSynchronize(stream_));
  }
  auto distinct = [E](const int32_t* ids, int64_t count) {
    std::vector<bool> seen(E, false);
    std::vector<int32_t> out;
    for (int64_t i = 0; i < count; ++i) {
      if (ids[i] >= 0 && ids[i] < E && !seen[ids[i]]) {
        seen[ids[i]] = true;
        out.push_back(ids[i]);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<int32_t> experts = foreseen ? step_experts_[m] : distinct(h_route_.data(), S);
  if (m == 0) first_layer_experts_ = experts;
  const int32_t slots = offload_->num_slots();
  std::vector<const void*> gu, dn;
  for (size_t c = 0; c < experts.size(); c += slots) {
    const size_t c_end = std::min(experts.size(), c + static_cast<size_t>(slots));
    const absl::Span<const int32_t> chunk(experts.data() + c, c_end - c);
    RET(offload_->Acquire(l, chunk, &gu, &dn));
    absl::Status st = [&]() -> absl::Status {
      if (c == 0 && experts.size() <= static_cast<size_t>(slots)) {
        // Demand copies are issued; now the prefetches for the layers ahead (not when the
        // layer runs in chunks: the cache is too small to hold anything ahead).
        const bool exact = prefetch_ == Prefetch::kPregate;
        for (size_t j = 0; j < pred_layers.size(); ++j) {
          RET(offload_->Predict(pred_layers[j], distinct(h_route_.data() + (j + 1) * S, S), exact));
        }
        // Decoupled router: the layers after this one, exactly, nearest first, never taking
        // a slot a nearer layer still needs (the next step's first layer is predicted
        // exactly when that step's router has run).
        if (prefetch_ == Prefetch::kRouter) RET(PredictAhead(m));
        if (prefetch_ != Prefetch::kOff && prefetch_ != Prefetch::kRouter &&
            m + 1 == static_cast<int>(moe_layers_.size()) && !first_layer_experts_.empty()) {
          // Cross-step lookahead: the next step's first MoE layer, guessed from this step's.
          RET(offload_->Predict(moe_layers_[0], first_layer_experts_, false));
        }
      }
      if (small) {
        std::vector<const T*> ptrs(2 * static_cast<size_t>(E), nullptr);
        std::vector<int32_t> active(1, static_cast<int32_t>(chunk.size()));
        for (int32_t x : chunk) {
          ptrs[x] = static_cast<const T*>(gu[x]);
          ptrs[E + x] = static_cast<const T*>(dn[x]);
          active.push_back(x);
        }
        RET(chunk_ptrs_.Put(ptrs, "expert slot pointers", stream_));
        RET(chunk_active_.Put(active, "chunk experts", stream_));
        CU(kg::LaunchSmallBatchExperts(h_.p, row_token_.p, counts_.p, offsets_.p, chunk_active_.p,
                                       static_cast<int>(chunk.size()), n, chunk_ptrs_.p, chunk_ptrs_.p + E, H, I,
                                       act_.p, eout_.p, stream_));
      } else {
        std::vector<kg::ExpertWeights<T>> ew(E);
        std::vector<int32_t> counts(E, 0);
        for (int32_t x : chunk) {
          ew[x].gate_up = static_cast<const T*>(gu[x]);
          ew[x].down = static_cast<const T*>(dn[x]);
          counts[x] = h_counts_[x];
        }
        const char* err = kg::ExpertsDefaultOutT()  // T rows for Ffn's T combine
            ? kg::RunExpertsOutT(cublas_, stream_, perm_.p, counts.data(), h_offsets_.data(), E, ew.data(), H, I,
                                 gu_.p, act_.p, reinterpret_cast<T*>(eout_.p))
            : kg::RunExperts(cublas_, stream_, perm_.p, counts.data(), h_offsets_.data(), E, ew.data(), H, I,
                             gu_.p, act_.p, eout_.p);
        if (err != nullptr) return absl::InternalError(absl::StrCat("layer ", l, ": ", err));
      }
      return absl::OkStatus();
    }();
    absl::Status rel = offload_->Release();
    RET(st);
    RET(rel);
  }
  return absl::OkStatus();
}

template class CudaModelRunner<bf16>;
template class CudaModelRunner<f16>;
template class CudaModelRunner<float>;

}  // namespace moe::engine::cuda
