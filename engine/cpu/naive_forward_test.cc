// An independent, deliberately plain forward pass (double precision, whole sequence at
// once, no cache, no kernels reused) written straight from the transformers modeling
// code of each family, compared against the CPU runner's logits.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "engine/cpu/runner_test_util.h"

namespace moe::engine {
namespace {

using namespace ::moe::engine::testing;
using Vec = std::vector<double>;

class NaiveModel {
 public:
  NaiveModel(const TestModelSpec& spec, const TestModelTensors& t) : s_(spec), t_(t) {}

  // Logits of every position, [T][V].
  std::vector<Vec> Forward(const std::vector<int32_t>& tokens) const {
    const int T = static_cast<int>(tokens.size()), H = s_.hidden_size;
    const auto& emb = W("model.embed_tokens.weight");
    std::vector<Vec> x(T, Vec(H));
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < H; ++i) x[t][i] = emb[size_t(tokens[t]) * H + i];
    }
    for (int l = 0; l < s_.num_layers; ++l) {
      const std::string p = absl::StrCat("model.layers.", l, ".");
      std::vector<Vec> h(T);
      for (int t = 0; t < T; ++t) h[t] = Norm(x[t], p + "input_layernorm.weight");
      std::vector<Vec> attn = Attention(h, p + "self_attn.");
      for (int t = 0; t < T; ++t) {
        for (int i = 0; i < H; ++i) x[t][i] += attn[t][i];
        Vec hn = Norm(x[t], p + "post_attention_layernorm.weight");
        Vec m = Mlp(hn, l);
        for (int i = 0; i < H; ++i) x[t][i] += m[i];
      }
    }
    const std::string head = s_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    std::vector<Vec> logits(T);
    for (int t = 0; t < T; ++t) logits[t] = MatVec(head, 0, s_.vocab_size, Norm(x[t], "model.norm.weight"));
    return logits;
  }

 private:
  const std::vector<float>& W(const std::string& name) const { return t_.values.at(name); }

