// End-to-end check of the CUDA runner against transformers' fp32 references in
// tests/data/reference/<family>.json, for all four families: stepwise (prefill the
// prompt, then one decode step per reference token, feeding the reference's greedy ids)
// and teacher-forced (one prefill over prompt + continuation, every row's logits). Top-5
// logprobs must be within 2e-2 of the reference; the argmax must equal the reference's
// greedy id wherever the reference's top-2 gap exceeds 0.05. A mixed batch (one decode
// step of every case at once) must give the same logits as the single-sequence steps.
// Also expert footprints (expert-aware batching) on the trained standard and decoupled-router
// models: one-token chunks use exactly k experts per MoE layer, footprints follow the
// tokens through CUDA graph replays (equal to an eager runner's), an offloaded runner
// reports the resident one's, and TokenFootprint equals a one-token step's footprint.
// Needs a GPU; run from the repository root.
#include <stdlib.h>

#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/cuda/cuda_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"

namespace moe::engine {
namespace {

using nlohmann::json;
using Logits = SequenceChunk::Logits;
constexpr double kTolerance = 2e-2;

std::vector<double> LogSoftmax(const float* x, int n) {
  double mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  std::vector<double> out(n);
  for (int i = 0; i < n; ++i) out[i] = x[i] - mx - std::log(sum);
  return out;
}

std::vector<double>* g_errors = nullptr;  // every row's error, for the distribution

double Top5Error(const json& ref_top5, const float* logits, int vocab) {
  if (!std::all_of(logits, logits + vocab, [](float v) { return std::isfinite(v); })) return INFINITY;
  auto lp = LogSoftmax(logits, vocab);
  double worst = 0;
  for (const auto& pair : ref_top5) worst = std::max(worst, std::fabs(lp[pair[0].get<int>()] - pair[1].get<double>()));
  if (g_errors) g_errors->push_back(worst);
  return worst;
}

int Argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

std::vector<float> Run(ModelRunner& r, std::vector<SequenceChunk> chunks, bool* ok) {
  ForwardBatch b;
  b.seqs = std::move(chunks);
  ForwardResult out;
  absl::Status s = r.Forward(b, &out);
  if (!s.ok()) {
    std::printf("Forward failed: %s\n", s.ToString().c_str());
    *ok = false;
  }
  return out.logits;
}

bool CheckFamily(const std::string& family, CudaDType dtype, bool enforce) {
  std::ifstream in("tests/data/reference/" + family + ".json");
  if (!in.good()) {
    std::printf("FAIL %s: reference missing\n", family.c_str());
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const json ref = json::parse(ss.str());
  const std::string dir = ref["model_dir"].get<std::string>();
  auto config = LoadModelConfig(dir);
  auto ckpt = config.ok() ? Checkpoint::Open(dir) : absl::StatusOr<std::unique_ptr<Checkpoint>>(config.status());
  if (!ckpt.ok()) {
    std::printf("FAIL %s: %s\n", family.c_str(), ckpt.status().ToString().c_str());
    return false;
  }
  RunnerOptions opts;
  opts.num_kv_blocks = 512;
  auto runner = CreateCudaRunner(**ckpt, *config, opts, dtype);
  if (!runner.ok()) {
    std::printf("FAIL %s: %s\n", family.c_str(), runner.status().ToString().c_str());
    return false;
  }
  ModelRunner& r = **runner;
  std::vector<double> errors;
  g_errors = &errors;
  const int V = config->vocab_size;
  bool ok = true;
  double worst_step = 0, worst_tf = 0, worst_batch = 0;
  int greedy_checked = 0, greedy_mismatch = 0;
  std::vector<std::vector<int32_t>> tables;
  std::vector<std::vector<int32_t>> seqs_all;
  std::vector<std::vector<float>> last_logits;
  int next_block = 0;
  for (const auto& c : ref["cases"]) {
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
    const auto gaps = c["top2_gap"].get<std::vector<double>>();
    const int n = static_cast<int>(prompt.size());
    const int nb = (n + static_cast<int>(greedy.size()) + 16) / 16 + 1;
    std::vector<int32_t> table(nb);
    for (int i = 0; i < nb; ++i) table[i] = next_block + nb - 1 - i;  // reversed: exercises paging
    next_block += nb;
    tables.push_back(table);
    SequenceChunk ch;
    ch.seq_id = 1;
    ch.tokens = prompt;
    ch.start_pos = 0;
    ch.block_table = tables.back();
    ch.logits = Logits::kLast;
    auto logits = Run(r, {ch}, &ok);
    for (size_t i = 0; i < greedy.size() && ok; ++i) {
      worst_step = std::max(worst_step, Top5Error(c["top5"][i], logits.data(), V));
      if (gaps[i] > 0.05) {
        ++greedy_checked;
        greedy_mismatch += Argmax(logits.data(), V) != greedy[i];
      }
      if (i + 1 == greedy.size()) break;
      ch.tokens = absl::MakeConstSpan(&greedy[i], 1);
      ch.start_pos = n + static_cast<int32_t>(i);
      logits = Run(r, {ch}, &ok);
    }
    // Keep what the last decode step saw, to replay it in a batch below.
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), greedy.begin(), greedy.end());
    seqs_all.push_back(all);
    last_logits.push_back(logits);
    // Teacher-forced, one prefill (into fresh blocks) with every row's logits.
    std::vector<int32_t> table2(nb);
    for (int i = 0; i < nb; ++i) table2[i] = next_block + i;
    next_block += nb;
    SequenceChunk tf;
    tf.seq_id = 2;
    tf.tokens = all;
    tf.block_table = table2;
    tf.logits = Logits::kAll;
    auto rows = Run(r, {tf}, &ok);
    for (size_t i = 0; i < greedy.size() && ok; ++i) {
      const float* row = rows.data() + size_t(n - 1 + i) * V;
      worst_tf = std::max(worst_tf, Top5Error(c["teacher_forced_top5"][i], row, V));
      if (gaps[i] > 0.05) {
        ++greedy_checked;
        greedy_mismatch += Argmax(row, V) != greedy[i];
      }
    }
  }
  // Mixed batch: replay every case's last decode step together (their caches hold the
  // same keys), plus a fresh prefill chunk, in one Forward.
  {
    std::vector<SequenceChunk> batch;
    for (size_t i = 0; i < seqs_all.size(); ++i) {
      SequenceChunk ch;
      ch.seq_id = 10 + i;
      const int32_t last = static_cast<int32_t>(seqs_all[i].size()) - 2;
      ch.tokens = absl::MakeConstSpan(&seqs_all[i][last], 1);
      ch.start_pos = last;
      ch.block_table = tables[i];
      batch.push_back(ch);
    }
    std::vector<int32_t> table3(8);
    for (int i = 0; i < 8; ++i) table3[i] = next_block + i;
    SequenceChunk pre;
    pre.seq_id = 99;
    pre.tokens = absl::MakeConstSpan(seqs_all[0].data(), std::min<size_t>(seqs_all[0].size(), 100));
    pre.block_table = table3;
    pre.logits = Logits::kNone;
    batch.insert(batch.begin() + 1, pre);
    auto rows = Run(r, batch, &ok);
    for (size_t i = 0; i < seqs_all.size() && ok; ++i) {
      const float* row = rows.data() + i * V;
      double num = 0, den = 0;
      for (int v = 0; v < V; ++v) {
        const double d = double(row[v]) - last_logits[i][v];
        num += d * d;
        den += double(last_logits[i][v]) * last_logits[i][v];
      }
      worst_batch = std::max(worst_batch, std::isfinite(num) ? std::sqrt(num / den) : INFINITY);
    }
  }
  std::sort(errors.begin(), errors.end());
  const auto pct = [&](double q) { return errors.empty() ? 0.0 : errors[size_t(q * (errors.size() - 1))]; };
  const long over = std::count_if(errors.begin(), errors.end(), [](double e) { return e >= kTolerance; });
  std::printf("     %-10s per-row top5 error: median %.2e p90 %.2e p99 %.2e max %.2e; %ld of %zu rows >= %.0e\n",
              family.c_str(), pct(0.5), pct(0.9), pct(0.99), pct(1.0), over, errors.size(), kTolerance);
  g_errors = nullptr;
  const bool pass = ok && worst_step < kTolerance && worst_tf < kTolerance && greedy_mismatch == 0 &&
                    worst_batch < 1e-2;
  std::printf("%-4s %-10s %-32s top5 |dlogprob| stepwise %.3e teacher-forced %.3e; greedy %d/%d; batch-vs-single rel %.2e\n",
              pass ? "ok" : (enforce ? "FAIL" : "info"), family.c_str(), r.device_name().c_str(), worst_step, worst_tf,
              greedy_checked - greedy_mismatch, greedy_checked, worst_batch);
  return pass || !enforce;
}

// ---- Expert footprints ----

int g_fp_failed = 0, g_fp_passed = 0;
void Expect(bool cond, const std::string& what) {
  std::printf("%-4s footprints: %s\n", cond ? "ok" : "FAIL", what.c_str());
  (cond ? g_fp_passed : g_fp_failed)++;
}

struct Loaded {
  std::unique_ptr<Checkpoint> ckpt;
  ModelConfig config;
};

bool Load(const std::string& dir, Loaded* out) {
  auto config = LoadModelConfig(dir);
  auto ckpt = config.ok() ? Checkpoint::Open(dir) : absl::StatusOr<std::unique_ptr<Checkpoint>>(config.status());
  if (!ckpt.ok()) {
    Expect(false, dir + ": " + ckpt.status().ToString());
    return false;
  }
  out->config = *config;
  out->ckpt = *std::move(ckpt);
  return true;
}

// A runner created with MOE_CUDA_GRAPHS set to `graphs` (the runner reads it at creation).
std::unique_ptr<ModelRunner> MakeRunner(const Loaded& m, bool graphs, bool offload) {
  const char* prev = std::getenv("MOE_CUDA_GRAPHS");
  const std::string saved = prev ? prev : "";
  setenv("MOE_CUDA_GRAPHS", graphs ? "1" : "0", 1);
  RunnerOptions opts;
  opts.num_kv_blocks = 64;
  if (offload) {
    opts.offload.mode = "on";
    opts.offload.expert_cache_gb = 0.0006;  // 4 of the trained models' 32 bf16 experts
  }
  auto r = CreateCudaRunner(*m.ckpt, m.config, opts, CudaDType::kAuto);
  if (prev) {
    setenv("MOE_CUDA_GRAPHS", saved.c_str(), 1);
  } else {
    unsetenv("MOE_CUDA_GRAPHS");
  }
  if (!r.ok()) {
    Expect(false, "create runner: " + r.status().ToString());
    return nullptr;
  }
  return *std::move(r);
}

// Experts set per MoE layer ({-1} when the bitset has the wrong size).
std::vector<int> PerLayerCounts(const ExpertFootprint& fp, int moe_layers, int experts) {
  if (fp.bits.size() != (static_cast<size_t>(moe_layers) * experts + 63) / 64) return {-1};
  std::vector<int> n(moe_layers, 0);
  for (int key = 0; key < moe_layers * experts; ++key) n[key / experts] += (fp.bits[key / 64] >> (key % 64)) & 1;
  return n;
}

// Three sequences decoded together for six steps (one decode shape: graphed from the
// second step on when graphs are on), each step's tokens different, footprints asked for;
// then the same shape without footprints (must come back empty), then a 7-token prefill
// chunk (last in the batch) beside two decode chunks. Returns every footprint asked for,
// in order (6 x 3 + 3).
std::vector<ExpertFootprint> FootprintScenario(ModelRunner& r, const std::string& name) {
  std::vector<ExpertFootprint> all;
  const int V = r.config().vocab_size;
  std::vector<std::vector<int32_t>> tables(4);
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < 4; ++b) tables[s].push_back(s * 4 + b);
  }
  std::vector<int32_t> toks(3), prompt;
  for (int i = 0; i < 7; ++i) prompt.push_back((97 * i + 5) % V);
  for (int step = 0; step < 8; ++step) {
    ForwardBatch b;
    b.want_footprints = step != 6;
    for (int s = 0; s < 3; ++s) {
      toks[s] = (37 * s + 401 * step + 11) % V;
      SequenceChunk ch;
      ch.seq_id = s;
      ch.tokens = absl::MakeConstSpan(&toks[s], 1);
      ch.start_pos = step;
      ch.block_table = tables[s];
      b.seqs.push_back(ch);
    }
    if (step == 7) {  // seq 2's place goes to a prefill chunk of a fresh sequence
      b.seqs[2].seq_id = 3;
      b.seqs[2].tokens = prompt;
      b.seqs[2].start_pos = 0;
      b.seqs[2].block_table = tables[3];
    }
    ForwardResult out;
    out.footprints.resize(1);  // stale content the runner must replace or clear
    absl::Status st = r.Forward(b, &out);
    if (!st.ok()) {
      Expect(false, name + ": Forward: " + st.ToString());
      return {};
    }
    if (!b.want_footprints) {
      Expect(out.footprints.empty(), name + ": want_footprints=false gives no footprints");
      continue;
    }
    if (out.footprints.size() != b.seqs.size()) {
      Expect(false, name + ": one footprint per chunk");
      return {};
    }
    all.insert(all.end(), out.footprints.begin(), out.footprints.end());
  }
  return all;
}

