// Offline benchmark of the CUDA runner (no server, no scheduler): prefill and decode
// throughput for a checkpoint directory, with the roofline ratio of each decode row.
//
//   engine_bench --model DIR [--dtype auto|bf16|fp16|fp32] [--batches 1,16,64]
//                [--context 128] [--steps 64] [--prompt 512] [--json-out FILE]
//
// Decode at batch B: B sequences are prefilled with `context` random tokens, then
// `steps` decode steps run (one token per sequence per step, last-row logits copied back
// as the server would), timed with the host clock around whole steps (Forward
// synchronises). Prefill: one `prompt`-token sequence, last-row logits.
// Roofline: the bytes a decode step must read — dense weights once (attention, router,
// shared experts, lm_head), each active expert's weights once (active = the expected
// number of distinct experts under uniform routing, E * (1 - (1 - k/E)^B) per MoE layer),
// and the KV cache once — over the device-to-device copy bandwidth measured in this run
// (read + write bytes per second, as cudaMemcpy reports it). ratio = roofline time /
// measured time. It is a benchmark, never a test.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cuda/cuda_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"

namespace moe::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Device-to-device copy bandwidth (read + write bytes / s) over a 1 GiB buffer.
double MeasureCopyBandwidth() {
  const size_t n = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) return 0;
  cudaMemset(a, 1, n);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int i = 0; i < 3; ++i) cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
  std::vector<float> ms;
  for (int i = 0; i < 10; ++i) {
    cudaEventRecord(e0);
    cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaFree(a);
  cudaFree(b);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return 2.0 * n / (ms[ms.size() / 2] * 1e-3);
}

struct Row {
  std::string phase;
  int batch = 0;
  double tokens_per_s = 0, ms_per_step = 0, roofline_ratio = 0, bytes_per_step = 0;
};

// Bytes one decode step at batch B with `ctx` context tokens per sequence must read.
double DecodeBytes(const ModelConfig& c, double elem, int B, int ctx) {
  const double H = c.hidden_size, Q = c.q_size(), KV = c.kv_size();
  double dense = 0, experts = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    dense += H * (Q + 2 * KV) + Q * H + 2 * H;
    if (c.IsMoeLayer(l)) {
      const double E = c.num_experts, k = c.num_experts_per_tok;
      const double active = E * (1.0 - std::pow(1.0 - k / E, B));
      experts += active * 3.0 * H * c.moe_intermediate_size;
      dense += E * H;
      if (c.shared_expert_intermediate_size > 0) dense += 3.0 * H * c.shared_expert_intermediate_size + H;
    } else {
      dense += 3.0 * H * c.intermediate_size;
    }
  }
  dense += double(c.vocab_size) * H;  // lm_head
  const double kv = double(B) * ctx * c.num_layers * 2 * KV;
  return (dense + experts + kv) * elem;
}

