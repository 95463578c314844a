// The CPU runner on the exact-foresight checkpoint variants of engine/experts/FORMATS.md
// (pre-gated and decoupled router), written by //tools/synthetic for two families:
// the routing the runner records is what engine/experts' exact predictors say; prefill
// and decode, batched and alone agree; an independent double-precision forward written
// from FORMATS.md agrees; checkpoints missing their routing tensors fail naming them.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "engine/cpu/cpu_runner.h"
#include "engine/cpu/runner_test_util.h"
#include "engine/experts/predictor.h"
#include "engine/experts/routing_format.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/loader/safetensors.h"
#include "engine/model_loader.h"
#include "engine/models/registry.h"
#include "tools/synthetic/synthetic_model.h"
#include "tools/synthetic/test_dir.h"

namespace moe::engine {
namespace {

using ::moe::engine::testing::MaxAbsDiff;
using ::moe::engine::testing::RandomTokens;
using tools::Family;
using tools::Routing;

tools::SyntheticSpec Spec(Family f, Routing r) {
  auto spec = tools::SpecFromProfileJson(*tools::BuiltinProfileJson("tiny"), "tiny", f);
  REQUIRE(spec.ok());
  spec->routing = r;
  spec->num_layers = 4;
  spec->dtype = DType::kF32;
  spec->seed = 20261124;
  if (f == Family::kQwen3Moe || f == Family::kQwen2Moe) spec->mlp_only_layers = {1};
  if (r == Routing::kRouter) spec->router_hidden_size = 48;
  return *spec;
}

struct Model {
  tools::testing::TestDir dir;
  tools::SyntheticSpec spec;
  ModelConfig config;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<ModelRunner> runner;
  CpuRunner* cpu = nullptr;
  RoutingWeights routing;  // as engine/experts binds it, for the predictors
  DecoderWeights weights;
};

std::unique_ptr<Model> Make(const tools::SyntheticSpec& spec) {
  auto m = std::make_unique<Model>();
  m->spec = spec;
  REQUIRE(tools::WriteSyntheticModel(spec, m->dir.path()).ok());
  auto cfg = LoadModelConfig(m->dir.path());
  REQUIRE(cfg.ok());
  m->config = *cfg;
  auto ck = Checkpoint::Open(m->dir.path());
  REQUIRE(ck.ok());
  m->ckpt = *std::move(ck);
  RunnerOptions opts;
  opts.kv_block_size = 4;
  opts.num_kv_blocks = 64;
  opts.num_threads = 2;
  auto runner = CreateCpuRunner(*m->ckpt, m->config, opts);
  INFO(runner.status().ToString());
  REQUIRE(runner.ok());
  m->runner = *std::move(runner);
  m->cpu = AsCpuRunner(m->runner.get());
  REQUIRE(m->cpu != nullptr);
  auto fmt = LoadRoutingFormat(m->dir.path(), m->config);
  REQUIRE(fmt.ok());
  auto rw = BindRoutingWeights(*m->ckpt, m->config, *fmt);
  REQUIRE(rw.ok());
  m->routing = *std::move(rw);
  auto dw = BindDecoderWeights(*m->ckpt, m->config);
  REQUIRE(dw.ok());
  m->weights = *std::move(dw);
  return m;
}

struct Seq {
  std::vector<int32_t> tokens;
  int32_t start = 0;
  std::vector<int32_t> table;
  SequenceChunk::Logits logits = SequenceChunk::Logits::kAll;
};

ForwardResult Run(ModelRunner& runner, const std::vector<Seq>& seqs) {
  ForwardBatch b;
  for (size_t i = 0; i < seqs.size(); ++i) {
    SequenceChunk c;
    c.seq_id = static_cast<int64_t>(i);
    c.tokens = seqs[i].tokens;
    c.start_pos = seqs[i].start;
    c.block_table = seqs[i].table;
    c.logits = seqs[i].logits;
    b.seqs.push_back(c);
  }
  ForwardResult out;
  absl::Status s = runner.Forward(b, &out);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

std::vector<int32_t> Blocks(int first, int n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::vector<int32_t> Sorted(absl::Span<const int32_t> s) {
  std::vector<int32_t> v(s.begin(), s.end());
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<std::pair<Family, const char*>> kFamilies = {
    {Family::kMixtral, "mixtral"}, {Family::kQwen3Moe, "qwen3_moe"}};

// ---- (a) the recorded routing is the exact predictors' ----

TEST_CASE("pre-gated: the routing used is what PregatedPredictor foresaw", "[pregated]") {
  for (auto [family, name] : kFamilies) {
    INFO(name);
    auto m = Make(Spec(family, Routing::kPregated));
    const int H = m->config.hidden_size;
    std::vector<WeightRef> norms;
    for (const auto& l : m->weights.layers) norms.push_back(l.post_attention_norm);
    PregatedPredictor pred(m->config, norms, m->routing, nullptr);
    // predicted[next MoE layer][token] = that token's experts, from layer l's hidden state.
    std::map<int, std::map<int64_t, std::vector<int32_t>>> predicted;
    std::map<int, std::vector<int32_t>> predicted_union;
    absl::Status hook_status;
    m->cpu->set_layer_observer([&](int l, const float* hidden, int64_t T,
                                   absl::Span<const int32_t> ids) {
      std::vector<LayerPrediction> out;
      for (int64_t t = 0; t < T; ++t) {
        PredictorInput in{l, hidden + t * H, 1, ids.subspan(t, 1)};
        absl::Status s = pred.PredictNextLayers(in, 1, &out);
        if (!s.ok()) hook_status = s;
        if (!out.empty()) predicted[out[0].layer][t] = out[0].experts;
      }
      PredictorInput all{l, hidden, T, ids};
      if (pred.PredictNextLayers(all, 3, &out).ok() && !out.empty()) {
        predicted_union[out[0].layer] = out[0].experts;
      }
    });
    const auto a = RandomTokens(9, m->config.vocab_size, 1);
    const auto b = RandomTokens(6, m->config.vocab_size, 2);
    Run(*m->runner, {{a, 0, Blocks(0, 3)}, {b, 0, Blocks(3, 2)}});
    REQUIRE(hook_status.ok());
    const RoutingRecord* rec = m->cpu->last_routing();
    REQUIRE(rec != nullptr);
    REQUIRE(rec->num_tokens == 15);
    REQUIRE(rec->moe_layers == m->routing.format.moe_layers);
    // Every MoE layer but the first is foreseen, one MoE layer ahead, for every token.
    REQUIRE(static_cast<int>(predicted.size()) == rec->num_moe_layers() - 1);
    for (const auto& [layer, per_token] : predicted) {
      const int mi = rec->MoeIndex(layer);
      REQUIRE(mi >= 1);
      REQUIRE(static_cast<int64_t>(per_token.size()) == rec->num_tokens);
      for (const auto& [t, experts] : per_token) {
        INFO("layer " << layer << " token " << t);
        CHECK(Sorted(rec->Experts(mi, t)) == experts);
      }
      CHECK(predicted_union[layer] == rec->LayerUnion(mi));
    }
    // The weights used are a softmax's top-k (renormalised: these families' configs).
    for (int mi = 0; mi < rec->num_moe_layers(); ++mi) {
      for (int64_t t = 0; t < rec->num_tokens; ++t) {
        auto w = rec->Weights(mi, t);
        CHECK(std::accumulate(w.begin(), w.end(), 0.0) == Approx(1.0).epsilon(1e-5));
        CHECK(std::is_sorted(w.rbegin(), w.rend()));
      }
    }
  }
}

TEST_CASE("router: the routing used is what DecoupledRouterPredictor gives", "[router]") {
  for (auto [family, name] : kFamilies) {
    INFO(name);
    auto m = Make(Spec(family, Routing::kRouter));
    DecoupledRouterPredictor pred(m->config, m->weights.embed_tokens, m->routing, nullptr);
    const auto a = RandomTokens(8, m->config.vocab_size, 3);
    const auto b = RandomTokens(5, m->config.vocab_size, 4);
    // The whole step's routing, foreseen before the step from the token ids alone.
    std::vector<int32_t> ids(a);
    ids.insert(ids.end(), b.begin(), b.end());
    std::vector<int32_t> idx;
    std::vector<float> w;
    REQUIRE(pred.RouteTokens(ids, &idx, &w).ok());
    std::vector<LayerPrediction> ahead;
    PredictorInput before{-1, nullptr, static_cast<int64_t>(ids.size()), ids};
    REQUIRE(pred.PredictNextLayers(before, 16, &ahead).ok());

    int notified = 0;
    m->cpu->set_routing_observer([&](const RoutingRecord&) { ++notified; });
    Run(*m->runner, {{a, 0, Blocks(0, 2)}, {b, 0, Blocks(2, 2)}});
    CHECK(notified == 1);
    const RoutingRecord* rec = m->cpu->last_routing();
    REQUIRE(rec != nullptr);
    const int M = rec->num_moe_layers(), k = rec->top_k;
    REQUIRE(M == static_cast<int>(m->routing.format.moe_layers.size()));
    REQUIRE(rec->num_tokens == static_cast<int64_t>(ids.size()));
    for (int64_t t = 0; t < rec->num_tokens; ++t) {
      for (int mi = 0; mi < M; ++mi) {
        INFO("token " << t << " moe layer " << mi);
        for (int j = 0; j < k; ++j) {
          CHECK(rec->Experts(mi, t)[j] == idx[(t * M + mi) * k + j]);
          CHECK(rec->Weights(mi, t)[j] == Approx(w[(t * M + mi) * k + j]).margin(1e-6));
        }
      }
    }
    REQUIRE(static_cast<int>(ahead.size()) == M);
    for (int mi = 0; mi < M; ++mi) {
      CHECK(ahead[mi].layer == rec->moe_layers[mi]);
      CHECK(ahead[mi].experts == rec->LayerUnion(mi));
    }
  }
}

// ---- (b) prefill vs decode, (c) batch vs alone ----

TEST_CASE("pre-gated and router: prefill equals decode, batched equals alone", "[variants]") {
  for (Routing r : {Routing::kPregated, Routing::kRouter}) {
    for (auto [family, name] : kFamilies) {
      INFO(name << " " << tools::RoutingName(r));
      auto m = Make(Spec(family, r));
      const int V = m->config.vocab_size;
      const auto a = RandomTokens(10, V, 5);
      const auto b = RandomTokens(7, V, 6);

      const ForwardResult full = Run(*m->runner, {{a, 0, Blocks(0, 3)}});
      const RoutingRecord full_rec = *m->cpu->last_routing();
      // Prefill 4, then decode one token at a time into other blocks.
      Run(*m->runner, {{std::vector<int32_t>(a.begin(), a.begin() + 4), 0, Blocks(10, 3),
                        SequenceChunk::Logits::kNone}});
      for (int t = 4; t < 10; ++t) {
        INFO("position " << t);
        ForwardResult step = Run(*m->runner, {{{a[t]}, t, Blocks(10, 3)}});
        REQUIRE(MaxAbsDiff(step.row(0), full.row(t), V) < 1e-4f);
        const RoutingRecord* rec = m->cpu->last_routing();
        REQUIRE(rec->num_tokens == 1);
        for (int mi = 0; mi < rec->num_moe_layers(); ++mi) {
          CHECK(Sorted(rec->Experts(mi, 0)) == Sorted(full_rec.Experts(mi, t)));
        }
      }

      const ForwardResult alone_b = Run(*m->runner, {{b, 0, Blocks(20, 2)}});
      const RoutingRecord rec_b = *m->cpu->last_routing();
      const ForwardResult both = Run(*m->runner, {{a, 0, Blocks(30, 3)}, {b, 0, Blocks(40, 2)}});
      const RoutingRecord& rec = *m->cpu->last_routing();
      REQUIRE(MaxAbsDiff(both.row(0), full.row(0), 10 * size_t(V)) < 1e-4f);
      REQUIRE(MaxAbsDiff(both.row(10), alone_b.row(0), 7 * size_t(V)) < 1e-4f);
      for (int mi = 0; mi < rec.num_moe_layers(); ++mi) {
        for (int t = 0; t < 10; ++t) {
          CHECK(Sorted(rec.Experts(mi, t)) == Sorted(full_rec.Experts(mi, t)));
        }
        for (int t = 0; t < 7; ++t) {
          CHECK(Sorted(rec.Experts(mi, 10 + t)) == Sorted(rec_b.Experts(mi, t)));
        }
      }
    }
  }
}

// ---- (d) an independent double-precision forward from FORMATS.md ----

using Vec = std::vector<double>;

class NaiveModel {
 public:
  explicit NaiveModel(const Model& m) : m_(m), c_(m.config) {}

  // Logits of every position [T][V]; *routing gets [moe index][token] = the experts used.
  std::vector<Vec> Forward(const std::vector<int32_t>& tokens,
                           std::vector<std::vector<std::vector<int>>>* routing) const {
    const int T = static_cast<int>(tokens.size()), H = c_.hidden_size;
    const int E = c_.num_experts;
    std::vector<int> moe_layers;
    for (int l = 0; l < c_.num_layers; ++l)
      if (c_.IsMoeLayer(l)) moe_layers.push_back(l);
    const int M = static_cast<int>(moe_layers.size());
    routing->assign(M, std::vector<std::vector<int>>(T));
    std::vector<std::vector<std::vector<std::pair<int, double>>>> pending(M,
        std::vector<std::vector<std::pair<int, double>>>(T));
    std::vector<Vec> x(T, Vec(H));
    const float* emb = W("model.embed_tokens.weight");
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < H; ++i) x[t][i] = emb[size_t(tokens[t]) * H + i];
    if (Router()) {  // every MoE layer's routing from the embeddings, before layer 0
      const int R = m_.spec.RouterHiddenSize();
      for (int t = 0; t < T; ++t) {
        Vec h = Norm(x[t], "model.router.norm.weight");
        Vec u = MatVec("model.router.up_proj.weight", 0, R, h);
        for (double& v : u) v = v / (1 + std::exp(-v));
        Vec logits = MatVec("model.router.out_proj.weight", 0, int64_t{M} * E, u);
        for (int mi = 0; mi < M; ++mi) {
          pending[mi][t] = TopK(Vec(logits.begin() + mi * E, logits.begin() + (mi + 1) * E));
        }
      }
    }
    for (int l = 0; l < c_.num_layers; ++l) {
      const std::string p = absl::StrCat("model.layers.", l, ".");
      std::vector<Vec> h(T);
      for (int t = 0; t < T; ++t) h[t] = Norm(x[t], p + "input_layernorm.weight");
      std::vector<Vec> attn = Attention(h, p + "self_attn.");
      const int mi = static_cast<int>(std::find(moe_layers.begin(), moe_layers.end(), l) -
                                      moe_layers.begin());
      for (int t = 0; t < T; ++t) {
        for (int i = 0; i < H; ++i) x[t][i] += attn[t][i];
        Vec hn = Norm(x[t], p + "post_attention_layernorm.weight");
        Vec y;
        if (!c_.IsMoeLayer(l)) {
          y = Ffn(hn, p + "mlp.", "gate_proj", "up_proj", "down_proj", c_.intermediate_size);
        } else {
          const std::string blk = p + (Mixtral() ? "block_sparse_moe." : "mlp.");
          const bool own_gate = m_.spec.routing == Routing::kStandard || (Pregated() && mi == 0);
          auto route = own_gate ? TopK(MatVec(blk + "gate.weight", 0, E, hn)) : pending[mi][t];
          if (Pregated() && mi + 1 < M) {
            pending[mi + 1][t] = TopK(MatVec(p + "pregate.weight", 0, E, hn));
          }
          y.assign(H, 0.0);
          for (auto [e, w] : route) {
            (*routing)[mi][t].push_back(e);
            const std::string ep = absl::StrCat(blk, "experts.", e, ".");
            Vec o = Mixtral() ? Ffn(hn, ep, "w1", "w3", "w2", c_.moe_intermediate_size)
                              : Ffn(hn, ep, "gate_proj", "up_proj", "down_proj",
                                    c_.moe_intermediate_size);
            for (int i = 0; i < H; ++i) y[i] += w * o[i];
          }
        }
        for (int i = 0; i < H; ++i) x[t][i] += y[i];
      }
    }
    const char* head = c_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    std::vector<Vec> logits(T);
    for (int t = 0; t < T; ++t)
      logits[t] = MatVec(head, 0, c_.vocab_size, Norm(x[t], "model.norm.weight"));
    return logits;
  }

 private:
  bool Mixtral() const { return c_.arch == Architecture::kMixtral; }
  bool Router() const { return m_.spec.routing == Routing::kRouter; }
  bool Pregated() const { return m_.spec.routing == Routing::kPregated; }

  const float* W(const std::string& name) const {
    const TensorView* v = m_.ckpt->Find(name);
    INFO(name);
    REQUIRE(v != nullptr);
    REQUIRE(v->dtype == DType::kF32);
    return static_cast<const float*>(v->data);
  }

  Vec MatVec(const std::string& name, int64_t row0, int64_t rows, const Vec& x) const {
    const float* w = W(name);
    Vec y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < x.size(); ++c) y[r] += double(w[(row0 + r) * x.size() + c]) * x[c];
    return y;
  }

  Vec Norm(const Vec& x, const std::string& name, size_t group = 0) const {
    const float* w = W(name);
    const size_t n = group ? group : x.size();
    Vec y(x.size());
    for (size_t b = 0; b < x.size(); b += n) {
      double ss = 0;
      for (size_t i = 0; i < n; ++i) ss += x[b + i] * x[b + i];
      const double inv = 1.0 / std::sqrt(ss / n + double(c_.rms_norm_eps));
      for (size_t i = 0; i < n; ++i) y[b + i] = x[b + i] * inv * w[i];
    }
    return y;
  }

  // Softmax over the experts, top-k (descending), renormalised when the family says so.
  std::vector<std::pair<int, double>> TopK(const Vec& logits) const {
    const int E = static_cast<int>(logits.size()), K = c_.num_experts_per_tok;
    const double mx = *std::max_element(logits.begin(), logits.end());
    Vec prob(E);
    double sum = 0;
    for (int e = 0; e < E; ++e) sum += prob[e] = std::exp(logits[e] - mx);
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return prob[a] > prob[b]; });
    double ksum = 0;
    for (int i = 0; i < K; ++i) ksum += prob[order[i]];
    const bool renorm = Mixtral() || c_.norm_topk_prob;
    std::vector<std::pair<int, double>> out;
    for (int i = 0; i < K; ++i) {
      out.push_back({order[i], renorm ? prob[order[i]] / ksum : prob[order[i]] / sum});
    }
    return out;
  }

