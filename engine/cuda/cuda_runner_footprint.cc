// Expert footprints on the CUDA runner (expert-aware batching, scheduler side in
// scheduler/): which (MoE layer, expert) pairs each chunk of a step used, and for
// decoupled-router checkpoints the exact routing of any token. See cuda_model_runner.h.
//
// A step's footprints cost nothing unless ForwardBatch::want_footprints is set. Then each
// MoE layer's routing (topk_idx_, [n, k], on the device) is copied device to device into
// fp_route_ ([M, n, k]) right after Route, so no layer waits on the host; the step's final
// synchronisation brings fp_route_ to the host in one copy, and the bitsets are built
// there. The copies are part of the step's kernels, so a graphed decode step captures them:
// graphs are keyed by whether the step records (record_routes_), and fp_route_ is in the
// graph fingerprint, so a graph never writes into a buffer that has moved. A decoupled
// router already holds the whole step's routing in step_idx_ ([n, M, k]; on the host too
// when offloaded): that is used instead, with no per-layer copy.
#include <algorithm>
#include <numeric>
#include <vector>

#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/cuda_util.h"
#include "kernels/cuda/embedding.h"

namespace moe::engine::cuda {
namespace {

// Rows of the vocabulary table computed per batch of router kernels: as many as keep the
// largest per-row buffer (the router logits of every MoE layer, usually) near 64 MiB.
int64_t TableChunkRows(int64_t widest_row_floats, int64_t vocab) {
  const int64_t rows = (int64_t{64} << 20) / std::max<int64_t>(1, widest_row_floats * int64_t{sizeof(float)});
  return std::min(vocab, std::clamp<int64_t>(rows, 64, 4096));
}

void SetBit(std::vector<uint64_t>& bits, int64_t key) { bits[key / 64] |= uint64_t{1} << (key % 64); }

}  // namespace

template <typename T>
int32_t CudaModelRunner<T>::expert_footprint_keys() const {
  if (moe_layers_.empty() || config_.num_experts <= 0) return 0;
  return static_cast<int32_t>(moe_layers_.size()) * config_.num_experts;
}

template <typename T>
int32_t CudaModelRunner<T>::expert_cache_slots() const {
  return offload_ ? offload_->num_slots() : 0;
}

template <typename T>
bool CudaModelRunner<T>::ResidentExpertKeys(std::vector<uint64_t>* bits) const {
  if (!offload_ || expert_footprint_keys() <= 0) return false;
  bits->assign((static_cast<size_t>(expert_footprint_keys()) + 63) / 64, 0);
  offload_->ResidentKeys(bits);
  return true;
}

template <typename T>
absl::Status CudaModelRunner<T>::BeginFootprints(const ForwardBatch& batch, int64_t n) {
  footprints_on_ = batch.want_footprints && expert_footprint_keys() > 0;
  record_routes_ = footprints_on_ && !decoupled_router();
  if (record_routes_) {
    const int64_t M = static_cast<int64_t>(moe_layers_.size()), k = config_.num_experts_per_tok;
    RET(fp_route_.Reserve(static_cast<size_t>(M * n * k), "footprint routing"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::RecordRoute(int l, int64_t n) {
  const int64_t m = std::lower_bound(moe_layers_.begin(), moe_layers_.end(), l) - moe_layers_.begin();
  const int64_t k = config_.num_experts_per_tok;
  if (n <= 0) return absl::OkStatus();
  CU(cudaMemcpyAsync(fp_route_.p + m * n * k, topk_idx_.p, static_cast<size_t>(n * k) * sizeof(int32_t),
                     cudaMemcpyDeviceToDevice, stream_));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::QueueFootprintCopy(int64_t n) {
  if (!footprints_on_ || n <= 0) return absl::OkStatus();
  if (decoupled_router() && offload_) return absl::OkStatus();  // ForeseeStep: h_step_route_
  const size_t count = moe_layers_.size() * static_cast<size_t>(n) * config_.num_experts_per_tok;
  h_fp_route_.resize(count);
  const int32_t* src = decoupled_router() ? step_idx_.p : fp_route_.p;
  CU(cudaMemcpyAsync(h_fp_route_.data(), src, count * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  return absl::OkStatus();
}

template <typename T>
absl::Status CudaModelRunner<T>::FinishFootprints(const ForwardBatch& batch, int64_t n, ForwardResult* out) {
  out->footprints.clear();
  if (!footprints_on_) return absl::OkStatus();
  const int64_t M = static_cast<int64_t>(moe_layers_.size());
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  const size_t words = (static_cast<size_t>(expert_footprint_keys()) + 63) / 64;
  // Own gates / pre-gates: [M, n, k] layer-major; decoupled router: [n, M, k] token-major.
  const bool token_major = decoupled_router();
  const int32_t* route = token_major && offload_ ? h_step_route_.data() : h_fp_route_.data();
  out->footprints.resize(batch.seqs.size());
  int64_t t = 0;  // chunk i's tokens are rows [t, t + size) of the step, in batch order
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    ExpertFootprint& fp = out->footprints[i];
    fp.bits.assign(words, 0);
    fp.exact = false;  // what this step used: an estimate of the sequence's next step
    const int64_t end = std::min<int64_t>(n, t + static_cast<int64_t>(batch.seqs[i].tokens.size()));
    for (; t < end; ++t) {
      for (int64_t m = 0; m < M; ++m) {
        const int32_t* ids = route + (token_major ? (t * M + m) * k : (m * n + t) * k);
        for (int j = 0; j < k; ++j) {
          if (ids[j] >= 0 && ids[j] < E) SetBit(fp.bits, m * E + ids[j]);
        }
      }
    }
  }
  return absl::OkStatus();
}

template <typename T>
bool CudaModelRunner<T>::TokenFootprint(int32_t token, ExpertFootprint* out) {
  if (!decoupled_router() || out == nullptr || token < 0 || token >= config_.vocab_size) return false;
  if (token_routes_.empty()) {
    if (token_routes_failed_) return false;
    if (!BuildTokenRoutes().ok()) {
      // Not retried: callers fall back to the step footprints' estimate.
      token_routes_failed_ = true;
      token_routes_.clear();
      return false;
    }
  }
  const int64_t M = static_cast<int64_t>(moe_layers_.size());
  const int E = config_.num_experts, k = config_.num_experts_per_tok;
  out->bits.assign((static_cast<size_t>(expert_footprint_keys()) + 63) / 64, 0);
  out->exact = true;
  const uint16_t* ids = token_routes_.data() + static_cast<size_t>(token) * M * k;
  for (int64_t m = 0; m < M; ++m) {
    for (int j = 0; j < k; ++j) {
      const int32_t e = ids[m * k + j];
      if (e < E) SetBit(out->bits, m * E + e);
    }
  }
  return true;
}

// The router depends on the token id alone, so its top-k for every vocabulary token is a
// table computed once: the step's own kernels (RouterTopK) over token ids 0..V-1, a chunk
// of rows at a time, in buffers of its own (freed on return), so nothing of a step (scratch
// contents, addresses that captured graphs hold) is touched. Runs between steps on the
// engine thread; one host round trip per chunk. The ids equal a step's routing of the same
// token up to the GEMMs' summation order (cuBLAS may pick another kernel for another row
// count), which can only flip a near-tie between two experts' logits.
template <typename T>
absl::Status CudaModelRunner<T>::BuildTokenRoutes() {
  const int64_t V = config_.vocab_size, H = config_.hidden_size, R = w_.router.hidden_size;
  const int64_t M = static_cast<int64_t>(moe_layers_.size());
  const int64_t E = config_.num_experts, k = config_.num_experts_per_tok;
  if (V <= 0 || M == 0 || k <= 0) return absl::FailedPreconditionError("no MoE layers or vocabulary");
  if (E > 0xFFFF) return absl::FailedPreconditionError("expert ids do not fit in 16 bits");
  const int64_t rows = TableChunkRows(std::max({M * E, 2 * R, H}), V);
  Scratch<int32_t> ids, idx;
  Scratch<float> x, gu, logits, w;
  Scratch<T> h, act;
  std::vector<int32_t> iota(V);
  std::iota(iota.begin(), iota.end(), 0);
  RET(ids.Put(iota, "vocabulary ids", stream_));
  RET(x.Reserve(rows * H, "table embeddings"));
  RET(h.Reserve(rows * H, "table norm"));
  RET(gu.Reserve(rows * 2 * R, "table router up_proj"));
  RET(act.Reserve(rows * R, "table router activation"));
  RET(logits.Reserve(rows * M * E, "table router logits"));
  RET(idx.Reserve(rows * M * k, "table routing idx"));
  RET(w.Reserve(rows * M * k, "table routing w"));
  // [up_proj output (R) | 1.0 (R)] rows, as RouteStep's buffer: SiluMul then yields silu.
  std::vector<float> init(static_cast<size_t>(rows * 2 * R), 1.f);
  for (int64_t i = 0; i < rows; ++i) std::fill_n(init.begin() + i * 2 * R, R, 0.f);
  CU(cudaMemcpyAsync(gu.p, init.data(), init.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
  std::vector<int32_t> host(static_cast<size_t>(rows * M * k));
  std::vector<uint16_t> table(static_cast<size_t>(V * M * k));
  for (int64_t c = 0; c < V; c += rows) {
    const int64_t nr = std::min(rows, V - c);
    CU(kg::LaunchEmbedding(ids.p + c, nr, w_.embed, H, x.p, stream_));
    RET(RouterTopK(x.p, nr, h.p, gu.p, act.p, logits.p, idx.p, w.p));
    CU(cudaMemcpyAsync(host.data(), idx.p, static_cast<size_t>(nr * M * k) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                       stream_));
    CU(cudaStreamSynchronize(stream_));
    for (int64_t i = 0; i < nr * M * k; ++i) {
      // An id outside [0, E) (no finite logit) becomes 0xFFFF, which TokenFootprint skips.
      table[static_cast<size_t>(c * M * k + i)] = host[i] >= 0 && host[i] < E ? static_cast<uint16_t>(host[i]) : 0xFFFF;
    }
  }
  token_routes_ = std::move(table);
  return absl::OkStatus();
}

template class CudaModelRunner<bf16>;
template class CudaModelRunner<f16>;
template class CudaModelRunner<float>;

}  // namespace moe::engine::cuda