int Main(int argc, char** argv) {
  std::string model, dtype_s = "auto", json_out;
  std::vector<int> batches = {1, 16, 64};
  int context = 128, steps = 64, prompt = 512;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--model") model = next();
    else if (a == "--dtype") dtype_s = next();
    else if (a == "--json-out") json_out = next();
    else if (a == "--context") context = std::atoi(next().c_str());
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--prompt") prompt = std::atoi(next().c_str());
    else if (a == "--batches") {
      batches.clear();
      std::stringstream ss(next());
      std::string t;
      while (std::getline(ss, t, ',')) batches.push_back(std::atoi(t.c_str()));
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr, "--model DIR is required\n");
    return 2;
  }
  auto dtype = ParseCudaDType(dtype_s);
  auto config = LoadModelConfig(model);
  if (!dtype.ok() || !config.ok()) {
    std::fprintf(stderr, "%s\n", (!dtype.ok() ? dtype.status() : config.status()).ToString().c_str());
    return 1;
  }
  auto ckpt = Checkpoint::Open(model);
  if (!ckpt.ok()) {
    std::fprintf(stderr, "%s\n", ckpt.status().ToString().c_str());
    return 1;
  }
  const int max_b = *std::max_element(batches.begin(), batches.end());
  const int blocks_per_seq = (std::max(context + steps + 8, prompt + 8) + 15) / 16;
  RunnerOptions opts;
  opts.num_kv_blocks = blocks_per_seq * (max_b + 1);
  const auto t_load = Clock::now();
  auto runner = CreateCudaRunner(**ckpt, *config, opts, *dtype);
  if (!runner.ok()) {
    std::fprintf(stderr, "%s\n", runner.status().ToString().c_str());
    return 1;
  }
  ModelRunner& r = **runner;
  std::printf("model %s on %s: loaded in %.1f s\n", model.c_str(), r.device_name().c_str(),
              Seconds(t_load, Clock::now()));
  const double bw = MeasureCopyBandwidth();
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", bw / 1e9);
  const std::string dn = r.device_name();
  const double elem = dn.find("(fp32)") != std::string::npos ? 4 : 2;

  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> tok(0, config->vocab_size - 1);
  auto table_for = [&](int s) {
    std::vector<int32_t> t(blocks_per_seq);
    for (int i = 0; i < blocks_per_seq; ++i) t[i] = s * blocks_per_seq + i;
    return t;
  };
  std::vector<Row> rows;
  bool ok = true;
  auto forward = [&](ForwardBatch& b, ForwardResult* out) {
    absl::Status s = r.Forward(b, out);
    if (!s.ok()) {
      std::fprintf(stderr, "Forward: %s\n", s.ToString().c_str());
      ok = false;
    }
  };

  // Prefill.
  {
    std::vector<int32_t> toks(prompt);
    for (auto& t : toks) t = tok(rng);
    const std::vector<int32_t> table = table_for(0);
    std::vector<double> secs;
    for (int rep = 0; rep < 4 && ok; ++rep) {
      ForwardBatch b;
      SequenceChunk ch;
      ch.seq_id = 1;
      ch.tokens = toks;
      ch.block_table = table;
      ch.logits = SequenceChunk::Logits::kLast;
      b.seqs.push_back(ch);
      ForwardResult out;
      const auto t0 = Clock::now();
      forward(b, &out);
      if (rep > 0) secs.push_back(Seconds(t0, Clock::now()));
    }
    if (ok) {
      std::sort(secs.begin(), secs.end());
      Row row;
      row.phase = "prefill";
      row.batch = 1;
      row.ms_per_step = secs[secs.size() / 2] * 1e3;
      row.tokens_per_s = prompt / secs[secs.size() / 2];
      rows.push_back(row);
    }
  }
  // Decode.
  for (int B : batches) {
    if (!ok) break;
    std::vector<std::vector<int32_t>> tables(B), seqs(B);
    ForwardBatch pre;
    for (int s = 0; s < B; ++s) {
      tables[s] = table_for(s);
      seqs[s].resize(context);
      for (auto& t : seqs[s]) t = tok(rng);
    }
    for (int s = 0; s < B; ++s) {
      SequenceChunk ch;
      ch.seq_id = s;
      ch.tokens = seqs[s];
      ch.block_table = tables[s];
      ch.logits = SequenceChunk::Logits::kNone;
      pre.seqs.push_back(ch);
    }
    ForwardResult out;
    forward(pre, &out);
    std::vector<int32_t> next(B);
    for (auto& t : next) t = tok(rng);
    const int warm = 3;
    Clock::time_point t0;
    for (int step = 0; step < warm + steps && ok; ++step) {
      if (step == warm) t0 = Clock::now();
      ForwardBatch b;
      for (int s = 0; s < B; ++s) {
        SequenceChunk ch;
        ch.seq_id = s;
        ch.tokens = absl::MakeConstSpan(&next[s], 1);
        ch.start_pos = context + step;
        ch.block_table = tables[s];
        ch.logits = SequenceChunk::Logits::kLast;
        b.seqs.push_back(ch);
      }
      forward(b, &out);
      for (int s = 0; s < B && ok; ++s) {  // greedy, as a server would sample
        const float* lg = out.logits.data() + size_t(s) * out.vocab_size;
        next[s] = static_cast<int32_t>(std::max_element(lg, lg + out.vocab_size) - lg);
      }
    }
    if (!ok) break;
    const double sec = Seconds(t0, Clock::now());
    Row row;
    row.phase = "decode";
    row.batch = B;
    row.ms_per_step = sec / steps * 1e3;
    row.tokens_per_s = double(B) * steps / sec;
    row.bytes_per_step = DecodeBytes(*config, elem, B, context + warm + steps / 2);
    row.roofline_ratio = bw > 0 ? (row.bytes_per_step / bw) / (sec / steps) : 0;
    rows.push_back(row);
  }
  std::printf("\n| phase | batch | tokens/s | ms/step | GB read/step | roofline tok/s | ratio |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Row& row : rows) {
    if (row.phase == "prefill") {
      std::printf("| prefill (%d-token prompt) | 1 | %.0f | %.2f | | | |\n", prompt, row.tokens_per_s, row.ms_per_step);
    } else {
      const double roof = bw / row.bytes_per_step * row.batch;
      std::printf("| decode | %d | %.1f | %.2f | %.3f | %.0f | %.2f |\n", row.batch, row.tokens_per_s,
                  row.ms_per_step, row.bytes_per_step / 1e9, roof, row.roofline_ratio);
    }
  }
  if (!json_out.empty()) {
    std::ofstream js(json_out);
    const char* commit = std::getenv("MOE_COMMIT");
    js << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      js << "  {\"device\": \"" << dn << "\", \"commit\": \"" << (commit ? commit : "unknown")
         << "\", \"model\": \"" << model << "\", \"phase\": \"" << row.phase << "\", \"batch\": " << row.batch
         << ", \"tokens_per_s\": " << row.tokens_per_s << ", \"ms_per_step\": " << row.ms_per_step
         << ", \"roofline_ratio\": " << row.roofline_ratio << ", \"copy_bw_bytes_per_s\": " << bw << "}"
         << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    js << "]\n";
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace moe::engine

int main(int argc, char** argv) { return moe::engine::Main(argc, argv); }
