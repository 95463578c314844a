// Offline benchmark of the CUDA runner (no server, no scheduler): prefill and decode
// throughput for a checkpoint directory, with the roofline ratio of each decode row.
//
//   engine_bench (--model DIR | --synthetic PROFILE [--routing standard|pregated|router]
//                 [--seed 1] [--distinct-experts 16] [--threads N])
//                [--dtype auto|bf16|fp16|fp32] [--batches 1,16,64]
//                [--context 128] [--steps 64] [--prompt 512] [--json-out FILE]
//                [--offload on|off|auto] [--cache-fraction F[,F...] | --expert-cache-gb G]
//                [--prefetch auto|off|next-gate|pregate|router[,...]] [--prefetch-depth D]
//                [--policy lru|lfu|belady] [--compare-resident] [--host-sampling]
//
// --synthetic builds a built-in profile's model in host memory (bench_model_source.h):
// exact dense weights, routed experts cycling through --distinct-experts buffers, so the
// offload pool's pinned copy is the only full-size one; rows are labelled
// "synthetic:PROFILE:ROUTING". Lists of cache fractions and prefetch modes run one
// offloaded pass per (fraction, prefetch) pair over the same model, each pass creating and
// destroying its runner (one pinned pool at a time), every row labelled with its pair.
//
// With --offload on, each decode row also reports the expert cache: hit rate, prefetch
// precision, PCIe GB/s achieved (expert bytes copied / time), the share of the time the
// link was busy (bytes / pinned host-to-device bandwidth measured in this run / time),
// stall ms per step (compute stream waiting for copies) and stall / transfer time, and the
// bound: batch / max(resident step time, miss bytes per step / pinned H2D bandwidth).
// The resident step time comes from a first pass with every expert on the GPU
// (--compare-resident; where the model does not fit, that pass fails with the runner's
// error and is skipped), else the bound uses the copies alone.
//
// Decode at batch B: B sequences are prefilled with `context` random tokens, then
// `steps` decode steps run (one token per sequence per step, greedy-sampled on the GPU as
// the server does; --host-sampling copies every row's logits back and takes the argmax on
// the host instead), timed with the host clock around whole steps (Forward
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
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/cuda/cuda_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "tools/gpu/bench_model_source.h"
#include "tools/gpu/device_rates.h"

namespace moe::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// FLOPs of a prefill of n tokens (one causal sequence): every projection, the routed
// experts (k per token), shared experts, the causal attention scores and values, and the
// lm_head row of the last token.
double PrefillFlops(const ModelConfig& c, int n) {
  const double H = c.hidden_size, Q = c.q_size(), KV = c.kv_size(), N = n;
  double f = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    f += 2 * N * H * (Q + 2 * KV) + 2 * N * Q * H;
    f += 2.0 * N * (N + 1) * c.num_heads * c.head_dim;  // QK^T and PV over the causal half
    if (c.IsMoeLayer(l)) {
      f += 2 * N * H * c.num_experts + 6 * N * c.num_experts_per_tok * H * c.moe_intermediate_size;
      if (c.shared_expert_intermediate_size > 0) f += 6 * N * H * c.shared_expert_intermediate_size;
    } else {
      f += 6 * N * H * c.intermediate_size;
    }
  }
  return f + 2 * H * c.vocab_size;
}

struct Row {
  std::string phase;
  int batch = 0;
  double tokens_per_s = 0, ms_per_step = 0, roofline_ratio = 0, bytes_per_step = 0;
  double tflops = 0, gemm_ratio = 0;  // prefill rows: achieved TFLOP/s, over the GEMM rate
  // Offload rows.
  bool offload = false;
  double cache_fraction = 0, expert_cache_gb = 0;  // the pass's (offload rows)
  std::string prefetch;
  double hit_rate = 0, prefetch_precision = -1, pcie_gbps = 0, pcie_busy = 0, stall_ms = 0,
         stall_fraction = 0, bound_tokens_per_s = 0;
};

