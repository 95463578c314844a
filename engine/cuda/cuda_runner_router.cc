// The decoupled router (Read-ME style, RoutingVariant::kRouter) on the CUDA runner: every
// MoE layer's routing from the token embeddings before layer 0, and, with the experts
// offloaded, the whole step's foresight handed to the expert cache at once. The CPU
// oracle is engine/cpu/routing_step.cc; the format engine/experts/FORMATS.md ("router").
// See cuda_model_runner.h.
#include <algorithm>
#include <vector>

#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/cuda_util.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/linear.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/router.h"

namespace moe::engine::cuda {

template <typename T>
absl::Status CudaModelRunner<T>::RouteStep(int64_t n) {
  const DeviceRouter<T>& r = w_.router;
  const int64_t R = r.hidden_size;
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  const int64_t M = static_cast<int64_t>(moe_layers_.size()), ME = M * E;
  RET(router_act_.Reserve(n * R, "router activation"));
  RET(router_all_logits_.Reserve(n * ME, "router logits of every MoE layer"));
  RET(step_idx_.Reserve(n * M * k, "step routing idx"));
  RET(step_w_.Reserve(n * M * k, "step routing w"));
  const float* before = router_gu_.p;
  RET(router_gu_.Reserve(n * 2 * R, "router up_proj out"));
  if (router_gu_.p != before) {
    // SiLU goes through LaunchSiluMul (silu(gate) * up) with a constant unit `up` half:
    // each row is [up_proj output (R) | 1.0 (R)], so the product is silu exactly. The ones
    // are written once per allocation (an eager step always allocates before a graph
    // capture of the same shape, so this never runs while capturing).
    const size_t rows = router_gu_.cap / (2 * static_cast<size_t>(R));
    std::vector<float> init(router_gu_.cap, 1.f);
    for (size_t i = 0; i < rows; ++i) std::fill_n(init.begin() + i * 2 * R, R, 0.f);
    CU(cudaMemcpyAsync(router_gu_.p, init.data(), init.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
    CU(cudaStreamSynchronize(stream_));  // `init` is a local pageable buffer
  }
  RET(RouterTopK(x_.p, n, h_.p, router_gu_.p, router_act_.p, router_all_logits_.p, step_idx_.p, step_w_.p));
  if (offload_) RET(ForeseeStep(n));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::RouterTopK(const float* x, int64_t n, T* h, float* gu, T* act, float* logits,
                                            int32_t* idx, float* w) {
  const DeviceRouter<T>& r = w_.router;
  const int64_t H = config_.hidden_size, R = r.hidden_size;
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  const int64_t M = static_cast<int64_t>(moe_layers_.size()), ME = M * E;
  // As the CPU: RMSNorm of the fp32 embedding rows, up_proj, SiLU, out_proj, then per
  // (token, MoE layer) softmax / top-k / renormalisation: rows = n * M.
  CU(kg::LaunchRmsNorm(x, n, static_cast<int>(H), r.norm, config_.rms_norm_eps, h, stream_));
  CB(kg::Linear(cublas_, h, n, H, H, r.up, R, gu, 2 * R));
  CU(kg::LaunchSiluMul(gu, n, R, act, stream_));
  CB(kg::Linear(cublas_, act, n, R, R, r.out, ME, logits, ME));
  CU(kg::LaunchRouterSoftmaxTopK(logits, n * M, E, k, renormalize_, idx, w, stream_));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::RouteSlice(int l, int64_t n) {
  const int m = static_cast<int>(std::lower_bound(moe_layers_.begin(), moe_layers_.end(), l) - moe_layers_.begin());
  const size_t M = moe_layers_.size(), k = static_cast<size_t>(config_.num_experts_per_tok);
  if (n <= 0) return absl::OkStatus();
  CU(cudaMemcpy2DAsync(topk_idx_.p, k * sizeof(int32_t), step_idx_.p + m * k, M * k * sizeof(int32_t),
                       k * sizeof(int32_t), static_cast<size_t>(n), cudaMemcpyDeviceToDevice, stream_));
  CU(cudaMemcpy2DAsync(topk_w_.p, k * sizeof(float), step_w_.p + m * k, M * k * sizeof(float), k * sizeof(float),
                       static_cast<size_t>(n), cudaMemcpyDeviceToDevice, stream_));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::ForeseeStep(int64_t n) {
  const int M = static_cast<int>(moe_layers_.size());
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  h_step_route_.resize(static_cast<size_t>(n) * M * k);
  if (!h_step_route_.empty()) {
    CU(cudaMemcpyAsync(h_step_route_.data(), step_idx_.p, h_step_route_.size() * sizeof(int32_t),
                       cudaMemcpyDeviceToHost, stream_));
    CU(cudaStreamSynchronize(stream_));  // the step's one host round trip for routing
  }
  step_experts_.assign(M, {});
  std::vector<char> seen(E);
  for (int m = 0; m < M; ++m) {
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t t = 0; t < n; ++t) {
      const int32_t* ids = h_step_route_.data() + (t * M + m) * k;
      for (int j = 0; j < k; ++j) {
        if (ids[j] >= 0 && ids[j] < E && !seen[ids[j]]) {
          seen[ids[j]] = 1;
          step_experts_[m].push_back(ids[j]);
        }
      }
    }
    std::sort(step_experts_[m].begin(), step_experts_[m].end());
  }
  foreseen_ = -1;
  if (prefetch_ != Prefetch::kRouter) return absl::OkStatus();
  // The whole step's uses go to the expert cache first (its foresight eviction and
  // prefetch admission see all of them), then the first prefetches.
  RET(offload_->SetStepRouting(step_experts_));
  return PredictAhead(-1);
}

template <typename T>
absl::Status CudaModelRunner<T>::PredictAhead(int m) {
  // The plan is the prefetcher's (ExpertPrefetcher::PrefetchStepAhead, kForesight): the
  // layers after m nearest first, never evicting an expert a nearer layer still needs.
  foreseen_ = std::max(foreseen_, m);
  return offload_->PrefetchStepAhead(m);
}

template <typename T>
void CudaModelRunner<T>::HostCountsOffsets(int m, int64_t n) {
  const int M = static_cast<int>(moe_layers_.size());
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  h_counts_.assign(E, 0);
  h_offsets_.assign(E + 1, 0);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* ids = h_step_route_.data() + (t * M + m) * k;
    for (int j = 0; j < k; ++j) {
      if (ids[j] >= 0 && ids[j] < E) ++h_counts_[ids[j]];
    }
  }
  for (int e = 0; e < E; ++e) h_offsets_[e + 1] = h_offsets_[e] + h_counts_[e];
}

template class CudaModelRunner<bf16>;
template class CudaModelRunner<f16>;
template class CudaModelRunner<float>;

}  // namespace moe::engine::cuda
