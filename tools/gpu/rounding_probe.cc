// Rounding probe (CPU only, no GPU needed): runs each reference case of
// tests/data/reference/<family>.json teacher-forced through a forward pass built from the
// kernels/cpu functions, rounding to bf16 (or fp16) at exactly the points where the
// CUDA runner stores bf16, and reports the top-5 logprob error against the transformers
// fp32 references. It answers "is the CUDA runner's error explained by its roundings?"
// without a GPU. Rounding points (each switchable):
//   W    every weight (embeddings, norms, biases, projections, router, experts, lm_head)
//   H    the normed activations fed to every GEMM (qkv, router, experts, shared, lm_head)
//   KV   k and v as stored in the KV cache (after q/k norm, clamp, RoPE)
//   ATT  the attention output fed to o_proj
//   ACT  silu(gate) * up fed to the down projection
//   R    the router logits' GEMM input only (H rounding skipped for the router)
// The residual stream, q, scores, router softmax and the logits stay fp32, as on the GPU.
//
//   bazel run //tools/gpu:rounding_probe -- [family ...]     (from the repository root)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/registry.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace moe::engine {
namespace {

namespace kc = ::moe::kernels::cpu;
using nlohmann::json;

enum class Fmt { kF32, kBF16, kF16 };

float Round(float v, Fmt f) {
  switch (f) {
    case Fmt::kF32: return v;
    case Fmt::kBF16: return Bf16ToF32(F32ToBf16(v));
    case Fmt::kF16: return F16ToF32(F32ToF16(v));
  }
  return v;
}
void RoundAll(float* x, size_t n, Fmt f) {
  if (f == Fmt::kF32) return;
  for (size_t i = 0; i < n; ++i) x[i] = Round(x[i], f);
}

struct Mode {
  const char* name;
  Fmt w, h, kv, att, act;
  bool weights_native;  // weights kept in their on-disk dtype (w ignored)
};

class Probe {
 public:
  Probe(const ModelConfig& c, const DecoderWeights& w, const Mode& m, kc::ThreadPool* pool)
      : c_(c), w_(w), m_(m), pool_(pool) {}

  // Teacher-forced logits of every position of `tokens`: [T, vocab].
  std::vector<float> Forward(const std::vector<int32_t>& tokens) {
    const int64_t T = static_cast<int64_t>(tokens.size()), H = c_.hidden_size;
    const int64_t Q = c_.q_size(), KV = c_.kv_size();
    const int hd = c_.head_dim;
    const float eps = c_.rms_norm_eps;
    std::vector<float> x(T * H), delta(T * H), h(T * H);
    const auto& emb = W(w_.embed_tokens);
    for (int64_t t = 0; t < T; ++t) std::memcpy(&x[t * H], &emb[int64_t{tokens[t]} * H], H * 4);
    kc::PagedKvShape shape;
    shape.block_size = 16;
    shape.num_kv_heads = c_.num_kv_heads;
    shape.head_dim = hd;
    const int nb = static_cast<int>((T + 15) / 16);
    std::vector<int32_t> table(nb);
    for (int i = 0; i < nb; ++i) table[i] = i;
    kc::AttentionSeq seq;
    seq.token_begin = 0;
    seq.num_tokens = static_cast<int32_t>(T);
    seq.start_pos = 0;
    seq.block_table = table.data();
    std::vector<int32_t> pos(T);
    for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t);
    int rot = static_cast<int>(hd * c_.partial_rotary_factor);
    rot -= rot % 2;
    const double factor = c_.rope_type == "linear" ? c_.rope_scaling_factor : 1.0;
    const std::vector<float> inv_freq = kc::RopeInvFreq(rot, c_.rope_theta, factor);
    std::vector<float> q(T * Q), k(T * KV), v(T * KV), attn(T * Q);
    std::vector<float> kcache(int64_t{nb} * 16 * KV), vcache(kcache.size());
    for (size_t l = 0; l < w_.layers.size(); ++l) {
      const LayerWeights& L = w_.layers[l];
      kc::AddRmsNorm(x.data(), l > 0 ? delta.data() : nullptr, T, H, W(L.input_norm).data(), DType::kF32, eps, h.data(), pool_);
      RoundAll(h.data(), h.size(), m_.h);
      Lin(h.data(), T, L.q_proj, &L.q_bias, q.data());
      Lin(h.data(), T, L.k_proj, &L.k_bias, k.data());
      Lin(h.data(), T, L.v_proj, &L.v_bias, v.data());
      if (w_.qk_norm == QkNorm::kPerHead) {
        kc::RmsNorm(q.data(), T * c_.num_heads, hd, W(L.q_norm).data(), DType::kF32, eps, q.data(), pool_);
        kc::RmsNorm(k.data(), T * c_.num_kv_heads, hd, W(L.k_norm).data(), DType::kF32, eps, k.data(), pool_);
      } else if (w_.qk_norm == QkNorm::kWholeProjection) {
        kc::RmsNorm(q.data(), T, Q, W(L.q_norm).data(), DType::kF32, eps, q.data(), pool_);
        kc::RmsNorm(k.data(), T, KV, W(L.k_norm).data(), DType::kF32, eps, k.data(), pool_);
      }
      if (w_.clip_qkv.has_value()) {
        kc::Clamp(q.data(), T * Q, *w_.clip_qkv, pool_);
        kc::Clamp(k.data(), T * KV, *w_.clip_qkv, pool_);
        kc::Clamp(v.data(), T * KV, *w_.clip_qkv, pool_);
      }
      if (rot > 0) {
        kc::ApplyRope(q.data(), T, Q, c_.num_heads, hd, rot, pos.data(), inv_freq.data(), pool_);
        kc::ApplyRope(k.data(), T, KV, c_.num_kv_heads, hd, rot, pos.data(), inv_freq.data(), pool_);
      }
      RoundAll(k.data(), k.size(), m_.kv);
      RoundAll(v.data(), v.size(), m_.kv);
      kc::WriteKvCache(&seq, 1, k.data(), v.data(), KV, shape, kcache.data(), vcache.data(), pool_);
      kc::PagedAttention(&seq, 1, q.data(), Q, c_.num_heads, shape, kcache.data(), vcache.data(),
                         1.0f / std::sqrt(static_cast<float>(hd)), c_.sliding_window, attn.data(), Q, pool_);
      RoundAll(attn.data(), attn.size(), m_.att);
      Lin(attn.data(), T, L.o_proj, &L.o_bias, delta.data());
      kc::AddRmsNorm(x.data(), delta.data(), T, H, W(L.post_attention_norm).data(), DType::kF32, eps, h.data(), pool_);
      RoundAll(h.data(), h.size(), m_.h);
      if (L.is_moe) {
        Moe(L, h.data(), T, delta.data());
      } else {
        Ffn(L.dense_mlp, h.data(), T, delta.data());
      }
    }
    kc::AddRmsNorm(x.data(), w_.layers.empty() ? nullptr : delta.data(), T, H, W(w_.final_norm).data(), DType::kF32, eps, h.data(), pool_);
    RoundAll(h.data(), h.size(), m_.h);
    std::vector<float> logits(T * c_.vocab_size);
    Lin(h.data(), T, w_.lm_head, nullptr, logits.data());
    return logits;
  }

