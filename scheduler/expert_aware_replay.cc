// What expert-aware batching (expert_aware_composer.h) saves on real routing: the real
// Scheduler over the CPU runner on the trained decoupled-router model, N concurrent greedy
// requests, run to completion once with SchedulerOptions::expert_aware_batching off and
// once on (expert_cache_slots_override = capacity). In both runs a ModelRunner decorator
// records, per step, the union of the (MoE layer, expert) keys the step's decode chunks
// used (ForwardResult::footprints) and replays those steps through an LRU and an LFU cache of
// `capacity` keys, counting misses. A benchmark: it prints figures, asserts no timing.
// It exits 1 if the greedy outputs differ between the two modes.
//
//   bazel build //scheduler:expert_aware_replay
//   (from the repository root) bazel-bin/scheduler/expert_aware_replay
//       [--requests 16] [--max-tokens 32] [--capacity-fraction 0.5] [--max-skips 4]
//       [--seed 1] [--model tests/data/models/trained/router] [--threads 2]
//
// capacity = max(1, round(fraction x runner.expert_footprint_keys())). A chunk counts as a
// decode when it carries one token with kLast logits (prompts here are >= 4 tokens and
// fit one prefill chunk). Within a step the union is replayed in key order (layer-major).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/cpu/cpu_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"
#include "scheduler/scheduler.h"

namespace moe::scheduler {
namespace {

struct Flags {
  int requests = 16;
  int max_tokens = 32;
  double capacity_fraction = 0.5;
  int max_skips = 4;
  uint64_t seed = 1;
  int threads = 2;
  std::string model = "tests/data/models/trained/router";
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string v;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (i + 1 < argc) {
      v = argv[++i];
    } else {
      std::fprintf(stderr, "flag %s needs a value\n", a.c_str());
      return false;
    }
    if (a == "--requests") f->requests = std::atoi(v.c_str());
    else if (a == "--max-tokens") f->max_tokens = std::atoi(v.c_str());
    else if (a == "--capacity-fraction") f->capacity_fraction = std::atof(v.c_str());
    else if (a == "--max-skips") f->max_skips = std::atoi(v.c_str());
    else if (a == "--seed") f->seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (a == "--threads") f->threads = std::atoi(v.c_str());
    else if (a == "--model") f->model = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (f->requests <= 0 || f->max_tokens <= 0 || f->capacity_fraction <= 0 ||
      f->max_skips < 0 || f->threads <= 0) {
    std::fprintf(stderr, "bad flag values\n");
    return false;
  }
  return true;
}

// LRU cache over footprint keys; counts misses.
class LruReplay {
 public:
  explicit LruReplay(int capacity) : capacity_(capacity) {}
  void Access(int key) {
    auto it = pos_.find(key);
    if (it != pos_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    ++misses_;
    if (static_cast<int>(order_.size()) >= capacity_) {
      pos_.erase(order_.back());
      order_.pop_back();
    }
    order_.push_front(key);
    pos_[key] = order_.begin();
  }
  int64_t misses() const { return misses_; }

 private:
  const int capacity_;
  std::list<int> order_;  // most recent first
  std::unordered_map<int, std::list<int>::iterator> pos_;
  int64_t misses_ = 0;
};

// LFU cache over footprint keys (the CUDA offload's default policy): all-time use counts;
// a miss evicts the resident key with the lowest count that the current step does not use
// (ties: the lowest key); when every resident key is in use this step it bypasses.
class LfuReplay {
 public:
  explicit LfuReplay(int capacity) : capacity_(capacity) {}
  void Access(int key, int64_t step) {
    ++count_[key];
    last_step_[key] = step;
    if (resident_.count(key)) return;
    ++misses_;
    if (static_cast<int>(resident_.size()) < capacity_) {
      resident_.insert(key);
      return;
    }
    int victim = -1;
    for (int k : resident_) {
      if (last_step_[k] == step) continue;
      if (victim < 0 || count_[k] < count_[victim] || (count_[k] == count_[victim] && k < victim)) victim = k;
    }
    if (victim < 0) return;
    resident_.erase(victim);
    resident_.insert(key);
  }
  int64_t misses() const { return misses_; }

 private:
  const int capacity_;
  std::set<int> resident_;
  std::unordered_map<int, int64_t> count_, last_step_;
  int64_t misses_ = 0;
};

// Forwards everything to `inner`; on each Forward asks for footprints (dropping them from
// the result when the scheduler did not ask), ORs the decode chunks' footprints into the
// step's union and replays it through the LRU.
class RecordingRunner : public engine::ModelRunner {
 public:
  RecordingRunner(engine::ModelRunner* inner, int capacity)
      : inner_(inner), keys_(inner->expert_footprint_keys()), lru_(capacity), lfu_(capacity) {}

