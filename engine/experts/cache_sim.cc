#include "engine/experts/cache_sim.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"

namespace moe::engine {
namespace {

// Limits an oracle's answers to uses within `horizon` ticks of the cache's clock.
class HorizonOracle : public NextUseOracle {
 public:
  HorizonOracle(const NextUseOracle* inner, const int64_t* now, int64_t horizon)
      : inner_(inner), now_(now), horizon_(horizon) {}
  int64_t NextUseAfter(ExpertKey key, int64_t after) const override {
    const int64_t t = inner_->NextUseAfter(key, after);
    return t != kNever && t - *now_ <= horizon_ ? t : kNever;
  }

 private:
  const NextUseOracle* inner_;
  const int64_t* now_;
  int64_t horizon_;
};

std::vector<int32_t> Perturb(const std::vector<int32_t>& truth, double noise, int32_t experts,
                             std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int32_t> out;
  std::vector<int32_t> wrong;  // experts neither used nor already guessed
  for (int32_t e : truth) {
    int32_t p = e;
    if (u(rng) < noise) {
      wrong.clear();
      for (int32_t c = 0; c < experts; ++c) {
        if (std::find(truth.begin(), truth.end(), c) == truth.end() &&
            std::find(out.begin(), out.end(), c) == out.end()) {
          wrong.push_back(c);
        }
      }
      // When every expert is used or guessed already, the guess stays right.
      if (!wrong.empty()) {
        p = wrong[std::uniform_int_distribution<size_t>(0, wrong.size() - 1)(rng)];
      }
    }
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

}  // namespace

absl::StatusOr<CacheSimResult> SimulateCache(const RoutingTrace& trace,
                                             const CacheSimOptions& o) {
  if (auto st = trace.Validate(); !st.ok()) return st;
  if (o.prefetch_depth < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache sim: prefetch_depth must be >= 0, got ", o.prefetch_depth));
  }
  const ExpertGrid grid = trace.grid;
  const int32_t L = grid.num_layers;
  TraceNextUseOracle full(grid);
  for (size_t s = 0; s < trace.steps.size(); ++s)
    for (int32_t l = 0; l < L; ++l)
      for (int32_t e : trace.steps[s][l]) full.AddUse({l, e}, trace.Time(s, l));
  int64_t now = 0;
  HorizonOracle limited(&full, &now, o.belady_horizon);
  const NextUseOracle* oracle = o.belady_horizon >= 0 ? static_cast<const NextUseOracle*>(&limited)
                                                      : &full;
  auto policy = MakeEvictionPolicy(o.policy, oracle);
  if (!policy.ok()) return policy.status();
  ExpertCacheOptions co;
  co.grid = grid;
  co.num_slots = o.num_slots;
  co.bytes_per_expert = o.bytes_per_expert;
  auto cache_or = ExpertCache::Create(co, std::move(*policy));
  if (!cache_or.ok()) return cache_or.status();
  ExpertCache& cache = **cache_or;

  std::mt19937_64 rng(o.seed);
  PredictionAccuracy acc(o.prefetch_depth, L);
  std::vector<Placement> placed;
  std::vector<ExpertKey> keys;
  const int64_t num_steps = static_cast<int64_t>(trace.steps.size());
  for (int64_t s = 0; s < num_steps; ++s) {
    for (int32_t l = 0; l < L; ++l) {
      now = trace.Time(s, l);
      cache.AdvanceTo(now);
      keys.clear();
      for (int32_t e : trace.steps[s][l]) keys.push_back({l, e});
      if (!keys.empty()) {
        if (auto st = cache.AcquireAndPin(keys, &placed); !st.ok()) {
          return absl::FailedPreconditionError(
              absl::StrCat("cache sim: step ", s, ": ", st.message()));
        }
        for (const auto& p : placed)
          if (p.needs_fill) (void)cache.MarkFilled(p.slot);
      }
      for (int d = 1; d <= o.prefetch_depth; ++d) {
        int64_t ts = s;
        int32_t tl = l + d;
        if (tl >= L) {
          if (!o.prefetch_across_steps) break;
          ts += tl / L;
          tl %= L;
        }
        if (ts >= num_steps) break;
        const auto& truth = trace.steps[ts][tl];
        if (truth.empty()) continue;
        std::vector<int32_t> guess = o.predictions == SimPredictions::kExact
                                         ? truth
                                         : Perturb(truth, o.noise, grid.num_experts, rng);
        acc.Record(tl, d, guess, truth);
        for (int32_t e : guess) {
          auto p = cache.Prefetch({tl, e});
          if (!p.ok()) return p.status();
          if (p->has_value()) (void)cache.MarkFilled((*p)->slot);
        }
      }
      cache.UnpinAll();
    }
  }
  CacheSimResult r;
  r.stats = cache.stats();
  r.steps = num_steps;
  for (int d = 1; d <= o.prefetch_depth; ++d) r.accuracy_by_depth.push_back(acc.ByDepth(d));
  return r;
}

}  // namespace moe::engine
