#include "engine/cuda/device_weights.h"

#include <cuda_runtime_api.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/dtype.h"

namespace moe::engine::cuda {

DeviceWeights::~DeviceWeights() {
  for (void* p : allocations_) cudaFree(p);
}

absl::Status DeviceWeights::Put(std::vector<const WeightRef*> parts, const bf16** out) {
  int64_t numel = 0;
  std::string names;
  for (const WeightRef* p : parts) {
    numel += p->numel();
    absl::StrAppend(&names, names.empty() ? "" : "+", p->name);
  }
  std::vector<uint16_t> host(static_cast<size_t>(numel));
  size_t at = 0;
  for (const WeightRef* p : parts) {
    if (p->dtype == DType::kBF16) {
      std::memcpy(host.data() + at, p->data, p->nbytes());
    } else {
      for (int64_t i = 0; i < p->numel(); ++i) {
        host[at + i] = F32ToBf16(LoadAsF32(p->data, p->dtype, static_cast<size_t>(i)));
      }
    }
    at += static_cast<size_t>(p->numel());
  }
  void* d = nullptr;
  cudaError_t e = cudaMalloc(&d, host.size() * 2);
  if (e != cudaSuccess) {
    return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", host.size() * 2,
                                                     " bytes for ", names, ": ",
                                                     cudaGetErrorString(e)));
  }
  allocations_.push_back(d);
  e = cudaMemcpy(d, host.data(), host.size() * 2, cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("upload of ", names, ": ", cudaGetErrorString(e)));
  }
  bytes += host.size() * 2;
  *out = static_cast<const bf16*>(d);
  return absl::OkStatus();
}

#define RETURN_IF_ERROR_(expr)        \
  do {                                \
    absl::Status s_ = (expr);         \
    if (!s_.ok()) return s_;          \
  } while (0)


absl::Status DeviceWeights::Upload(const DecoderWeights& w, const ModelConfig& config) {
  RETURN_IF_ERROR_(Put({&w.embed_tokens}, &embed));
  RETURN_IF_ERROR_(Put({&w.final_norm}, &final_norm));
  if (w.lm_head.data == w.embed_tokens.data) {
    lm_head = embed;
  } else {
    RETURN_IF_ERROR_(Put({&w.lm_head}, &lm_head));
  }
  auto put_ffn = [&](const FfnWeights& f, DeviceFfn* out) -> absl::Status {
    if (!f.present()) return absl::OkStatus();
    RETURN_IF_ERROR_(Put({&f.gate, &f.up}, &out->gate_up));
    RETURN_IF_ERROR_(Put({&f.down}, &out->down));
    out->inter = f.gate.rows;
    return absl::OkStatus();
  };
  layers.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& s = w.layers[l];
    DeviceLayer& d = layers[l];
    RETURN_IF_ERROR_(Put({&s.input_norm}, &d.input_norm));
    RETURN_IF_ERROR_(Put({&s.post_attention_norm}, &d.post_norm));
    RETURN_IF_ERROR_(Put({&s.q_proj, &s.k_proj, &s.v_proj}, &d.qkv));
    if (s.q_bias.present()) RETURN_IF_ERROR_(Put({&s.q_bias, &s.k_bias, &s.v_bias}, &d.qkv_bias));
    RETURN_IF_ERROR_(Put({&s.o_proj}, &d.o_proj));
    if (s.o_bias.present()) RETURN_IF_ERROR_(Put({&s.o_bias}, &d.o_bias));
    if (s.q_norm.present()) RETURN_IF_ERROR_(Put({&s.q_norm}, &d.q_norm));
    if (s.k_norm.present()) RETURN_IF_ERROR_(Put({&s.k_norm}, &d.k_norm));
    d.is_moe = s.is_moe;
    if (s.is_moe) {
      RETURN_IF_ERROR_(Put({&s.router}, &d.router));
      d.experts.resize(s.experts.size());
      for (size_t e = 0; e < s.experts.size(); ++e) {
        DeviceFfn f;
        RETURN_IF_ERROR_(put_ffn(s.experts[e], &f));
        d.experts[e].gate_up = f.gate_up;
        d.experts[e].down = f.down;
        d.expert_inter = f.inter;
      }
      RETURN_IF_ERROR_(put_ffn(s.shared_expert, &d.shared));
      if (s.shared_expert_gate.present()) {
        RETURN_IF_ERROR_(Put({&s.shared_expert_gate}, &d.shared_gate));
      }
    } else {
      RETURN_IF_ERROR_(put_ffn(s.dense_mlp, &d.dense));
    }
  }
  (void)config;
  return absl::OkStatus();
}

}  // namespace moe::engine::cuda
