// Host overhead of one scheduler step at serving scale, without a model: a runner that
// answers every Forward at once with pre-generated random logits (vocabulary 50,304, as
// OLMoE-1B-7B), driving the real Scheduler with N streaming requests in decode. Prints,
// per sampling variant, the host milliseconds per step (an engine-loop pass minus
// Forward) and its breakdown by phase (SchedulerStats::host_phases).
//
//   bazel run //scheduler:step_overhead_bench -- [--seqs=256] [--steps=100]
//       [--warmup=20] [--vocab=50304] [--variant=all|greedy|sampled|logprobs]
//       [--sampling_threads=0] [--device_sampling=0|1]
//
// --device_sampling=1: the runner answers as the CUDA runner does when it samples on the
// GPU (a token per row, no logits copied), so the figures are the scheduler's own host
// work with device sampling (the default of the CUDA backend).
// The logits rows are N(0, 3^2) draws: a spread-out but peaked distribution (the top-p
// 0.9 nucleus holds a few hundred tokens), so the top-p path does real work. One
// consumer thread drains every stream every millisecond, as the HTTP workers would.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "engine/model_runner.h"
#include "scheduler/scheduler.h"

namespace moe::scheduler {
namespace {

struct BenchOptions {
  int seqs = 256;
  int steps = 100;
  int warmup = 20;
  int vocab = 50304;
  int prompt_len = 16;
  int sampling_threads = 0;
  std::string variant = "all";
  bool device_sampling = false;
};

// Returns logits copied from a pool of random rows; no model work.
class RandomLogitsRunner : public engine::ModelRunner {
 public:
  RandomLogitsRunner(int vocab, int pool_rows, int num_kv_blocks, bool device_sampling)
      : num_kv_blocks_(num_kv_blocks), pool_rows_(pool_rows), device_sampling_(device_sampling) {
    config_.architecture_name = "BenchForCausalLM";
    config_.model_type = "bench";
    config_.vocab_size = vocab;
    config_.max_position_embeddings = 1 << 20;
    std::mt19937_64 rng(12345);
    std::normal_distribution<float> normal(0.f, 3.f);
    pool_.resize(static_cast<size_t>(pool_rows) * vocab);
    for (float& v : pool_) v = normal(rng);
  }

  const engine::ModelConfig& config() const override { return config_; }
  int kv_block_size() const override { return 16; }
  int num_kv_blocks() const override { return num_kv_blocks_; }
  std::string device_name() const override { return "bench"; }
  bool samples_on_device() const override { return device_sampling_; }

  absl::Status Forward(const engine::ForwardBatch& batch, engine::ForwardResult* out) override {
    const size_t V = static_cast<size_t>(config_.vocab_size);
    int32_t rows = 0;
    out->row_begin.clear();
    for (const auto& s : batch.seqs) {
      out->row_begin.push_back(rows);
      if (s.logits != engine::SequenceChunk::Logits::kNone) ++rows;
    }
    out->row_begin.push_back(rows);
    out->vocab_size = config_.vocab_size;
    if (device_sampling_) {
      // A token per sampled row (what the device returns), logits only for the others.
      out->tokens.assign(static_cast<size_t>(rows), -1);
      int32_t r = 0;
      bool all = true;
      for (const auto& s : batch.seqs) {
        if (s.logits == engine::SequenceChunk::Logits::kNone) continue;
        if (s.sampling.enabled) {
          out->tokens[r] = static_cast<int32_t>((step_ * 7919 + r) % config_.vocab_size);
        } else {
          all = false;
        }
        ++r;
      }
      if (all) {
        ++step_;
        return absl::OkStatus();
      }
    }
    out->logits.resize(static_cast<size_t>(rows) * V);
    for (int32_t r = 0; r < rows; ++r) {
      const size_t src = static_cast<size_t>((r + step_) % pool_rows_) * V;
      std::memcpy(out->logits.data() + r * V, pool_.data() + src, V * sizeof(float));
    }
    ++step_;
    return absl::OkStatus();
  }

 private:
  engine::ModelConfig config_;
  int num_kv_blocks_;
  int pool_rows_;
  bool device_sampling_;
  std::vector<float> pool_;
  int64_t step_ = 0;
};

// Emits a few bytes per token, roughly what a BPE token decodes to.
class ShortTextDecoder : public TextDecoder {
 public:
  std::string Add(int32_t id) override { return absl::StrCat(" t", id % 1000); }
  std::string Flush() override { return ""; }
};

struct Variant {
  std::string name;
  engine::SamplingParams params;
};

void RunVariant(const BenchOptions& o, const Variant& v) {
  const int max_tokens = o.warmup + o.steps + 16;
  const int blocks_per_seq = (o.prompt_len + max_tokens + 15) / 16 + 1;
  RandomLogitsRunner runner(o.vocab, 256, o.seqs * blocks_per_seq, o.device_sampling);
  SchedulerOptions so;
  so.max_num_seqs = o.seqs;
  so.max_num_batched_tokens = std::max(8192, o.seqs * o.prompt_len);
  so.max_queue = o.seqs;
  so.num_sampling_threads = o.sampling_threads;
  so.make_text_decoder = [](absl::Span<const int32_t>) {
    return std::unique_ptr<TextDecoder>(new ShortTextDecoder());
  };
  Scheduler sched(&runner, so);
  if (absl::Status s = sched.Start(); !s.ok()) {
    std::fprintf(stderr, "start: %s\n", s.ToString().c_str());
    std::exit(1);
  }
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < o.seqs; ++i) {
    GenerateRequest r;
    for (int j = 0; j < o.prompt_len; ++j) r.prompt.push_back((i * 31 + j * 7) % o.vocab);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    r.sampling = v.params;
    r.sampling.has_seed = true;
    r.sampling.seed = 1000 + i;
    auto h = sched.Submit(std::move(r));
    if (!h.ok()) {
      std::fprintf(stderr, "submit: %s\n", h.status().ToString().c_str());
      std::exit(1);
    }
    handles.push_back(*h);
  }