  // rows [row0, row0 + rows) of the named matrix (any number of leading dims) times x.
  Vec MatVec(const std::string& name, int64_t row0, int64_t rows, const Vec& x) const {
    const auto& w = W(name);
    Vec y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < x.size(); ++c) y[r] += double(w[(row0 + r) * x.size() + c]) * x[c];
    }
    return y;
  }

  Vec Norm(const Vec& x, const std::string& name, size_t offset = 0, size_t n = 0) const {
    const auto& w = W(name);
    if (n == 0) n = x.size();
    Vec y(x.size());
    for (size_t b = 0; b < x.size(); b += n) {
      double ss = 0;
      for (size_t i = 0; i < n; ++i) ss += x[b + i] * x[b + i];
      double inv = 1.0 / std::sqrt(ss / n + 1e-6);
      for (size_t i = 0; i < n; ++i) y[b + i] = x[b + i] * inv * w[offset + i];
    }
    return y;
  }

  void Rope(Vec& v, int heads, int pos) const {
    const int hd = s_.head_dim;
    const int rot = static_cast<int>(hd * s_.partial_rotary_factor);
    const int half = rot / 2;
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < half; ++i) {
        double a = pos / std::pow(s_.rope_theta, 2.0 * i / rot);
        double x1 = v[h * hd + i], x2 = v[h * hd + i + half];
        v[h * hd + i] = x1 * std::cos(a) - x2 * std::sin(a);
        v[h * hd + i + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  }

  std::vector<Vec> Attention(const std::vector<Vec>& h, const std::string& a) const {
    const int T = static_cast<int>(h.size()), hd = s_.head_dim;
    const int nh = s_.num_heads, nkv = s_.num_kv_heads;
    std::vector<Vec> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      q[t] = MatVec(a + "q_proj.weight", 0, nh * hd, h[t]);
      k[t] = MatVec(a + "k_proj.weight", 0, nkv * hd, h[t]);
      v[t] = MatVec(a + "v_proj.weight", 0, nkv * hd, h[t]);
      if (s_.arch == Architecture::kQwen2Moe) {
        for (int i = 0; i < nh * hd; ++i) q[t][i] += W(a + "q_proj.bias")[i];
        for (int i = 0; i < nkv * hd; ++i) k[t][i] += W(a + "k_proj.bias")[i];
        for (int i = 0; i < nkv * hd; ++i) v[t][i] += W(a + "v_proj.bias")[i];
      }
      if (s_.arch == Architecture::kQwen3Moe) {  // per head
        q[t] = Norm(q[t], a + "q_norm.weight", 0, hd);
        k[t] = Norm(k[t], a + "k_norm.weight", 0, hd);
      }
      if (s_.arch == Architecture::kOlmoe) {  // whole projection, then clip
        q[t] = Norm(q[t], a + "q_norm.weight");
        k[t] = Norm(k[t], a + "k_norm.weight");
        if (s_.clip_qkv) {
          const double c = *s_.clip_qkv;
          for (Vec* z : {&q[t], &k[t], &v[t]}) {
            for (double& e : *z) e = std::min(std::max(e, -c), c);
          }
        }
      }
      Rope(q[t], nh, t);
      Rope(k[t], nkv, t);
    }
    std::vector<Vec> out(T);
    for (int t = 0; t < T; ++t) {
      Vec o(nh * hd, 0.0);
      for (int hh = 0; hh < nh; ++hh) {
        const int kvh = hh / (nh / nkv);
        Vec sc;
        std::vector<int> keys;
        for (int j = 0; j <= t; ++j) {
          if (s_.sliding_window > 0 && t - j >= s_.sliding_window) continue;
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][hh * hd + i] * k[j][kvh * hd + i];
          sc.push_back(d / std::sqrt(double(hd)));
          keys.push_back(j);
        }
        double mx = *std::max_element(sc.begin(), sc.end()), sum = 0;
        for (double& e : sc) sum += e = std::exp(e - mx);
        for (size_t n = 0; n < keys.size(); ++n) {
          for (int i = 0; i < hd; ++i) o[hh * hd + i] += sc[n] / sum * v[keys[n]][kvh * hd + i];
        }
      }
      out[t] = MatVec(a + "o_proj.weight", 0, s_.hidden_size, o);
    }
    return out;
  }

  // down(silu(gate(x)) * up(x)) with the three matrices given by name and first row.
  Vec Ffn(const Vec& x, const std::string& g, int64_t g0, const std::string& u, int64_t u0,
          const std::string& d, int64_t d0, int64_t width) const {
    Vec gv = MatVec(g, g0, width, x), uv = MatVec(u, u0, width, x);
    Vec act(width);
    for (int64_t i = 0; i < width; ++i) act[i] = gv[i] / (1 + std::exp(-gv[i])) * uv[i];
    return MatVec(d, d0, s_.hidden_size, act);
  }

  bool IsMoe(int l) const {
    if (s_.arch == Architecture::kMixtral || s_.arch == Architecture::kOlmoe) return true;
    if (std::count(s_.mlp_only_layers.begin(), s_.mlp_only_layers.end(), l)) return false;
    return (l + 1) % s_.decoder_sparse_step == 0;
  }

  Vec Mlp(const Vec& x, int l) const {
    const bool mixtral = s_.arch == Architecture::kMixtral;
    const std::string m = absl::StrCat("model.layers.", l, mixtral ? ".block_sparse_moe." : ".mlp.");
    if (!IsMoe(l)) {
      return Ffn(x, m + "gate_proj.weight", 0, m + "up_proj.weight", 0, m + "down_proj.weight", 0,
                 s_.intermediate_size);
    }
    const int E = s_.num_experts, K = s_.top_k, I = s_.moe_intermediate_size, H = s_.hidden_size;
    Vec logits = MatVec(m + "gate.weight", 0, E, x);
    double mx = *std::max_element(logits.begin(), logits.end()), sum = 0;
    Vec prob(E);
    for (int e = 0; e < E; ++e) sum += prob[e] = std::exp(logits[e] - mx);
    for (double& p : prob) p /= sum;
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b]; });
    order.resize(K);
    double ksum = 0;
    for (int e : order) ksum += prob[e];
    const bool renorm = mixtral || s_.norm_topk_prob;
    Vec out(H, 0.0);
    for (int e : order) {
      Vec y;
      if (s_.fused_experts) {
        y = Ffn(x, m + "experts.gate_up_proj", int64_t(e) * 2 * I, m + "experts.gate_up_proj",
                int64_t(e) * 2 * I + I, m + "experts.down_proj", int64_t(e) * H, I);
      } else {
        const std::string ep = absl::StrCat(m, "experts.", e, ".");
        y = Ffn(x, ep + (mixtral ? "w1" : "gate_proj") + ".weight", 0,
                ep + (mixtral ? "w3" : "up_proj") + ".weight", 0,
                ep + (mixtral ? "w2" : "down_proj") + ".weight", 0, I);
      }
      const double w = renorm ? prob[e] / ksum : prob[e];
      for (int i = 0; i < H; ++i) out[i] += w * y[i];
    }
    if (s_.arch == Architecture::kQwen2Moe && s_.shared_expert_intermediate_size > 0) {
      Vec y = Ffn(x, m + "shared_expert.gate_proj.weight", 0, m + "shared_expert.up_proj.weight", 0,
                  m + "shared_expert.down_proj.weight", 0, s_.shared_expert_intermediate_size);
      double g = MatVec(m + "shared_expert_gate.weight", 0, 1, x)[0];
      double sg = 1 / (1 + std::exp(-g));
      for (int i = 0; i < H; ++i) out[i] += sg * y[i];
    }
    return out;
  }

  const TestModelSpec& s_;
  const TestModelTensors& t_;
};