  Vec Ffn(const Vec& x, const std::string& p, const char* g, const char* u, const char* d,
          int64_t width) const {
    Vec gv = MatVec(p + g + ".weight", 0, width, x), uv = MatVec(p + u + ".weight", 0, width, x);
    Vec act(width);
    for (int64_t i = 0; i < width; ++i) act[i] = gv[i] / (1 + std::exp(-gv[i])) * uv[i];
    return MatVec(p + d + ".weight", 0, c_.hidden_size, act);
  }

  void Rope(Vec& v, int heads, int pos) const {
    const int hd = c_.head_dim, half = hd / 2;
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < half; ++i) {
        const double a = pos / std::pow(c_.rope_theta, 2.0 * i / hd);
        const double x1 = v[h * hd + i], x2 = v[h * hd + i + half];
        v[h * hd + i] = x1 * std::cos(a) - x2 * std::sin(a);
        v[h * hd + i + half] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  }

  std::vector<Vec> Attention(const std::vector<Vec>& h, const std::string& a) const {
    const int T = static_cast<int>(h.size()), hd = c_.head_dim;
    const int nh = c_.num_heads, nkv = c_.num_kv_heads;
    std::vector<Vec> q(T), k(T), v(T);
    for (int t = 0; t < T; ++t) {
      q[t] = MatVec(a + "q_proj.weight", 0, nh * hd, h[t]);
      k[t] = MatVec(a + "k_proj.weight", 0, nkv * hd, h[t]);
      v[t] = MatVec(a + "v_proj.weight", 0, nkv * hd, h[t]);
      if (c_.arch == Architecture::kQwen3Moe) {
        q[t] = Norm(q[t], a + "q_norm.weight", hd);
        k[t] = Norm(k[t], a + "k_norm.weight", hd);
      }
      Rope(q[t], nh, t);
      Rope(k[t], nkv, t);
    }
    std::vector<Vec> out(T);
    for (int t = 0; t < T; ++t) {
      Vec o(nh * hd, 0.0);
      for (int hh = 0; hh < nh; ++hh) {
        const int kvh = hh / (nh / nkv);
        Vec sc(t + 1);
        for (int j = 0; j <= t; ++j) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][hh * hd + i] * k[j][kvh * hd + i];
          sc[j] = d / std::sqrt(double(hd));
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double sum = 0;
        for (double& e : sc) sum += e = std::exp(e - mx);
        for (int j = 0; j <= t; ++j)
          for (int i = 0; i < hd; ++i) o[hh * hd + i] += sc[j] / sum * v[j][kvh * hd + i];
      }
      out[t] = MatVec(a + "o_proj.weight", 0, c_.hidden_size, o);
    }
    return out;
  }