std::string Describe(const ExpertFootprint& fp) {
  std::string s;
  for (uint64_t w : fp.bits) s += std::bitset<64>(w).to_string() + " ";
  return s;
}

void CheckScenario(const std::vector<ExpertFootprint>& fps, const ModelConfig& c, int moe_layers, const std::string& name) {
  const int k = c.num_experts_per_tok, E = c.num_experts;
  if (fps.size() != 6 * 3 + 3) {
    Expect(false, name + ": footprints of every step asked for");
    return;
  }
  bool decode_k = true, prefill_ok = true, moves = false;
  for (size_t i = 0; i < fps.size(); ++i) {
    const std::vector<int> n = PerLayerCounts(fps[i], moe_layers, E);
    const bool prefill = i + 1 == fps.size();
    for (int x : n) {
      if (prefill) {
        prefill_ok = prefill_ok && x >= k && x <= std::min(E, 7 * k);
      } else {
        decode_k = decode_k && x == k;
      }
    }
    if (!prefill && i >= 3 && fps[i].bits != fps[i % 3].bits) moves = true;
    if (fps[i].exact) decode_k = false;  // a step's footprint estimates the next step
  }
  Expect(decode_k, name + ": every one-token chunk uses exactly k experts per MoE layer (exact = false)");
  Expect(prefill_ok, name + ": a 7-token prefill chunk uses between k and 7k experts per MoE layer");
  Expect(moves, name + ": footprints change with the tokens across the steps");
}