  // One consumer draining every stream, as the HTTP workers would.
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    StreamEvent ev;
    while (!stop.load()) {
      for (auto& h : handles) {
        while (h->Next(&ev, absl::ZeroDuration())) {
        }
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
  });

  auto wait_steps = [&](int64_t n) {
    SchedulerStats st = sched.GetStats();
    while (st.num_steps < n) {
      absl::SleepFor(absl::Microseconds(200));
      st = sched.GetStats();
    }
    return st;
  };
  const SchedulerStats a = wait_steps(1 + o.warmup);
  const SchedulerStats b = wait_steps(a.num_steps + o.steps);
  stop.store(true);
  consumer.join();
  sched.Shutdown();

  const double n = static_cast<double>(b.num_steps - a.num_steps);
  auto ms = [n](double x1, double x0) { return (x1 - x0) / n * 1e3; };
  const double host = ms(b.host_seconds_total, a.host_seconds_total);
  const double fwd = ms(b.forward_seconds_total, a.forward_seconds_total);
  const SchedulerHostPhases& p1 = b.host_phases;
  const SchedulerHostPhases& p0 = a.host_phases;
  std::printf(
      "%-9s seqs %d steps %.0f (batch %d): host %.3f ms/step (forward, i.e. the fake's "
      "copy, %.3f ms)\n"
      "          reap %.3f  compose %.3f  prepare %.3f  sample %.3f  emit %.3f  finish %.3f"
      "  other %.3f\n",
      v.name.c_str(), o.seqs, n, b.last_step_num_seqs, host, fwd, ms(p1.reap_s, p0.reap_s),
      ms(p1.compose_s, p0.compose_s), ms(p1.prepare_s, p0.prepare_s),
      ms(p1.sample_s, p0.sample_s), ms(p1.emit_s, p0.emit_s), ms(p1.finish_s, p0.finish_s),
      host - ms(p1.reap_s + p1.compose_s + p1.prepare_s + p1.sample_s + p1.emit_s + p1.finish_s,
                p0.reap_s + p0.compose_s + p0.prepare_s + p0.sample_s + p0.emit_s + p0.finish_s));
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  BenchOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&a](const char* key) -> const char* {
      const std::string k = absl::StrCat("--", key, "=");
      return a.rfind(k, 0) == 0 ? a.c_str() + k.size() : nullptr;
    };
    if (const char* x = val("seqs")) {
      o.seqs = std::atoi(x);
    } else if (const char* x = val("steps")) {
      o.steps = std::atoi(x);
    } else if (const char* x = val("warmup")) {
      o.warmup = std::atoi(x);
    } else if (const char* x = val("vocab")) {
      o.vocab = std::atoi(x);
    } else if (const char* x = val("device_sampling")) {
      o.device_sampling = std::atoi(x) != 0;
    } else if (const char* x = val("sampling_threads")) {
      o.sampling_threads = std::atoi(x);
    } else if (const char* x = val("variant")) {
      o.variant = x;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (o.seqs < 1 || o.steps < 1 || o.warmup < 0 || o.vocab < 2) {
    std::fprintf(stderr, "seqs, steps, vocab must be positive\n");
    return 2;
  }
  std::vector<Variant> variants;
  Variant greedy{"greedy", {}};
  greedy.params.temperature = 0.f;
  Variant sampled{"sampled", {}};
  sampled.params.temperature = 0.8f;
  sampled.params.top_p = 0.9f;
  Variant logprobs{"logprobs", {}};
  logprobs.params.temperature = 0.f;
  logprobs.params.logprobs = 5;
  for (const Variant& v : {greedy, sampled, logprobs}) {
    if (o.variant == "all" || o.variant == v.name) variants.push_back(v);
  }
  if (variants.empty()) {
    std::fprintf(stderr, "variant: one of all, greedy, sampled, logprobs\n");
    return 2;
  }
  std::printf("vocab %d, %d streaming requests, ms per decode step\n", o.vocab, o.seqs);
  for (const Variant& v : variants) RunVariant(o, v);
  return 0;
}

}  // namespace
}  // namespace moe::scheduler

int main(int argc, char** argv) { return moe::scheduler::Main(argc, argv); }