  const Model& m_;
  const ModelConfig& c_;
};

void CompareWithNaive(Family family, Routing r) {
  auto m = Make(Spec(family, r));
  INFO(m->config.model_type << " " << tools::RoutingName(r));
  const auto tokens = RandomTokens(11, m->config.vocab_size, 9);
  const ForwardResult out = Run(*m->runner, {{tokens, 0, Blocks(0, 3)}});
  const RoutingRecord& rec = *m->cpu->last_routing();
  std::vector<std::vector<std::vector<int>>> naive_routing;
  const auto ref = NaiveModel(*m).Forward(tokens, &naive_routing);
  double worst = 0;
  for (size_t t = 0; t < tokens.size(); ++t)
    for (int v = 0; v < m->config.vocab_size; ++v)
      worst = std::max(worst, std::fabs(out.row(t)[v] - ref[t][v]));
  INFO("max |runner - naive| = " << worst);
  CHECK(worst < 5e-5);
  for (int mi = 0; mi < rec.num_moe_layers(); ++mi) {
    for (size_t t = 0; t < tokens.size(); ++t) {
      auto e = rec.Experts(mi, t);
      CHECK(std::vector<int>(e.begin(), e.end()) == naive_routing[mi][t]);
    }
  }
}

TEST_CASE("pre-gated Mixtral matches a naive double-precision forward", "[naive]") {
  CompareWithNaive(Family::kMixtral, Routing::kPregated);
}