void CompareWithNaive(const std::string& name, const TestModelSpec& spec, int n_tokens) {
  INFO(name);
  TestRunner r = MakeTestRunner(spec, /*block_size=*/4, /*num_blocks=*/16, /*threads=*/2);
  auto tokens = RandomTokens(n_tokens, spec.vocab_size, 11);
  const int nblocks = (n_tokens + 3) / 4;
  auto logits = RunChunk(*r.runner, tokens, 0, Iota(nblocks, 3), SequenceChunk::Logits::kAll);
  NaiveModel naive(spec, r.tensors);
  auto ref = naive.Forward(tokens);
  double worst = 0;
  for (int t = 0; t < n_tokens; ++t) {
    for (int v = 0; v < spec.vocab_size; ++v) {
      worst = std::max(worst, std::fabs(logits[size_t(t) * spec.vocab_size + v] - ref[t][v]));
    }
  }
  INFO("max |runner - naive| = " << worst);
  REQUIRE(worst < 5e-5);
}

TEST_CASE("CPU runner matches a naive double-precision forward: Qwen2-MoE", "[naive]") {
  TestModelSpec spec;
  spec.arch = Architecture::kQwen2Moe;
  spec.num_layers = 3;
  spec.shared_expert_intermediate_size = 20;
  spec.mlp_only_layers = {1};
  spec.num_experts = 6;
  spec.top_k = 2;
  CompareWithNaive("qwen2_moe", spec, 12);
}

TEST_CASE("CPU runner matches a naive double-precision forward: other families", "[naive]") {
  TestModelSpec mixtral;
  mixtral.sliding_window = 6;
  mixtral.rope_theta = 1e6;
  CompareWithNaive("mixtral", mixtral, 14);
  TestModelSpec qwen3;
  qwen3.arch = Architecture::kQwen3Moe;
  qwen3.num_layers = 3;
  qwen3.decoder_sparse_step = 2;
  qwen3.norm_topk_prob = true;
  qwen3.fused_experts = true;
  qwen3.num_experts = 8;
  qwen3.top_k = 3;
  qwen3.dtype = DType::kF16;
  CompareWithNaive("qwen3_moe fused", qwen3, 10);
  TestModelSpec olmoe;
  olmoe.arch = Architecture::kOlmoe;
  olmoe.clip_qkv = 0.8f;
  olmoe.tie_word_embeddings = true;
  olmoe.partial_rotary_factor = 0.5;
  olmoe.dtype = DType::kF32;
  CompareWithNaive("olmoe", olmoe, 9);
}

}  // namespace
}  // namespace moe::engine
