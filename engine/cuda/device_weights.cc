#include "engine/cuda/device_weights.h"

#include <cuda_runtime_api.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/dtype.h"

namespace moe::engine::cuda {

template <typename T>
DeviceWeights<T>::~DeviceWeights() {
  for (void* p : allocations_) cudaFree(p);
}

namespace {
void Convert(const WeightRef& p, size_t i, float* dst) { *dst = LoadAsF32(p.data, p.dtype, i); }
void Convert(const WeightRef& p, size_t i, bf16* dst) {
  const uint16_t b = F32ToBf16(LoadAsF32(p.data, p.dtype, i));
  std::memcpy(dst, &b, 2);
}
void Convert(const WeightRef& p, size_t i, f16* dst) {
  const uint16_t b = F32ToF16(LoadAsF32(p.data, p.dtype, i));
  std::memcpy(dst, &b, 2);
}
DType DTypeOf(const float*) { return DType::kF32; }
DType DTypeOf(const bf16*) { return DType::kBF16; }
DType DTypeOf(const f16*) { return DType::kF16; }
template <typename T>
void ConvertAll(const WeightRef& p, T* dst) {
  if (p.dtype == DTypeOf(dst)) {
    std::memcpy(dst, p.data, p.nbytes());
  } else {
    for (int64_t i = 0; i < p.numel(); ++i) Convert(p, static_cast<size_t>(i), &dst[i]);
  }
}
}  // namespace

void ConvertWeight(const WeightRef& ref, bf16* dst) { ConvertAll(ref, dst); }
void ConvertWeight(const WeightRef& ref, f16* dst) { ConvertAll(ref, dst); }
void ConvertWeight(const WeightRef& ref, float* dst) { ConvertAll(ref, dst); }

template <typename T>
absl::Status DeviceWeights<T>::Put(std::vector<const WeightRef*> parts, const T** out) {
  int64_t numel = 0;
  std::string names;
  for (const WeightRef* p : parts) {
    numel += p->numel();
    absl::StrAppend(&names, names.empty() ? "" : "+", p->name);
  }
  std::vector<T> host(static_cast<size_t>(numel));
  size_t at = 0;
  for (const WeightRef* p : parts) {
    if (p->dtype == DTypeOf(host.data())) {
      std::memcpy(host.data() + at, p->data, p->nbytes());
    } else {
      for (int64_t i = 0; i < p->numel(); ++i) Convert(*p, static_cast<size_t>(i), &host[at + i]);
    }
    at += static_cast<size_t>(p->numel());
  }
  void* d = nullptr;
  cudaError_t e = cudaMalloc(&d, host.size() * sizeof(T));
  if (e != cudaSuccess) {
    return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", host.size() * sizeof(T),
                                                     " bytes for ", names, ": ",
                                                     cudaGetErrorString(e)));
  }
  allocations_.push_back(d);
  e = cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  if (e != cudaSuccess) {
    return absl::InternalError(absl::StrCat("upload of ", names, ": ", cudaGetErrorString(e)));
  }
  bytes += host.size() * sizeof(T);
  *out = static_cast<const T*>(d);
  return absl::OkStatus();
}

#define RETURN_IF_ERROR_(expr)        \
  do {                                \
    absl::Status s_ = (expr);         \
    if (!s_.ok()) return s_;          \
  } while (0)


template <typename T>
absl::Status DeviceWeights<T>::Upload(const DecoderWeights& w, const ModelConfig& config,
                                      bool upload_experts) {
  RETURN_IF_ERROR_(Put({&w.embed_tokens}, &embed));
  RETURN_IF_ERROR_(Put({&w.final_norm}, &final_norm));
  if (w.lm_head.data == w.embed_tokens.data) {
    lm_head = embed;
  } else {
    RETURN_IF_ERROR_(Put({&w.lm_head}, &lm_head));
  }
  auto put_ffn = [&](const FfnWeights& f, DeviceFfn<T>* out) -> absl::Status {
    if (!f.present()) return absl::OkStatus();
    RETURN_IF_ERROR_(Put({&f.gate, &f.up}, &out->gate_up));
    RETURN_IF_ERROR_(Put({&f.down}, &out->down));
    out->inter = f.gate.rows;
    return absl::OkStatus();
  };
  layers.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& s = w.layers[l];
    DeviceLayer<T>& d = layers[l];
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
      if (s.router.present()) RETURN_IF_ERROR_(Put({&s.router}, &d.router));
      if (s.pregate.present()) RETURN_IF_ERROR_(Put({&s.pregate}, &d.pregate));
      d.experts.resize(s.experts.size());
      if (!s.experts.empty()) d.expert_inter = s.experts[0].gate.rows;
      for (size_t e = 0; upload_experts && e < s.experts.size(); ++e) {
        DeviceFfn<T> f;
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
  if (w.routing == RoutingVariant::kRouter) {
    const DecoupledRouterWeights& r = w.decoupled_router;
    RETURN_IF_ERROR_(Put({&r.norm}, &router.norm));
    RETURN_IF_ERROR_(Put({&r.up_proj}, &router.up));
    RETURN_IF_ERROR_(Put({&r.out_proj}, &router.out));
    router.hidden_size = r.up_proj.rows;
  }
  (void)config;
  return absl::OkStatus();
}

template class DeviceWeights<bf16>;
template class DeviceWeights<f16>;
template class DeviceWeights<float>;

}  // namespace moe::engine::cuda
