#include "engine/experts/step_prefetch_sim.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/experts/copy_engine.h"

namespace moe::engine {
namespace {

constexpr double kNotStarted = std::numeric_limits<double>::infinity();

// The link model of the file comment. The driver sets `now` (host time of the calls) and
// `layer_end` (when the layer whose slots RecordReader names finishes).
class TimedCopyEngine : public CopyEngine {
 public:
  TimedCopyEngine(int32_t slots, double copy_s)
      : copy_s_(copy_s), done_at_(slots, 0.0), issued_at_(slots, 0.0), reader_end_(slots, 0.0) {}

  double now = 0;
  double layer_end = 0;
  double wait_until = 0;  // the acquired layer's experts are all in by then

  absl::Status IssueFill(int32_t slot, ExpertKey, bool demand) override {
    if (demand) {
      Advance(now);
      Start(slot, now);
    } else {
      issued_at_[slot] = now;
      done_at_[slot] = kNotStarted;
      pending_.push_back(slot);
    }
    return absl::OkStatus();
  }
  bool FillDone(int32_t slot) override {
    Advance(now);
    return done_at_[slot] <= now;
  }
  absl::Status ComputeWaitFill(int32_t slot) override {
    while (done_at_[slot] == kNotStarted && !pending_.empty()) StartFront();
    wait_until = std::max(wait_until, done_at_[slot]);
    return absl::OkStatus();
  }
  absl::Status RecordReader(int32_t slot) override {
    reader_end_[slot] = std::max(reader_end_[slot], layer_end);
    return absl::OkStatus();
  }
  // Starts every queued copy; returns when the last one lands.
  double DrainAll() {
    while (!pending_.empty()) StartFront();
    return link_free_at_;
  }

 private:
  void Start(int32_t slot, double earliest) {
    const double start = std::max({link_free_at_, earliest, reader_end_[slot]});
    done_at_[slot] = start + copy_s_;
    link_free_at_ = done_at_[slot];
  }
  void StartFront() {
    const int32_t s = pending_.front();
    pending_.pop_front();
    Start(s, issued_at_[s]);
  }
  // Queued prefetches whose turn on the link came by `t` start (in order).
  void Advance(double t) {
    while (!pending_.empty()) {
      const int32_t s = pending_.front();
      if (std::max({link_free_at_, issued_at_[s], reader_end_[s]}) > t) break;
      StartFront();
    }
  }

  double copy_s_;
  double link_free_at_ = 0;
  std::vector<double> done_at_, issued_at_, reader_end_;
  std::deque<int32_t> pending_;
};

}  // namespace

std::string StepPrefetchSimLabel(const StepPrefetchSimOptions& o) {
  const char* rule = !o.prefetch                                ? "off"
                     : o.rule == StepPrefetchRule::kSlots       ? "slots"
                     : o.window                                 ? "foresight+window"
                                                                : "foresight";
  return absl::StrCat(rule, o.prefetch && o.step_foresight && o.rule == StepPrefetchRule::kSlots
                                ? "+fpolicy" : "",
                      " ", EvictionPolicyName(o.policy));
}

absl::StatusOr<StepPrefetchSimResult> SimulateStepPrefetch(const RoutingTrace& trace,
                                                           const StepPrefetchSimOptions& o) {
  if (absl::Status st = trace.Validate(); !st.ok()) return st;
  if (o.link_bytes_per_s <= 0 || o.layer_compute_s < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step prefetch sim: link_bytes_per_s must be > 0 and layer_compute_s >= 0, got ",
        o.link_bytes_per_s, " and ", o.layer_compute_s));
  }
  const ExpertGrid grid = trace.grid;
  TimedCopyEngine eng(std::max(o.num_slots, 1),
                      static_cast<double>(o.bytes_per_expert) / o.link_bytes_per_s);
  ExpertPrefetcherOptions po;
  po.grid = grid;
  po.num_slots = o.num_slots;
  po.bytes_per_expert = o.bytes_per_expert;
  const bool foresight = o.prefetch && o.step_foresight;
  po.policy = o.policy;
  po.step_foresight = foresight;
  po.step_rule = o.rule;
  if (o.window) {
    po.window_bytes_per_layer = static_cast<uint64_t>(o.link_bytes_per_s * o.layer_compute_s);
  }
  auto pf_or = ExpertPrefetcher::Create(po, &eng);
  if (!pf_or.ok()) return pf_or.status();
  ExpertPrefetcher& pf = **pf_or;

  StepPrefetchSimResult r;
  double t = 0;
  std::vector<int32_t> slot_of;
  const int32_t L = grid.num_layers;
  for (size_t s = 0; s < trace.steps.size(); ++s) {
    pf.BeginStep(static_cast<int64_t>(s));
    eng.now = t;
    if (o.prefetch) {
      if (absl::Status st = pf.SetStepRouting(trace.steps[s]); !st.ok()) return st;
      if (absl::Status st = pf.PrefetchStepAhead(-1); !st.ok()) return st;
    }
    for (int32_t l = 0; l < L; ++l) {
      const std::vector<int32_t>& experts = trace.steps[s][l];
      if (experts.empty()) continue;
      eng.now = t;
      eng.wait_until = t;
      absl::Status st = pf.AcquireLayer(l, experts, &slot_of);
      if (absl::IsFailedPrecondition(st)) {
        // Prefetches in flight hold the slots: wait for them, retry.
        t = std::max(t, eng.DrainAll());
        eng.now = t;
        eng.wait_until = t;
        st = pf.AcquireLayer(l, experts, &slot_of);
      }
      if (!st.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("step prefetch sim: step ", s, ": ", st.message()));
      }
      const double start = std::max(t, eng.wait_until);
      if (o.prefetch) {
        if (absl::Status st2 = pf.PrefetchStepAhead(l); !st2.ok()) return st2;
      }
      eng.layer_end = start + o.layer_compute_s;
      if (absl::Status st2 = pf.ReleaseLayer(); !st2.ok()) return st2;
      r.stall_s += start - t;
      t = eng.layer_end;
    }
    pf.EndStep();
  }
  const ExpertCacheStats& cs = pf.cache().stats();
  r.steps = static_cast<int64_t>(trace.steps.size());
  r.uses = cs.hits + cs.misses;
  r.demand_misses = cs.misses;
  r.late_hits = cs.late_hits;
  r.copies = cs.misses + cs.prefetches_issued;
  r.prefetches_wasted = cs.prefetches_wasted;
  r.bytes_moved = cs.bytes_moved;
  r.total_s = t;
  return r;
}

}  // namespace moe::engine