TEST_CASE("router Qwen3-MoE (with a dense layer) matches a naive forward", "[naive]") {
  CompareWithNaive(Family::kQwen3Moe, Routing::kRouter);
}

TEST_CASE("pre-gated Qwen3-MoE (pre-gate skips the dense layer) matches a naive forward",
          "[naive]") {
  CompareWithNaive(Family::kQwen3Moe, Routing::kPregated);
}

// ---- (e) missing routing tensors ----

// Rewrites `dir`/model.safetensors without tensor `drop`.
void DropTensor(const std::string& dir, const std::string& drop) {
  const std::string path = dir + "/model.safetensors";
  std::vector<TensorToWrite> keep;
  {
    auto f = SafetensorsFile::Open(path);
    REQUIRE(f.ok());
    bool found = false;
    for (const TensorView& v : (*f)->tensors()) {
      if (v.name == drop) {
        found = true;
        continue;
      }
      keep.push_back({v.name, v.dtype, v.shape,
                      std::string(static_cast<const char*>(v.data), v.nbytes)});
    }
    REQUIRE(found);
  }
  REQUIRE(WriteSafetensors(path, keep).ok());
}

TEST_CASE("a checkpoint missing its routing tensors fails to load naming them", "[errors]") {
  struct Case {
    Family family;
    Routing routing;
    std::string drop;
  };
  for (const Case& c : std::vector<Case>{
           {Family::kMixtral, Routing::kPregated, "model.layers.1.pregate.weight"},
           {Family::kQwen3Moe, Routing::kPregated, "model.layers.0.mlp.gate.weight"},
           {Family::kQwen3Moe, Routing::kRouter, "model.router.out_proj.weight"},
           {Family::kMixtral, Routing::kRouter, "model.router.norm.weight"}}) {
    INFO(c.drop);
    tools::testing::TestDir dir;
    REQUIRE(tools::WriteSyntheticModel(Spec(c.family, c.routing), dir.path()).ok());
    DropTensor(dir.path(), c.drop);
    auto cfg = LoadModelConfig(dir.path());
    REQUIRE(cfg.ok());
    auto ck = Checkpoint::Open(dir.path());
    REQUIRE(ck.ok());
    RunnerOptions opts;
    opts.num_kv_blocks = 4;
    auto runner = CreateCpuRunner(**ck, *cfg, opts);
    REQUIRE_FALSE(runner.ok());
    INFO(runner.status().ToString());
    CHECK(runner.status().message().find(c.drop) != absl::string_view::npos);
  }
}