// Counter deltas between two offload snapshots.
struct OffloadDelta {
  int64_t hits = 0, misses = 0, predicted = 0, correct = 0;
  double h2d = 0, stall = 0;
};
OffloadDelta Delta(const std::optional<OffloadStats>& a, const std::optional<OffloadStats>& b) {
  OffloadDelta d;
  if (!a || !b) return d;
  auto sum = [](const OffloadStats& s, int64_t OffloadLayerStats::*f) {
    int64_t t = 0;
    for (const auto& l : s.layers) t += l.*f;
    return t;
  };
  d.hits = sum(*b, &OffloadLayerStats::hits) - sum(*a, &OffloadLayerStats::hits);
  d.misses = sum(*b, &OffloadLayerStats::misses) - sum(*a, &OffloadLayerStats::misses);
  d.predicted = sum(*b, &OffloadLayerStats::predicted) - sum(*a, &OffloadLayerStats::predicted);
  d.correct = sum(*b, &OffloadLayerStats::predicted_correct) - sum(*a, &OffloadLayerStats::predicted_correct);
  d.h2d = double(b->h2d_bytes) - double(a->h2d_bytes);
  d.stall = b->stall_seconds_sum - a->stall_seconds_sum;
  return d;
}

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

// Splits a comma-separated flag value; an empty item is an error (caught by the callers'
// parsers).
std::vector<std::string> SplitList(const std::string& v) {
  std::vector<std::string> out;
  std::stringstream ss(v);
  std::string t;
  while (std::getline(ss, t, ',')) out.push_back(t);
  if (!v.empty() && v.back() == ',') out.push_back("");
  return out;
}

// Parses --cache-fraction's list: every item a number in [0, 1] (0: not set, as before).
bool ParseFractions(const std::string& v, std::vector<double>* out) {
  out->clear();
  for (const std::string& t : SplitList(v)) {
    char* end = nullptr;
    const double f = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0' || !(f >= 0 && f <= 1)) {
      std::fprintf(stderr, "--cache-fraction: '%s' is not a fraction in [0, 1] (list: 0.25,0.5)\n", t.c_str());
      return false;
    }
    out->push_back(f);
  }
  return !out->empty();
}