  const engine::ModelConfig& config() const override { return inner_->config(); }
  int kv_block_size() const override { return inner_->kv_block_size(); }
  int num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  std::string device_name() const override { return inner_->device_name(); }
  bool samples_on_device() const override { return inner_->samples_on_device(); }
  std::optional<engine::OffloadStats> offload_stats() const override {
    return inner_->offload_stats();
  }
  int32_t expert_footprint_keys() const override { return inner_->expert_footprint_keys(); }
  int32_t expert_cache_slots() const override { return inner_->expert_cache_slots(); }
  bool TokenFootprint(int32_t token, engine::ExpertFootprint* out) override {
    return inner_->TokenFootprint(token, out);
  }

  absl::Status Forward(const engine::ForwardBatch& batch, engine::ForwardResult* out) override {
    const bool asked = batch.want_footprints;
    absl::Status st;
    if (asked) {
      st = inner_->Forward(batch, out);
    } else {
      engine::ForwardBatch b = batch;
      b.want_footprints = true;
      st = inner_->Forward(b, out);
    }
    if (!st.ok()) return st;
    std::vector<uint64_t> step((keys_ + 63) / 64, 0);
    int decodes = 0;
    for (size_t i = 0; i < batch.seqs.size(); ++i) {
      const auto& c = batch.seqs[i];
      if (c.tokens.size() != 1 || c.logits != engine::SequenceChunk::Logits::kLast) continue;
      ++decodes;
      if (i < out->footprints.size()) {
        const auto& bits = out->footprints[i].bits;
        for (size_t w = 0; w < bits.size() && w < step.size(); ++w) step[w] |= bits[w];
      }
    }
    if (!asked) out->footprints.clear();
    if (decodes > 0) {
      ++decode_steps_;
      decode_tokens_ += decodes;
      for (int k = 0; k < keys_; ++k) {
        if ((step[k / 64] >> (k % 64)) & 1) {
          ++distinct_keys_total_;
          lru_.Access(k);
          lfu_.Access(k, decode_steps_);
        }
      }
    }
    return st;
  }

  int64_t decode_steps() const { return decode_steps_; }
  int64_t decode_tokens() const { return decode_tokens_; }
  int64_t distinct_keys_total() const { return distinct_keys_total_; }
  int64_t misses() const { return lru_.misses(); }
  int64_t lfu_misses() const { return lfu_.misses(); }