TEST_CASE("a standard checkpoint records its own gates' routing", "[standard]") {
  CompareWithNaive(Family::kQwen3Moe, Routing::kStandard);
}

TEST_CASE("LoadModel (as moe_generate does) serves a pre-gated checkpoint on the CPU",
          "[loader]") {
  tools::testing::TestDir dir;
  REQUIRE(tools::WriteSyntheticModel(Spec(Family::kMixtral, Routing::kPregated), dir.path()).ok());
  LoadOptions opts;
  opts.device = DeviceKind::kCpu;
  opts.runner.num_kv_blocks = 8;
  opts.runner.num_threads = 2;
  auto loaded = LoadModel(dir.path(), opts);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  CpuRunner* cpu = AsCpuRunner(loaded->runner.get());
  REQUIRE(cpu != nullptr);
  const auto tokens = RandomTokens(5, loaded->config.vocab_size, 12);
  const ForwardResult out = Run(*loaded->runner, {{tokens, 0, Blocks(0, 2)}});
  REQUIRE(out.logits.size() == 5 * size_t(loaded->config.vocab_size));
  for (float v : out.logits) REQUIRE(std::isfinite(v));
  REQUIRE(cpu->last_routing() != nullptr);
  CHECK(cpu->last_routing()->num_moe_layers() == 4);
}

}  // namespace
}  // namespace moe::engine
