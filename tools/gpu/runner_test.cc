// End-to-end check of the CUDA runner against transformers' fp32 references in
// tests/data/reference/<family>.json, for all four families: stepwise (prefill the
// prompt, then one decode step per reference token, feeding the reference's greedy ids)
// and teacher-forced (one prefill over prompt + continuation, every row's logits). Top-5
// logprobs must be within 2e-2 of the reference; the argmax must equal the reference's
// greedy id wherever the reference's top-2 gap exceeds 0.05. A mixed batch (one decode
// step of every case at once) must give the same logits as the single-sequence steps.
// Needs a GPU; run from the repository root.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

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
  std::printf("%d passed, %d failed\n", 4 - failed, failed);
  return failed ? 1 : 0;
}
