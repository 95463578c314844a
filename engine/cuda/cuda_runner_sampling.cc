// The end of a CUDA step: sampling on the device for the rows whose chunks ask for it,
// and the copy back of every other row's logits. See cuda_model_runner.h.
#include <cstdint>
#include <vector>

#include "engine/cuda/cuda_model_runner.h"
#include "engine/cuda/cuda_util.h"
#include "kernels/cuda/sampling.h"

namespace moe::engine::cuda {

template <typename T>
absl::Status CudaModelRunner<T>::SampleAndCopyLogits(const ForwardBatch& batch, int64_t R, ForwardResult* out) {
  const int64_t V = config_.vocab_size;
  out->tokens.clear();
  if (R <= 0) return absl::OkStatus();
  // Rows asked to be sampled here: one kernel, then only the sampled ids come back.
  h_sample_.assign(R, kg::CudaSampleParams{});
  h_sample_on_.assign(R, 0);
  bool any = false;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceChunk& s = batch.seqs[i];
    if (s.logits != SequenceChunk::Logits::kLast || !s.sampling.enabled) continue;
    kg::CudaSampleParams& p = h_sample_[out->row_begin[i]];
    p.temperature = s.sampling.temperature;
    p.top_k = s.sampling.top_k;
    p.top_p = s.sampling.top_p;
    p.u = s.sampling.u;
    h_sample_on_[out->row_begin[i]] = 1;
    any = true;
  }
  if (any) {
    RET(sample_params_.Put(h_sample_, "sampling params", stream_));
    RET(sampled_.Reserve(R, "sampled tokens"));
    CU(kg::LaunchSample(logits_.p, R, V, V, sample_params_.p, sampled_.p, stream_));
    out->tokens.resize(R);
    CU(cudaMemcpyAsync(out->tokens.data(), sampled_.p, R * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    CU(cudaStreamSynchronize(stream_));
    for (int64_t r = 0; r < R; ++r) {
      if (!h_sample_on_[r]) out->tokens[r] = -1;
    }
  }
  // The logits of every row left to the host, in runs of consecutive rows.
  bool resized = false;
  for (int64_t r = 0; r < R;) {
    if (any && out->tokens[r] >= 0) {
      ++r;
      continue;
    }
    int64_t e = r + 1;
    while (e < R && !(any && out->tokens[e] >= 0)) ++e;
    if (!resized) {
      out->logits.resize(static_cast<size_t>(R) * V);
      resized = true;
    }
    CU(cudaMemcpyAsync(out->logits.data() + r * V, logits_.p + r * V, (e - r) * V * sizeof(float),
                       cudaMemcpyDeviceToHost, stream_));
    r = e;
  }
  return absl::OkStatus();
}

template class CudaModelRunner<bf16>;
template class CudaModelRunner<f16>;
template class CudaModelRunner<float>;

}  // namespace moe::engine::cuda