 private:
  engine::ModelRunner* const inner_;
  const int keys_;
  LruReplay lru_;
  LfuReplay lfu_;
  int64_t decode_steps_ = 0;
  int64_t decode_tokens_ = 0;
  int64_t distinct_keys_total_ = 0;
};

struct RunResult {
  bool ok = false;
  std::vector<std::vector<int32_t>> tokens;
  SchedulerStats stats;
  int64_t decode_steps = 0, decode_tokens = 0, distinct_keys_total = 0, misses = 0, lfu_misses = 0;
};

RunResult RunOnce(engine::ModelRunner* cpu, const Flags& f, int capacity, bool aware) {
  RunResult res;
  RecordingRunner runner(cpu, capacity);
  SchedulerOptions opts;
  opts.max_num_seqs = f.requests;
  opts.num_sampling_threads = 1;
  opts.expert_aware_batching = aware;
  opts.expert_aware_max_skips = f.max_skips;
  opts.expert_cache_slots_override = capacity;
  const int vocab = cpu->config().vocab_size;
  std::mt19937_64 rng(f.seed);
  std::uniform_int_distribution<int> tok(2, vocab - 1);  // skip eos 0 / pad 1
  std::uniform_int_distribution<int> len(4, 16);
  {
    Scheduler s(&runner, opts);
    std::vector<std::shared_ptr<RequestHandle>> handles;
    for (int i = 0; i < f.requests; ++i) {
      GenerateRequest r;
      const int n = len(rng);
      for (int j = 0; j < n; ++j) r.prompt.push_back(tok(rng));
      r.max_tokens = f.max_tokens;
      r.ignore_eos = true;
      r.sampling.temperature = 0.f;
      auto h = s.Submit(std::move(r));
      if (!h.ok()) {
        std::fprintf(stderr, "Submit: %s\n", h.status().ToString().c_str());
        return res;
      }
      handles.push_back(*h);
    }
    if (absl::Status st = s.Start(); !st.ok()) {
      std::fprintf(stderr, "Start: %s\n", st.ToString().c_str());
      return res;
    }
    for (auto& h : handles) {
      std::vector<int32_t> got;
      StreamEvent ev;
      bool complete = false;
      const absl::Time end = absl::Now() + absl::Seconds(600);
      while (!complete && absl::Now() < end) {
        if (!h->Next(&ev, absl::Milliseconds(100))) continue;
        if (ev.kind == StreamEvent::Kind::kTokens) {
          got.insert(got.end(), ev.token_ids.begin(), ev.token_ids.end());
        } else if (ev.kind == StreamEvent::Kind::kComplete) {
          complete = true;
        } else {
          std::fprintf(stderr, "request failed: %s\n", ev.error.ToString().c_str());
          return res;
        }
      }
      if (!complete) {
        std::fprintf(stderr, "request timed out\n");
        return res;
      }
      res.tokens.push_back(std::move(got));
    }
    if (!s.WaitUntilIdle(absl::Seconds(30))) {
      std::fprintf(stderr, "scheduler did not go idle\n");
      return res;
    }
    absl::SleepFor(absl::Milliseconds(30));  // the engine's final stats publication
    res.stats = s.GetStats();
  }  // scheduler (engine thread) gone before the runner's counters are read
  res.decode_steps = runner.decode_steps();
  res.decode_tokens = runner.decode_tokens();
  res.distinct_keys_total = runner.distinct_keys_total();
  res.misses = runner.misses();
  res.lfu_misses = runner.lfu_misses();
  res.ok = true;
  return res;
}

void PrintRow(const char* mode, const RunResult& r) {
  const double mean_keys =
      r.decode_steps ? static_cast<double>(r.distinct_keys_total) / r.decode_steps : 0.0;
  const double per_tok = r.decode_tokens ? static_cast<double>(r.misses) / r.decode_tokens : 0.0;
  const double lfu_tok = r.decode_tokens ? static_cast<double>(r.lfu_misses) / r.decode_tokens : 0.0;
  std::printf("%-4s %6lld %12lld %10lld %12.2f %11lld %11.3f %11lld %11.3f %9lld\n", mode,
              static_cast<long long>(r.stats.num_steps), static_cast<long long>(r.decode_steps),
              static_cast<long long>(r.decode_tokens), mean_keys,
              static_cast<long long>(r.misses), per_tok, static_cast<long long>(r.lfu_misses), lfu_tok,
              static_cast<long long>(r.stats.expert_aware_deferred_total));
}

int Main(int argc, char** argv) {
  Flags f;
  if (!ParseFlags(argc, argv, &f)) return 2;
  auto cfg = engine::LoadModelConfig(f.model);
  if (!cfg.ok()) {
    std::fprintf(stderr, "config %s: %s (run from the repository root or pass --model)\n",
                 f.model.c_str(), cfg.status().ToString().c_str());
    return 2;
  }
  auto ck = engine::Checkpoint::Open(f.model);
  if (!ck.ok()) {
    std::fprintf(stderr, "checkpoint: %s\n", ck.status().ToString().c_str());
    return 2;
  }
  engine::RunnerOptions o;
  o.kv_block_size = 16;
  // Every request's prompt (<= 16) + max_tokens, rounded up to blocks, plus slack: no
  // preemption.
  o.num_kv_blocks = f.requests * ((16 + f.max_tokens + 15) / 16 + 1);
  o.num_threads = f.threads;
  auto r = engine::CreateCpuRunner(**ck, *cfg, o);
  if (!r.ok()) {
    std::fprintf(stderr, "runner: %s\n", r.status().ToString().c_str());
    return 2;
  }
  std::unique_ptr<engine::ModelRunner> cpu = *std::move(r);
  const int keys = cpu->expert_footprint_keys();
  if (keys <= 0) {
    std::fprintf(stderr, "the runner reports no expert footprints\n");
    return 2;
  }
  const int capacity =
      std::max(1, static_cast<int>(std::lround(f.capacity_fraction * keys)));

  std::printf("model %s: %d footprint keys (%d MoE layers x %d experts, top-%d)\n",
              f.model.c_str(), keys, cfg->num_layers, cfg->num_experts,
              cfg->num_experts_per_tok);
  std::printf("requests %d, max_tokens %d, seed %llu, max_skips %d, capacity %d keys "
              "(fraction %.2f)\n",
              f.requests, f.max_tokens, static_cast<unsigned long long>(f.seed), f.max_skips,
              capacity, f.capacity_fraction);

  const RunResult off = RunOnce(cpu.get(), f, capacity, /*aware=*/false);
  if (!off.ok) return 1;
  const RunResult on = RunOnce(cpu.get(), f, capacity, /*aware=*/true);
  if (!on.ok) return 1;

  std::printf("\n%-4s %6s %12s %10s %12s %11s %11s %11s %11s %9s\n", "mode", "steps", "decode_steps",
              "decode_tok", "keys/step", "lru_misses", "lru/token", "lfu_misses", "lfu/token", "deferred");
  PrintRow("off", off);
  PrintRow("on", on);
  if (!on.stats.expert_aware_active) {
    std::printf("note: expert-aware batching was not active in the 'on' run\n");
  }

  bool same = off.tokens.size() == on.tokens.size();
  for (size_t i = 0; same && i < off.tokens.size(); ++i) same = off.tokens[i] == on.tokens[i];
  std::printf("\ngreedy outputs identical across modes: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}

}  // namespace
}  // namespace moe::scheduler

int main(int argc, char** argv) { return moe::scheduler::Main(argc, argv); }