 private:
  // The weight as fp32, rounded as the mode says (cached).
  const std::vector<float>& W(const WeightRef& r) {
    auto it = cache_.find(r.data);
    if (it != cache_.end()) return it->second;
    std::vector<float> v(static_cast<size_t>(r.numel()));
    kc::ConvertToF32(r.data, r.dtype, r.numel(), v.data());
    if (!m_.weights_native) RoundAll(v.data(), v.size(), m_.w);
    return cache_.emplace(r.data, std::move(v)).first->second;
  }
  void Lin(const float* x, int64_t M, const WeightRef& w, const WeightRef* bias, float* y) {
    const bool b = bias != nullptr && bias->present();
    kc::Linear(x, M, w.cols, W(w).data(), DType::kF32, w.rows, b ? W(*bias).data() : nullptr, DType::kF32, y, pool_);
  }
  void Ffn(const FfnWeights& f, const float* x, int64_t n, float* out) {
    const int64_t I = f.gate.rows;
    std::vector<float> g(n * I), u(n * I);
    Lin(x, n, f.gate, nullptr, g.data());
    Lin(x, n, f.up, nullptr, u.data());
    kc::SiluMul(g.data(), u.data(), n * I, g.data(), pool_);
    RoundAll(g.data(), g.size(), m_.act);
    Lin(g.data(), n, f.down, nullptr, out);
  }
  void Moe(const LayerWeights& L, const float* h, int64_t T, float* out) {
    const int64_t H = c_.hidden_size;
    const int E = c_.num_experts, k = c_.num_experts_per_tok;
    std::vector<float> logits(T * E), tw(T * k), row(H), eo(H);
    std::vector<int32_t> ti(T * k);
    Lin(h, T, L.router, nullptr, logits.data());
    kc::RouterSoftmaxTopK(logits.data(), T, E, k, w_.router_renormalize, ti.data(), tw.data(), pool_);
    std::fill(out, out + T * H, 0.f);
    for (int64_t t = 0; t < T; ++t) {
      for (int i = 0; i < k; ++i) {
        Ffn(L.experts[ti[t * k + i]], h + t * H, 1, eo.data());
        kc::ScaledAdd(out + t * H, eo.data(), tw[t * k + i], H);
      }
    }
    if (L.shared_expert.present()) {
      std::vector<float> so(T * H), sl(T);
      Ffn(L.shared_expert, h, T, so.data());
      Lin(h, T, L.shared_expert_gate, nullptr, sl.data());
      kc::SigmoidGatedAdd(out, sl.data(), so.data(), T, H, pool_);
    }
  }