void CheckFootprints() {
  for (const std::string name : {"standard", "router"}) {
    Loaded m;
    if (!Load("tests/data/models/trained/" + name, &m)) continue;
    const int moe_layers = m.config.num_layers;  // Mixtral-shaped: every layer is MoE
    auto graphed = MakeRunner(m, true, false);
    auto eager = MakeRunner(m, false, false);
    auto offloaded = MakeRunner(m, true, true);
    if (!graphed || !eager || !offloaded) continue;
    Expect(graphed->expert_footprint_keys() == moe_layers * m.config.num_experts,
           name + ": expert_footprint_keys() = MoE layers x experts (" + std::to_string(graphed->expert_footprint_keys()) + ")");
    Expect(graphed->expert_cache_slots() == 0, name + ": resident runner: expert_cache_slots() = 0");
    Expect(offloaded->expert_cache_slots() > 0 && offloaded->expert_footprint_keys() == graphed->expert_footprint_keys(),
           name + ": offloaded runner: expert_cache_slots() = " + std::to_string(offloaded->expert_cache_slots()));
    const auto g = FootprintScenario(*graphed, name + " graphs on");
    const auto e = FootprintScenario(*eager, name + " graphs off");
    const auto o = FootprintScenario(*offloaded, name + " offloaded");
    CheckScenario(g, m.config, moe_layers, name + " graphs on");
    bool same_e = !g.empty() && g.size() == e.size(), same_o = !g.empty() && g.size() == o.size();
    for (size_t i = 0; i < g.size() && same_e; ++i) same_e = g[i].bits == e[i].bits;
    for (size_t i = 0; i < g.size() && same_o; ++i) same_o = g[i].bits == o[i].bits;
    Expect(same_e, name + ": graph replays report the eager runner's footprints (not stale)");
    Expect(same_o, name + ": the offloaded runner reports the resident runner's footprints");

    // TokenFootprint: exact for the decoupled router, unavailable otherwise.
    ExpertFootprint tf;
    if (name != "router") {
      Expect(!graphed->TokenFootprint(5, &tf), name + ": TokenFootprint is unavailable without a decoupled router");
      continue;
    }
    Expect(!graphed->TokenFootprint(m.config.vocab_size, &tf), name + ": TokenFootprint refuses a token past the vocabulary");
    int equal = 0, tried = 0;
    const std::vector<int32_t> table = {60, 61, 62, 63};
    for (int i = 0; i < 10; ++i) {
      const int32_t t = i == 9 ? m.config.vocab_size - 1 : (409 * i + 3) % m.config.vocab_size;
      ExpertFootprint want;
      if (!graphed->TokenFootprint(t, &want) || !want.exact) {
        Expect(false, name + ": TokenFootprint(" + std::to_string(t) + ") returns an exact footprint");
        break;
      }
      ForwardBatch b;
      b.want_footprints = true;
      SequenceChunk ch;
      ch.seq_id = 100 + i;
      ch.tokens = absl::MakeConstSpan(&t, 1);
      ch.block_table = table;
      b.seqs.push_back(ch);
      ForwardResult out;
      ++tried;
      if (!graphed->Forward(b, &out).ok() || out.footprints.size() != 1) break;
      if (out.footprints[0].bits == want.bits) {
        ++equal;
      } else {
        std::printf("     token %d: TokenFootprint %s\n                 step           %s\n", t, Describe(want).c_str(),
                    Describe(out.footprints[0]).c_str());
      }
    }
    Expect(tried == 10 && equal == 10,
           name + ": TokenFootprint(t) equals a one-token step's footprint (" + std::to_string(equal) + "/10)");
  }
  Loaded m;
  if (Load("tests/data/models/trained/pregated", &m)) {
    auto r = MakeRunner(m, true, false);
    ExpertFootprint tf;
    if (r) Expect(!r->TokenFootprint(5, &tf), "pregated: TokenFootprint is unavailable without a decoupled router");
  }
}

}  // namespace
}  // namespace moe::engine

// Enforced: fp32 storage (the precision the fp32 references are comparable with). Also
// reported, not enforced: the default dtype (the checkpoint's: bf16 for mixtral/qwen3,
// fp32 for qwen2_moe, fp16 for olmoe) and bf16, whose rounding alone moves logprobs past
// 2e-2 on these tiny test models (tools/gpu/rounding_probe shows it on the CPU).
int main() {
  using moe::engine::CudaDType;
  int failed = 0;
  const char* families[] = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};
  for (const char* f : families) failed += !moe::engine::CheckFamily(f, CudaDType::kF32, true);
  for (const char* f : families) moe::engine::CheckFamily(f, CudaDType::kAuto, false);
  for (const char* f : families) moe::engine::CheckFamily(f, CudaDType::kBF16, false);
  moe::engine::CheckFootprints();
  const int fp_failed = moe::engine::g_fp_failed, fp_passed = moe::engine::g_fp_passed;
  std::printf("%d passed, %d failed\n", 4 - failed + fp_passed, failed + fp_failed);
  return failed + fp_failed ? 1 : 0;
}
