// Times the CPU runner on a small synthetic OLMoE-shaped model: a 128-token prefill,
// then decode steps at batch 1 and batch 8. Usage: decode_bench [threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "engine/cpu/cpu_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/test_model.h"

using namespace moe::engine;

int main(int argc, char** argv) {
  testing::TestModelSpec spec;
  spec.arch = Architecture::kOlmoe;
  spec.vocab_size = 8192;
  spec.hidden_size = 512;
  spec.num_layers = 4;
  spec.num_heads = 8;
  spec.num_kv_heads = 8;
  spec.head_dim = 64;
  spec.num_experts = 32;
  spec.top_k = 4;
  spec.moe_intermediate_size = 256;
  spec.max_position_embeddings = 4096;
  const std::string dir = testing::MakeTempDir("decode_bench");
  if (!testing::WriteTestModel(dir, spec).ok()) return 1;
  auto config = LoadModelConfig(dir);
  auto ckpt = Checkpoint::Open(dir);
  if (!config.ok() || !ckpt.ok()) return 1;
  RunnerOptions opts;
  opts.num_kv_blocks = 512;
  opts.num_threads = argc > 1 ? std::atoi(argv[1]) : 0;
  auto runner = CreateCpuRunner(**ckpt, *config, opts);
  if (!runner.ok()) {
    std::fprintf(stderr, "%s\n", runner.status().ToString().c_str());
    return 1;
  }
  using Clock = std::chrono::steady_clock;
  const int B = 8, P = 128, steps = 20;
  std::vector<std::vector<int32_t>> prompts(B, std::vector<int32_t>(P));
  std::vector<std::vector<int32_t>> tables(B);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < P; ++t) prompts[b][t] = (b * 131 + t * 17) % spec.vocab_size;
    for (int k = 0; k < 16; ++k) tables[b].push_back(b * 16 + k);
  }
  ForwardResult out;
  auto t0 = Clock::now();
  for (int b = 0; b < B; ++b) {
    ForwardBatch batch;
    batch.seqs.push_back({b, prompts[b], 0, tables[b], SequenceChunk::Logits::kLast});
    if (!(*runner)->Forward(batch, &out).ok()) return 1;
  }
  double prefill_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("prefill: %d x %d tokens in %.3f s (%.0f tok/s)\n", B, P, prefill_s, B * P / prefill_s);
  for (int bs : {1, B}) {
    std::vector<int32_t> tok(B, 5);
    auto t1 = Clock::now();
    for (int s = 0; s < steps; ++s) {
      ForwardBatch batch;
      for (int b = 0; b < bs; ++b) {
        batch.seqs.push_back({b, absl::MakeConstSpan(&tok[b], 1), P + s + (bs == B ? steps : 0),
                              tables[b], SequenceChunk::Logits::kLast});
      }
      if (!(*runner)->Forward(batch, &out).ok()) return 1;
    }
    double dt = std::chrono::duration<double>(Clock::now() - t1).count() / steps;
    std::printf("decode batch %d: %.2f ms/step (%.0f tok/s)\n", bs, dt * 1e3, bs / dt);
  }
  return 0;
}