int Main(int argc, char** argv) {
  BenchModelFlags source;
  std::string dtype_s = "auto", json_out;
  std::vector<int> batches = {1, 16, 64};
  int context = 128, steps = 64, prompt = 512;
  RunnerOptions base;
  std::vector<double> cache_fractions;  // empty: --expert-cache-gb (or the runner) decides
  std::vector<std::string> prefetches;  // empty: OffloadOptions' default
  bool compare_resident = false, host_sampling = false;
  base.offload.mode = "off";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (IsBenchModelFlag(a)) {
      if (absl::Status st = ParseBenchModelFlag(a, next(), &source); !st.ok()) {
        std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
        return 2;
      }
    }
    else if (a == "--dtype") dtype_s = next();
    else if (a == "--json-out") json_out = next();
    else if (a == "--context") context = std::atoi(next().c_str());
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--prompt") prompt = std::atoi(next().c_str());
    else if (a == "--offload") base.offload.mode = next();
    else if (a == "--cache-fraction") {
      if (!ParseFractions(next(), &cache_fractions)) return 2;
    }
    else if (a == "--expert-cache-gb") base.offload.expert_cache_gb = std::atof(next().c_str());
    else if (a == "--prefetch") {
      prefetches = SplitList(next());
      for (const std::string& p : prefetches) {
        if (p.empty()) {
          std::fprintf(stderr, "--prefetch: empty item in the list (e.g. off,auto)\n");
          return 2;
        }
      }
      if (prefetches.empty()) {
        std::fprintf(stderr, "--prefetch needs a value (e.g. off,auto)\n");
        return 2;
      }
    }
    else if (a == "--prefetch-depth") base.offload.prefetch_depth = std::atoi(next().c_str());
    else if (a == "--policy") base.offload.policy = next();
    else if (a == "--compare-resident") compare_resident = true;
    else if (a == "--host-sampling") host_sampling = true;
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
  if (absl::Status st = ValidateBenchModelFlags(source); !st.ok()) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (batches.empty()) {
    std::fprintf(stderr, "--batches needs at least one batch size\n");
    return 2;
  }
  auto dtype = ParseCudaDType(dtype_s);
  if (!dtype.ok()) {
    std::fprintf(stderr, "%s\n", dtype.status().ToString().c_str());
    return 1;
  }
  // Built or opened once; every pass below binds its own runner to it.
  auto bench_model = BenchModel::Load(source);
  if (!bench_model.ok()) {
    std::fprintf(stderr, "%s\n", bench_model.status().ToString().c_str());
    return 1;
  }
  const Checkpoint& ckpt = (*bench_model)->checkpoint();
  const ModelConfig* config = &(*bench_model)->config();
  const std::string& model = (*bench_model)->label();
  const int max_b = *std::max_element(batches.begin(), batches.end());
  // Decode sequence s owns blocks [s * blocks_per_seq, ...); the prefill prompt the blocks
  // after the last decode sequence's.
  const int blocks_per_seq = (context + steps + 8 + 15) / 16;
  const int prompt_blocks = (prompt + 8 + 15) / 16;
  base.num_kv_blocks = blocks_per_seq * max_b + prompt_blocks;
  // Expert bytes in the storage type: 3 * hidden * inter per expert of every MoE layer.
  double all_expert_bytes = 0;
  {
    const double elem_guess = dtype_s == "fp32" ? 4 : 2;
    double experts = 0;
    for (int l = 0; l < config->num_layers; ++l) {
      if (config->IsMoeLayer(l)) experts += config->num_experts;
    }
    all_expert_bytes = experts * 3.0 * config->hidden_size * config->moe_intermediate_size * elem_guess;
  }
  // The offloaded passes: one per (cache fraction, prefetch) pair, fractions outermost.
  struct PassSpec {
    RunnerOptions opts;
    double cache_fraction = 0;  // 0: not given
  };
  std::vector<PassSpec> passes;
  {
    const std::vector<double> fracs = cache_fractions.empty() ? std::vector<double>{0} : cache_fractions;
    const std::vector<std::string> pfs =
        prefetches.empty() ? std::vector<std::string>{base.offload.prefetch} : prefetches;
    if (base.offload.mode == "off" && fracs.size() * pfs.size() > 1) {
      std::fprintf(stderr, "note: --offload off: the cache-fraction / prefetch lists are ignored (one pass)\n");
    }
    for (double f : fracs) {
      for (const std::string& pf : pfs) {
        PassSpec p{base, f};
        p.opts.offload.prefetch = pf;
        // A hair over the fraction so that rounding down to whole slots keeps it.
        if (f > 0) p.opts.offload.expert_cache_gb = f * all_expert_bytes / double(1ull << 30) * 1.0001;
        passes.push_back(p);
        if (base.offload.mode == "off") break;
      }
      if (base.offload.mode == "off") break;
    }
  }
  const double bw = MeasureCopyBandwidth();
  std::printf("device-to-device copy: %.0f GB/s (read + write)\n", bw / 1e9);
  const double gemm = MeasureGemmFlops();
  std::printf("cuBLAS bf16 GEMM 8192^3: %.1f TFLOP/s\n", gemm / 1e12);
  const double h2d_bw = base.offload.mode == "off" ? 0 : MeasurePinnedH2D();
  if (h2d_bw > 0) std::printf("pinned host-to-device copy: %.1f GB/s\n", h2d_bw / 1e9);
  std::string dn;
  std::vector<Row> rows;
  std::map<int, double> resident_step_s;  // batch -> seconds per decode step, all resident
  bool ok = true;  // the current pass; reset by each

  // Runs one pass; false when its runner could not be created (nothing measured).
  auto run_pass = [&](const PassSpec& pass) -> bool {
    const RunnerOptions& opts = pass.opts;
    ok = true;
    const auto t_load = Clock::now();
    auto runner = CreateCudaRunner(ckpt, *config, opts, *dtype);
    if (!runner.ok()) {
      std::fprintf(stderr, "%s\n", runner.status().ToString().c_str());
      ok = false;
      return false;
    }
    ModelRunner& r = **runner;
    std::printf("model %s on %s: loaded in %.1f s (offload %s", model.c_str(), r.device_name().c_str(),
                Seconds(t_load, Clock::now()), opts.offload.mode.c_str());
    if (opts.offload.mode != "off") {
      if (pass.cache_fraction > 0) std::printf(", cache fraction %g", pass.cache_fraction);
      std::printf(", prefetch %s", opts.offload.prefetch.c_str());
    }
    std::printf(")\n");
    dn = r.device_name();
    dn = dn.substr(0, dn.find(", experts offloaded"));  // the card and dtype; the pass is in each row
    const bool offloaded = r.offload_stats().has_value();
    auto label_row = [&](Row& row) {
      row.cache_fraction = pass.cache_fraction;
      row.expert_cache_gb = opts.offload.expert_cache_gb;
      row.prefetch = opts.offload.prefetch;
    };
    const double elem = dn.find("(fp32)") != std::string::npos ? 4 : 2;
    std::mt19937 rng(1);
    std::uniform_int_distribution<int32_t> tok(0, config->vocab_size - 1);
    auto table_for = [&](int s) {
      std::vector<int32_t> t(blocks_per_seq);
      for (int i = 0; i < blocks_per_seq; ++i) t[i] = s * blocks_per_seq + i;
      return t;
    };
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
      std::vector<int32_t> table(prompt_blocks);
      for (int i = 0; i < prompt_blocks; ++i) table[i] = blocks_per_seq * max_b + i;
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
        row.offload = offloaded;
        label_row(row);
        row.ms_per_step = secs[secs.size() / 2] * 1e3;
        row.tokens_per_s = prompt / secs[secs.size() / 2];
        row.tflops = PrefillFlops(*config, prompt) / secs[secs.size() / 2] / 1e12;
        row.gemm_ratio = gemm > 0 ? row.tflops * 1e12 / gemm : 0;
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
      std::optional<OffloadStats> before;
      for (int step = 0; step < warm + steps && ok; ++step) {
        if (step == warm) {
          before = r.offload_stats();
          t0 = Clock::now();
        }
        ForwardBatch b;
        for (int s = 0; s < B; ++s) {
          SequenceChunk ch;
          ch.seq_id = s;
          ch.tokens = absl::MakeConstSpan(&next[s], 1);
          ch.start_pos = context + step;
          ch.block_table = tables[s];
          ch.logits = SequenceChunk::Logits::kLast;
          ch.sampling.enabled = !host_sampling;  // greedy on the device
          b.seqs.push_back(ch);
        }
        forward(b, &out);
        for (int s = 0; s < B && ok; ++s) {  // greedy, as a server would sample
          if (static_cast<size_t>(s) < out.tokens.size() && out.tokens[s] >= 0) {
            next[s] = out.tokens[s];
            continue;
          }
          const float* lg = out.logits.data() + size_t(s) * out.vocab_size;
          next[s] = static_cast<int32_t>(std::max_element(lg, lg + out.vocab_size) - lg);
        }
      }
      if (!ok) break;
      const double sec = Seconds(t0, Clock::now());
      Row row;
      row.phase = "decode";
      row.batch = B;
      row.offload = offloaded;
      label_row(row);
      row.ms_per_step = sec / steps * 1e3;
      row.tokens_per_s = double(B) * steps / sec;
      row.bytes_per_step = DecodeBytes(*config, elem, B, context + warm + steps / 2);
      row.roofline_ratio = bw > 0 ? (row.bytes_per_step / bw) / (sec / steps) : 0;
      if (!offloaded) resident_step_s[B] = sec / steps;
      if (offloaded) {
        const OffloadDelta d = Delta(before, r.offload_stats());
        row.hit_rate = d.hits + d.misses > 0 ? double(d.hits) / (d.hits + d.misses) : 0;
        row.prefetch_precision = d.predicted > 0 ? double(d.correct) / d.predicted : -1;
        row.pcie_gbps = d.h2d / sec / 1e9;
        const double transfer_s = h2d_bw > 0 ? d.h2d / h2d_bw : 0;
        row.pcie_busy = transfer_s / sec;
        row.stall_ms = d.stall / steps * 1e3;
        row.stall_fraction = transfer_s > 0 ? d.stall / transfer_s : 0;
        const double compute_s = resident_step_s.count(B) ? resident_step_s[B] : 0;
        const double bound_s = std::max(compute_s, transfer_s / steps);
        row.bound_tokens_per_s = bound_s > 0 ? B / bound_s : 0;
      }
      rows.push_back(row);
    }
    return true;
  };
  bool failed = false;
  if (base.offload.mode != "off" && compare_resident) {
    PassSpec resident{base, 0};
    resident.opts.offload.mode = "off";
    if (!run_pass(resident)) {
      // A model larger than the GPU: the offloaded passes still run, bounded by copies alone.
      std::printf("resident pass skipped (the runner's error above); the bound uses the copies alone\n");
    } else if (!ok) {
      failed = true;
    }
  }
  for (const PassSpec& pass : passes) {
    // Each runner (and its pinned pool) is destroyed before the next is created.
    if (!run_pass(pass) || !ok) failed = true;
  }
  if (rows.empty()) return 1;
  std::printf("\n| phase | offload | cache fraction | prefetch | batch | tokens/s | ms/step | GB read/step | roofline tok/s | ratio | hit rate | prefetch precision | PCIe GB/s | PCIe busy | stall ms/step | stall/transfer | bound tok/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row& row : rows) {
    const char* off = row.offload ? "on" : "off";
    char frac[32] = "", cache[96] = "";
    if (row.offload) {
      if (row.cache_fraction > 0) std::snprintf(frac, sizeof frac, "%g", row.cache_fraction);
      else std::snprintf(frac, sizeof frac, "%s", row.expert_cache_gb > 0 ? "-" : "auto");
      std::snprintf(cache, sizeof cache, "%s | %s", frac, row.prefetch.c_str());
    } else {
      std::snprintf(cache, sizeof cache, " | ");
    }
    if (row.phase == "prefill") {
      std::printf("| prefill (%d-token prompt) | %s | %s | 1 | %.0f | %.2f | | | | | | | | | | |  %.1f TFLOP/s, %.2f of the GEMM rate\n",
                  prompt, off, cache, row.tokens_per_s, row.ms_per_step, row.tflops, row.gemm_ratio);
    } else if (!row.offload) {
      const double roof = bw / row.bytes_per_step * row.batch;
      std::printf("| decode | off | %s | %d | %.1f | %.2f | %.3f | %.0f | %.2f | | | | | | | |\n", cache, row.batch,
                  row.tokens_per_s, row.ms_per_step, row.bytes_per_step / 1e9, roof, row.roofline_ratio);
    } else {
      std::printf("| decode | on | %s | %d | %.1f | %.2f | | | | %.3f | %s | %.1f | %.2f | %.2f | %.2f | %.1f |\n", cache,
                  row.batch, row.tokens_per_s, row.ms_per_step, row.hit_rate,
                  row.prefetch_precision < 0 ? "-" : std::to_string(row.prefetch_precision).substr(0, 5).c_str(),
                  row.pcie_gbps, row.pcie_busy, row.stall_ms, row.stall_fraction, row.bound_tokens_per_s);
    }
  }
  if (!json_out.empty()) {
    std::ofstream js(json_out);
    const char* commit = std::getenv("MOE_COMMIT");
    const std::string& routing = (*bench_model)->routing();
    js << "[\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      js << "  {\"device\": \"" << dn << "\", \"commit\": \"" << (commit ? commit : "unknown")
         << "\", \"model\": \"" << model << "\", \"phase\": \"" << row.phase << "\", \"batch\": " << row.batch
         << ", \"tokens_per_s\": " << row.tokens_per_s << ", \"ms_per_step\": " << row.ms_per_step
         << ", \"roofline_ratio\": " << row.roofline_ratio << ", \"copy_bw_bytes_per_s\": " << bw
         << ", \"offload\": " << (row.offload ? "true" : "false");
      if (row.phase == "prefill") {
        js << ", \"prompt_tokens\": " << prompt << ", \"tflops\": " << row.tflops
           << ", \"gemm_tflops\": " << gemm / 1e12 << ", \"gemm_ratio\": " << row.gemm_ratio;
      }
      if (row.offload) {
        js << ", \"cache_fraction\": " << row.cache_fraction << ", \"expert_cache_gb\": " << row.expert_cache_gb
           << ", \"routing\": \"" << routing << "\", \"prefetch\": \"" << row.prefetch
           << "\", \"prefetch_depth\": " << base.offload.prefetch_depth << ", \"policy\": \"" << base.offload.policy
           << "\", \"hit_rate\": " << row.hit_rate << ", \"prefetch_precision\": "
           << (row.prefetch_precision < 0 ? std::string("null") : std::to_string(row.prefetch_precision))
           << ", \"pcie_gbps\": " << row.pcie_gbps << ", \"pcie_busy_fraction\": " << row.pcie_busy
           << ", \"stall_ms_per_step\": " << row.stall_ms << ", \"stall_fraction\": " << row.stall_fraction
           << ", \"bound_tokens_per_s\": " << row.bound_tokens_per_s << ", \"h2d_bytes_per_s\": " << h2d_bw;
      }
      js << "}" << (i + 1 < rows.size() ? ",\n" : "\n");
    }
    js << "]\n";
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace moe::engine

int main(int argc, char** argv) { return moe::engine::Main(argc, argv); }
