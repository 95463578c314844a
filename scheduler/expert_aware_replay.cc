// What expert-aware batching (expert_aware_composer.h) saves on real routing: the real
// Scheduler over the CPU runner on the trained decoupled-router model, N concurrent greedy
// requests, run to completion once with SchedulerOptions::expert_aware_batching off and
// once on (expert_cache_slots_override = capacity). In both runs a ModelRunner decorator
// records, per step, the union of the (MoE layer, expert) keys the step's decode chunks
// used (ForwardResult::footprints) and replays those steps through an LRU and an LFU cache of
// `capacity` keys, counting misses. The 'on' runs are repeated per cache policy (the
// decorator's ResidentExpertKeys reports that policy's simulated contents, so the composer
// sees what the cache it is judged against holds) and per miss price r = t_miss / t_step
// in {0.05, 0.2, 1} (SchedulerOptions::expert_aware_miss_cost_steps); every row prints the
// estimated decode time steps + r x misses (units of t_step) at each r, and a last line
// compares 'on' priced at r with 'off' at the same r. A benchmark: it prints figures,
// asserts no timing. It exits 1 if the greedy outputs differ between any two runs.
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
  void Resident(std::vector<uint64_t>* bits) const {
    for (int k : order_) (*bits)[k / 64] |= uint64_t{1} << (k % 64);
  }

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
  void Resident(std::vector<uint64_t>* bits) const {
    for (int k : resident_) (*bits)[k / 64] |= uint64_t{1} << (k % 64);
  }

 private:
  const int capacity_;
  std::set<int> resident_;
  std::unordered_map<int, int64_t> count_, last_step_;
  int64_t misses_ = 0;
};

// Which simulated cache's contents the runner reports as ResidentExpertKeys.
enum class Residency { kNone, kLru, kLfu };

// Forwards everything to `inner`; on each Forward asks for footprints (dropping them from
// the result when the scheduler did not ask), ORs the decode chunks' footprints into the
// step's union and replays it through the LRU and the LFU. ResidentExpertKeys reports the
// contents of the one named by `residency` (the cache the run is judged against).
class RecordingRunner : public engine::ModelRunner {
 public:
  RecordingRunner(engine::ModelRunner* inner, int capacity, Residency residency)
      : inner_(inner), keys_(inner->expert_footprint_keys()), residency_(residency),
        lru_(capacity), lfu_(capacity) {}

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
  bool ResidentExpertKeys(std::vector<uint64_t>* bits) const override {
    if (residency_ == Residency::kNone) return false;
    bits->assign((keys_ + 63) / 64, 0);
    if (residency_ == Residency::kLru) {
      lru_.Resident(bits);
    } else {
      lfu_.Resident(bits);
    }
    return true;
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
  const Residency residency_;
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

// One run to completion; `aware`: expert-aware batching on, seeing `residency`'s contents
// and pricing a miss at `miss_cost_steps`.
RunResult RunOnce(engine::ModelRunner* cpu, const Flags& f, int capacity, bool aware,
                  Residency residency, double miss_cost_steps) {
  RunResult res;
  RecordingRunner runner(cpu, capacity, residency);
  SchedulerOptions opts;
  opts.max_num_seqs = f.requests;
  opts.num_sampling_threads = 1;
  opts.expert_aware_batching = aware;
  opts.expert_aware_max_skips = f.max_skips;
  opts.expert_aware_miss_cost_steps = miss_cost_steps;
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

// Misses of the cache `policy` judges against (the one the run's composer saw).
int64_t Misses(const RunResult& r, Residency policy) {
  return policy == Residency::kLru ? r.misses : r.lfu_misses;
}

// Estimated decode time in units of t_step: steps x t_step + misses x t_miss.
double EstSteps(const RunResult& r, Residency policy, double ratio) {
  return static_cast<double>(r.stats.num_steps) + ratio * static_cast<double>(Misses(r, policy));
}

void PrintRow(const std::string& mode, const RunResult& r, Residency policy,
              const std::vector<double>& ratios) {
  const double mean_keys =
      r.decode_steps ? static_cast<double>(r.distinct_keys_total) / r.decode_steps : 0.0;
  const int64_t m = Misses(r, policy);
  const double per_tok = r.decode_tokens ? static_cast<double>(m) / r.decode_tokens : 0.0;
  std::printf("%-12s %6lld %10lld %10.2f %8lld %10.3f %9lld", mode.c_str(),
              static_cast<long long>(r.stats.num_steps), static_cast<long long>(r.decode_tokens),
              mean_keys, static_cast<long long>(m), per_tok,
              static_cast<long long>(r.stats.expert_aware_deferred_total));
  for (double ratio : ratios) std::printf(" %11.1f", EstSteps(r, policy, ratio));
  std::printf("\n");
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

  const std::vector<double> ratios = {0.05, 0.2, 1.0};
  const RunResult off = RunOnce(cpu.get(), f, capacity, /*aware=*/false, Residency::kNone, 0);
  if (!off.ok) return 1;
  bool same = true;
  // Per cache policy: off, then on (seeing that cache) pricing a miss at each ratio. Times
  // are in units of t_step; the fair comparison is on at ratio r against off at r.
  for (Residency policy : {Residency::kLru, Residency::kLfu}) {
    const char* name = policy == Residency::kLru ? "LRU" : "LFU";
    std::printf("\n%s cache (the composer sees its contents)\n", name);
    std::printf("%-12s %6s %10s %10s %8s %10s %9s", "mode", "steps", "decode_tok", "keys/step",
                "misses", "miss/token", "deferred");
    for (double ratio : ratios) std::printf("   est@%-5.2f", ratio);
    std::printf("\n");
    PrintRow("off", off, policy, ratios);
    std::string verdict;
    for (double ratio : ratios) {
      const RunResult on = RunOnce(cpu.get(), f, capacity, /*aware=*/true, policy, ratio);
      if (!on.ok) return 1;
      char mode[32];
      std::snprintf(mode, sizeof(mode), "on r=%.2f", ratio);
      PrintRow(mode, on, policy, ratios);
      if (!on.stats.expert_aware_active) std::printf("note: expert-aware batching not active\n");
      for (size_t i = 0; same && i < off.tokens.size(); ++i) {
        same = i < on.tokens.size() && off.tokens[i] == on.tokens[i];
      }
      const double a = EstSteps(off, policy, ratio), b = EstSteps(on, policy, ratio);
      char v[96];
      std::snprintf(v, sizeof(v), "  r=%.2f: %+.1f%%", ratio, 100.0 * (b - a) / a);
      verdict += v;
    }
    std::printf("est. time, on (priced at r) vs off, at t_miss/t_step = r:%s\n", verdict.c_str());
  }

  std::printf("\ngreedy outputs identical across modes: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}

}  // namespace
}  // namespace moe::scheduler

int main(int argc, char** argv) { return moe::scheduler::Main(argc, argv); }