  const ModelConfig& c_;
  const DecoderWeights& w_;
  const Mode m_;
  kc::ThreadPool* pool_;
  std::map<const void*, std::vector<float>> cache_;
};

double RowError(const json& top5, const float* logits, int V) {
  double mx = logits[0];
  for (int i = 1; i < V; ++i) mx = std::max(mx, double(logits[i]));
  double sum = 0;
  for (int i = 0; i < V; ++i) sum += std::exp(logits[i] - mx);
  const double lse = mx + std::log(sum);
  double worst = 0;
  for (const auto& p : top5) worst = std::max(worst, std::fabs(logits[p[0].get<int>()] - lse - p[1].get<double>()));
  return worst;
}

int RunFamily(const std::string& family, const std::vector<Mode>& modes, kc::ThreadPool* pool) {
  std::ifstream in("tests/data/reference/" + family + ".json");
  if (!in.good()) {
    std::printf("%s: reference missing (run from the repository root)\n", family.c_str());
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const json ref = json::parse(ss.str(), nullptr, false);
  if (ref.is_discarded()) {
    std::printf("%s: reference is not valid JSON\n", family.c_str());
    return 1;
  }
  const std::string dir = ref["model_dir"].get<std::string>();
  auto config = LoadModelConfig(dir);
  if (!config.ok()) {
    std::printf("%s: %s\n", family.c_str(), config.status().ToString().c_str());
    return 1;
  }
  auto ckpt = Checkpoint::Open(dir);
  if (!ckpt.ok()) {
    std::printf("%s: %s\n", family.c_str(), ckpt.status().ToString().c_str());
    return 1;
  }
  auto weights = BindDecoderWeights(**ckpt, *config);
  if (!weights.ok()) {
    std::printf("%s: %s\n", family.c_str(), weights.status().ToString().c_str());
    return 1;
  }
  const char* disk = DTypeName(weights->layers.empty() ? weights->embed_tokens.dtype : weights->layers[0].q_proj.dtype);
  for (const Mode& m : modes) {
    Probe probe(*config, *weights, m, pool);
    std::vector<double> errs;
    for (const auto& c : ref["cases"]) {
      std::vector<int32_t> all = c["prompt_ids"].get<std::vector<int32_t>>();
      const int n = static_cast<int>(all.size());
      const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
      all.insert(all.end(), greedy.begin(), greedy.end());
      const std::vector<float> logits = probe.Forward(all);
      const int V = config->vocab_size;
      for (size_t i = 0; i < greedy.size(); ++i) {
        errs.push_back(RowError(c["teacher_forced_top5"][i], logits.data() + size_t(n - 1 + i) * V, V));
      }
    }
    std::sort(errs.begin(), errs.end());
    auto pct = [&](double p) { return errs[size_t(p * (errs.size() - 1))]; };
    const long over = std::count_if(errs.begin(), errs.end(), [](double e) { return e >= 2e-2; });
    std::printf("%-10s %-5s %-28s median %.1e p90 %.1e p99 %.1e max %.1e  rows>=2e-2 %3ld/%zu\n",
                family.c_str(), disk, m.name, pct(0.5), pct(0.9), pct(0.99), pct(1.0), over, errs.size());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace moe::engine

int main(int argc, char** argv) {
  using moe::engine::Fmt;
  using moe::engine::Mode;
  const Fmt F = Fmt::kF32, B = Fmt::kBF16, H = Fmt::kF16;
  const std::vector<Mode> modes = {
      {"fp32 (CPU reference)", F, F, F, F, F, false},
      {"bf16 weights only", B, F, F, F, F, false},
      {"bf16 activations only", F, B, B, B, B, false},
      {"bf16 GEMM-in h only", F, B, F, F, F, false},
      {"bf16 kv only", F, F, B, F, F, false},
      {"bf16 W + acts (= CUDA runner)", B, B, B, B, B, false},
      {"disk W + bf16 acts", F, B, B, B, B, true},
      {"disk W + fp16 acts", F, H, H, H, H, true},
      {"disk W + bf16 kv, fp32 rest", F, F, B, F, F, true},
  };
  std::vector<std::string> families;
  for (int i = 1; i < argc; ++i) families.push_back(argv[i]);
  if (families.empty()) families = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};
  moe::kernels::cpu::ThreadPool pool(2);
  int rc = 0;
  for (const auto& f : families) rc |= moe::engine::RunFamily(f, modes, &pool);
  return rc;
}
