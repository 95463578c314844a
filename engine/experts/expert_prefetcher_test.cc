// ExpertPrefetcher driven against FakeCopyEngine: counters, prefetch accounting, the
// ordering races of copy_engine.h (checked by the fake, not assumed), cross-step
// prediction, Belady with foresight, and a randomized stress run.
#include "engine/experts/expert_prefetcher.h"

#include <algorithm>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/experts/expert_prefetcher_test_rig.h"
#include "engine/experts/fake_copy_engine.h"

namespace moe::engine {
namespace {

using testing::kBytes;
using testing::RequireNoViolations;
using testing::Rig;
using testing::StepRouting;


TEST_CASE("hits and misses are counted per MoE layer, and misses are fetched on demand") {
  Rig r({3, 4}, 4, EvictionPolicyKind::kLru, {0, 2});
  r.pf->BeginStep(0);
  auto s0 = r.Layer(0, {0, 1, 1});
  r.Layer(2, {3});
  r.pf->EndStep();
  CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kIssueFill) == 3);
  for (const auto& c : r.fake.calls()) {
    if (c.kind == FakeCopyEngine::Call::kIssueFill) CHECK(c.demand);
  }
  // Every demand copy was waited on before its kernel: the reads stall until completion.
  CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kComputeWaitFill) == 3);
  CHECK(r.fake.ComputeDrain() == 0);
  r.Settle();

  r.pf->BeginStep(1);
  auto t0 = r.Layer(0, {1, 0});
  r.Layer(2, {2});
  r.pf->EndStep();
  CHECK(t0[0] == s0[0]);
  CHECK(t0[1] == s0[1]);
  CHECK(t0[2] == -1);
  r.Settle();
  RequireNoViolations(r.fake);

  const OffloadStats st = r.pf->stats();
  REQUIRE(st.layers.size() == 2);  // layer 1 is dense: no counters
  CHECK(st.num_slots == 4);
  CHECK(st.num_experts_total == 12);
  CHECK(st.policy == "lru");
  CHECK(r.LayerStats(0).hits == 2);
  CHECK(r.LayerStats(0).misses == 2);
  CHECK(r.LayerStats(2).hits == 0);
  CHECK(r.LayerStats(2).misses == 2);
  CHECK(st.h2d_bytes == 4 * kBytes);
  // The kernels read the experts they asked for, in order.
  std::vector<ExpertKey> seen;
  for (const auto& e : r.fake.executed_reads()) seen.push_back(e.seen);
  CHECK(seen == std::vector<ExpertKey>{{0, 0}, {0, 1}, {0, 1}, {2, 3}, {0, 1}, {0, 0}, {2, 2}});
}

TEST_CASE("a prefetched expert that is used is a hit, counted as a used prefetch") {
  Rig r({2, 4}, 4);
  r.pf->BeginStep(0);
  r.Layer(0, {0});
  REQUIRE(r.pf->Predict(1, {2}, /*exact=*/true).ok());
  const auto& last = r.fake.calls().back();
  CHECK(last.kind == FakeCopyEngine::Call::kIssueFill);
  CHECK(last.key == ExpertKey{1, 2});
  CHECK(!last.demand);
  r.Settle();
  const int64_t waits = r.fake.CountCalls(FakeCopyEngine::Call::kComputeWaitFill);
  r.Layer(1, {2});
  // Complete and polled: ready, so the kernel needs no wait.
  CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kComputeWaitFill) == waits);
  r.pf->EndStep();
  r.Settle();
  RequireNoViolations(r.fake);
  const auto s = r.LayerStats(1);
  CHECK(s.hits == 1);
  CHECK(s.misses == 0);
  CHECK(s.prefetch_issued == 1);
  CHECK(s.prefetch_used == 1);
  CHECK(s.prefetch_wasted == 0);
  CHECK(s.predicted == 1);
  CHECK(s.predicted_correct == 1);
  CHECK(s.actual == 1);
  CHECK(r.LayerStats(0).predicted == 0);  // never predicted: not scored
  CHECK(r.LayerStats(0).actual == 0);
}

TEST_CASE("a prefetched expert evicted before any use is counted wasted, under its layer") {
  Rig r({2, 4}, 2);
  r.pf->BeginStep(0);
  REQUIRE(r.pf->Predict(1, {0, 1}, true).ok());
  CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kIssueFill) == 2);
  r.Settle();
  r.Layer(0, {2, 3});  // needs both slots: evicts both prefetched experts
  r.Settle();
  r.Layer(1, {2});     // the prediction was wrong
  r.pf->EndStep();
  r.Settle();
  RequireNoViolations(r.fake);
  const auto s1 = r.LayerStats(1);
  CHECK(s1.prefetch_issued == 2);
  CHECK(s1.prefetch_wasted == 2);
  CHECK(s1.prefetch_used == 0);
  CHECK(s1.predicted == 2);
  CHECK(s1.predicted_correct == 0);
  CHECK(s1.actual == 1);
  CHECK(r.LayerStats(0).prefetch_wasted == 0);
  CHECK(r.LayerStats(0).misses == 2);
}

TEST_CASE("a slot whose copy is in flight is never evicted, and a demand on it waits") {
  Rig r({2, 4}, 2);
  r.pf->BeginStep(0);
  const auto a = r.Layer(0, {0});
  r.Settle();
  REQUIRE(r.pf->Predict(1, {1}, true).ok());  // into the other slot; the copy stays in flight
  const std::vector<int32_t> in_flight = r.fake.InFlightSlots();
  REQUIRE(in_flight.size() == 1);
  const int32_t s = in_flight[0];
  CHECK(s != a[0]);

  SECTION("a miss needing a victim takes the ready slot, not the filling one") {
    const auto b = r.Layer(1, {3});
    CHECK(b[3] == a[0]);
    CHECK(r.fake.fill_in_flight(s));
  }
  SECTION("two misses cannot be placed while the copy is in flight: nothing is issued") {
    const size_t calls = r.fake.calls().size();
    const int64_t fills = r.fake.CountCalls(FakeCopyEngine::Call::kIssueFill);
    std::vector<int32_t> slot_of;
    const absl::Status st = r.pf->AcquireLayer(1, {2, 3}, &slot_of);
    CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kIssueFill) == fills);
    for (size_t i = calls; i < r.fake.calls().size(); ++i) {
      CHECK(r.fake.calls()[i].kind == FakeCopyEngine::Call::kFillDone);  // polling only
    }
    // Once the copy lands the same layer fits, evicting the unused prefetch.
    REQUIRE(r.fake.Complete(s));
    r.Layer(1, {2, 3});
    CHECK(r.LayerStats(1).prefetch_wasted == 1);
  }
  SECTION("the expert being copied, acquired on demand, is a late hit its kernel waits for") {
    const int64_t waits = r.fake.CountCalls(FakeCopyEngine::Call::kComputeWaitFill);
    const auto b = r.Layer(1, {1});
    CHECK(b[1] == s);
    CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kComputeWaitFill) == waits + 1);
    CHECK(r.fake.calls().back().kind == FakeCopyEngine::Call::kRecordReader);
    CHECK(r.fake.ComputeDrain() == 0);  // the kernel is held behind the copy
    REQUIRE(r.fake.Complete(s));
    CHECK(r.fake.ComputeDrain() == 2);
    CHECK(r.fake.executed_reads().back().seen == ExpertKey{1, 1});
    CHECK(r.LayerStats(1).hits == 1);
    CHECK(r.LayerStats(1).prefetch_used == 1);
  }
  r.pf->EndStep();
  r.Settle();
  RequireNoViolations(r.fake);
}

TEST_CASE("a copy into a victim's slot is ordered after the victim's queued readers") {
  Rig r({2, 4}, 1);
  r.pf->BeginStep(0);
  r.Layer(0, {0});
  REQUIRE(r.fake.Complete(0));
  // The kernel reading (0,0) is queued but has not run when layer 1 evicts it.
  r.Layer(1, {0});
  REQUIRE(r.fake.fill_in_flight(0));
  CHECK(!r.fake.Complete(0));  // held behind the pending reader of the old contents
  // The first copy's wait and the old reader run; the new kernel waits on the new copy.
  CHECK(r.fake.ComputeDrain() == 2);
  REQUIRE(r.fake.Complete(0));
  CHECK(r.fake.ComputeDrain() == 2);
  r.pf->EndStep();
  RequireNoViolations(r.fake);
  REQUIRE(r.fake.executed_reads().size() == 2);
  CHECK(r.fake.executed_reads()[0].seen == ExpertKey{0, 0});
  CHECK(r.fake.executed_reads()[1].seen == ExpertKey{1, 0});
}

TEST_CASE("the fake flags the orderings a broken driver would get wrong") {
  FakeCopyEngine fake(2);
  REQUIRE(fake.IssueFill(0, {0, 0}, true).ok());
  // Read without waiting on the copy.
  CHECK(!fake.ComputeRead(0, {0, 0}).ok());
  // A second copy into a slot whose copy is in flight.
  CHECK(!fake.IssueFill(0, {0, 1}, true).ok());
  REQUIRE(fake.Complete(0));
  // Reading the wrong expert.
  CHECK(!fake.ComputeRead(0, {0, 1}).ok());
  // A copy over a queued read that RecordReader did not cover.
  REQUIRE(fake.ComputeRead(0, {0, 0}).ok());
  CHECK(!fake.IssueFill(0, {0, 2}, true).ok());
  CHECK(fake.violations().size() == 4);
}

TEST_CASE("a prediction for a layer at or before the current one is for the next step") {
  Rig r({3, 8}, 8);
  r.pf->BeginStep(0);
  r.Layer(0, {0});
  REQUIRE(r.pf->Predict(0, {5}, true).ok());  // step 1, layer 0
  REQUIRE(r.pf->Predict(2, {1, 2}, true).ok());  // step 0, layer 2
  r.Layer(1, {0});
  r.Layer(2, {1, 3});
  r.pf->EndStep();
  CHECK(r.LayerStats(2).predicted == 2);
  CHECK(r.LayerStats(2).predicted_correct == 1);
  CHECK(r.LayerStats(2).actual == 2);
  CHECK(r.LayerStats(0).predicted == 0);  // not scored against step 0's layer 0
  r.pf->BeginStep(1);
  r.Layer(0, {5, 6});
  REQUIRE(r.pf->Predict(1, {7}, true).ok());  // step 1, layer 1 (ahead of layer 0)
  r.Layer(1, {7});
  r.pf->EndStep();
  r.Settle();
  // After the step (its last layer, 2, was never acquired) layer 2 means step 2's.
  REQUIRE(r.pf->Predict(2, {4}, true).ok());
  r.pf->BeginStep(2);
  r.Layer(2, {4});
  r.pf->EndStep();
  r.Settle();
  RequireNoViolations(r.fake);
  CHECK(r.LayerStats(2).predicted == 3);
  CHECK(r.LayerStats(2).predicted_correct == 2);
  CHECK(r.LayerStats(2).prefetch_used == 2);  // (2,1) in step 0, (2,4) in step 2
  const auto s0 = r.LayerStats(0);
  CHECK(s0.predicted == 1);
  CHECK(s0.predicted_correct == 1);
  CHECK(s0.actual == 2);
  CHECK(s0.prefetch_used == 1);
  CHECK(r.LayerStats(1).predicted_correct == 1);
}

TEST_CASE("invalid calls fail without issuing copies") {
  Rig r({2, 4}, 2);
  r.pf->BeginStep(0);
  std::vector<int32_t> slot_of;
  CHECK(r.pf->Predict(1, {4}, true).code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.pf->Predict(2, {0}, true).code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.pf->AcquireLayer(0, {0, 9}, &slot_of).code() == absl::StatusCode::kInvalidArgument);
  // More distinct experts than slots.
  CHECK(r.pf->AcquireLayer(0, {0, 1, 2}, &slot_of).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kIssueFill) == 0);
  CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kComputeWaitFill) == 0);
  CHECK(r.pf->stats().h2d_bytes == 0);
  // The step goes on: the same layer with fewer experts is accepted.
  r.Layer(0, {0, 1});
  // The same layer again (a further chunk of its experts) is accepted once released.
  REQUIRE(r.pf->AcquireLayer(0, {0}, &slot_of).ok());
  REQUIRE(r.pf->ReleaseLayer().ok());
  r.Settle();
  REQUIRE(r.pf->AcquireLayer(1, {0}, &slot_of).ok());
  CHECK(r.pf->AcquireLayer(1, {1}, &slot_of).code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(r.pf->ReleaseLayer().ok());
  // Layers go in ascending order within a step.
  CHECK(r.pf->AcquireLayer(0, {0}, &slot_of).code() == absl::StatusCode::kFailedPrecondition);
}

using Trace = std::vector<std::vector<std::vector<int32_t>>>;  // [step][layer] -> experts

enum class Foresight { kNone, kNextLayer, kNextStep };

// Runs `trace` with exact predictions: of the next layer at each layer (across the step
// boundary), or of a whole step at the end of the step before (and of step 0 up front).
// Copies land before the next layer. Returns the total demand misses.
int64_t Run(Rig& r, const Trace& trace, Foresight foresight) {
  const int32_t layers = static_cast<int32_t>(trace[0].size());
  auto predict_step = [&](size_t step) {
    for (int32_t l = 0; l < layers; ++l) REQUIRE(r.pf->Predict(l, trace[step][l], true).ok());
  };
  for (size_t step = 0; step < trace.size(); ++step) {
    r.pf->BeginStep(static_cast<int64_t>(step));
    if (foresight == Foresight::kNextStep && step == 0) predict_step(0);
    for (int32_t l = 0; l < layers; ++l) {
      r.Layer(l, trace[step][l]);
      const bool wrap = l + 1 == layers;
      if (foresight == Foresight::kNextLayer && (!wrap || step + 1 < trace.size())) {
        const auto& next = wrap ? trace[step + 1][0] : trace[step][l + 1];
        REQUIRE(r.pf->Predict(wrap ? 0 : l + 1, next, true).ok());
      }
      if (foresight == Foresight::kNextStep && wrap && step + 1 < trace.size()) {
        predict_step(step + 1);
      }
      r.Settle();
    }
    r.pf->EndStep();
  }
  RequireNoViolations(r.fake);
  int64_t misses = 0;
  for (const auto& s : r.pf->stats().layers) misses += s.misses;
  return misses;
}

TEST_CASE("Belady with exact predictions misses less than LRU on a looping trace") {
  // Every step uses the same 5 experts (one per layer) over 4 slots, and each step is
  // predicted whole at the end of the step before. LRU lets the step's prefetches evict
  // experts the step needs before them; Belady declines those swaps.
  const Trace trace(20, std::vector<std::vector<int32_t>>(5, {1}));
  Rig lru({5, 2}, 4, EvictionPolicyKind::kLru);
  Rig belady({5, 2}, 4, EvictionPolicyKind::kBelady);
  const int64_t lru_misses = Run(lru, trace, Foresight::kNextStep);
  const int64_t belady_misses = Run(belady, trace, Foresight::kNextStep);
  INFO("lru " << lru_misses << ", belady " << belady_misses);
  CHECK(belady_misses < lru_misses);
  CHECK(belady_misses <= 20);  // at most one per step: 4 of the 5 stay or arrive in time
  // Without predictions both thrash: every use misses.
  Rig lru_plain({5, 2}, 4, EvictionPolicyKind::kLru);
  CHECK(Run(lru_plain, trace, Foresight::kNone) == 100);
  Rig belady_plain({5, 2}, 4, EvictionPolicyKind::kBelady);
  CHECK(Run(belady_plain, trace, Foresight::kNone) == 100);
}

TEST_CASE("known uses steer Belady's demand evictions without prefetching or scoring") {
  // Two slots: layer 0 fills both, then layer 1 needs one of them. Only the known use of
  // expert 0 by the next step's layer 0, announced after layer 0 ran (so its slot must be
  // re-ranked), makes Belady evict expert 1 instead, and the next step hit.
  auto next_step_hits = [](EvictionPolicyKind policy, bool announce) {
    Rig r({2, 2}, 2, policy);
    r.pf->BeginStep(0);
    r.Layer(0, {0, 1});
    if (announce) REQUIRE(r.pf->AddKnownUses(0, {0}).ok());  // layer 0 <= current: step 1
    r.Settle();
    r.Layer(1, {0});
    r.pf->EndStep();
    r.Settle();
    const int64_t hits_before = r.LayerStats(0).hits;
    r.pf->BeginStep(1);
    r.Layer(0, {0});
    r.pf->EndStep();
    r.Settle();
    RequireNoViolations(r.fake);
    const auto s = r.LayerStats(0);
    CHECK(s.prefetch_issued == 0);
    CHECK(s.predicted == 0);  // known uses are not predictions: nothing scored
    CHECK(s.actual == 0);
    CHECK(r.fake.CountCalls(FakeCopyEngine::Call::kIssueFill) == (s.hits > hits_before ? 3 : 4));
    return s.hits - hits_before;
  };
  CHECK(next_step_hits(EvictionPolicyKind::kBelady, true) == 1);
  CHECK(next_step_hits(EvictionPolicyKind::kBelady, false) == 0);
  CHECK(next_step_hits(EvictionPolicyKind::kLru, true) == 0);  // LRU ignores foresight
  Rig r({2, 2}, 2, EvictionPolicyKind::kBelady);
  r.pf->BeginStep(0);
  CHECK(r.pf->AddKnownUses(0, {2}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(r.pf->AddKnownUses(2, {0}).code() == absl::StatusCode::kInvalidArgument);
}

// The step's routing, per layer (every layer of these grids is an MoE layer).

struct StressResult {
  std::vector<ExpertKey> reads;  // the experts the kernels saw, in order
  OffloadStats stats;
  int64_t retries = 0;
};

// predict_mode: 0 none, 1 next layer exact, 2 next layer with a wrong expert, 3 whole-step
// foresight (SetStepRouting, PrefetchStepAhead after every layer).
StressResult Stress(EvictionPolicyKind policy, int predict_mode, uint64_t seed) {
  const ExpertGrid grid{4, 8};
  const int32_t slots = 6;
  Rig r(grid, slots, policy, {}, /*step_foresight=*/predict_mode == 3);
  std::mt19937_64 routing_rng(seed);      // the same routing for every configuration
  std::mt19937_64 timing_rng(seed * 7 + predict_mode + 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const int steps = 150;
  Trace trace(steps, std::vector<std::vector<int32_t>>(grid.num_layers));
  for (auto& step : trace) {
    for (auto& layer : step) {
      const int tokens = 1 + static_cast<int>(routing_rng() % 2);  // top-2: <= 4 distinct
      for (int t = 0; t < tokens * 2; ++t) layer.push_back(static_cast<int32_t>(routing_rng() % 8));
    }
  }
  auto device_progress = [&] {
    for (int32_t s : r.fake.InFlightSlots()) {
      if (u(timing_rng) < 0.4) r.fake.Complete(s);
    }
    if (u(timing_rng) < 0.5) r.fake.ComputeDrain();
  };
  StressResult out;
  for (int step = 0; step < steps; ++step) {
    r.pf->BeginStep(step);
    if (predict_mode == 3) {
      REQUIRE(r.pf->SetStepRouting(trace[step]).ok());
      REQUIRE(r.pf->PrefetchStepAhead(-1).ok());
    }
    for (int32_t l = 0; l < grid.num_layers; ++l) {
      if (predict_mode == 1 || predict_mode == 2) {
        // Next layer (across the step boundary): exact, or with one wrong expert.
        const bool wrap = l + 1 == grid.num_layers;
        if (!wrap || step + 1 < steps) {
          std::vector<int32_t> next = wrap ? trace[step + 1][0] : trace[step][l + 1];
          if (predict_mode == 2) next[0] = static_cast<int32_t>(timing_rng() % 8);
          REQUIRE(r.pf->Predict(wrap ? 0 : l + 1, next, predict_mode == 1).ok());
        }
      }
      device_progress();
      std::vector<int32_t> slot_of;
      absl::Status st = r.pf->AcquireLayer(l, trace[step][l], &slot_of);
      if (absl::IsFailedPrecondition(st)) {
        // Copies in flight (this model lets the host run arbitrarily far ahead of the
        // device) hold too many slots; a backend has to wait for them and retry.
        ++out.retries;
        r.Settle();
        st = r.pf->AcquireLayer(l, trace[step][l], &slot_of);
      }
      INFO(st.message());
      REQUIRE(st.ok());
      if (predict_mode == 3) REQUIRE(r.pf->PrefetchStepAhead(l).ok());
      for (int32_t e : trace[step][l]) {
        const absl::Status read = r.fake.ComputeRead(slot_of[e], {l, e});
        INFO(read.message());
        REQUIRE(read.ok());
      }
      REQUIRE(r.pf->ReleaseLayer().ok());
      device_progress();
    }
    r.pf->EndStep();
  }
  r.Settle();
  RequireNoViolations(r.fake);
  for (const auto& e : r.fake.executed_reads()) out.reads.push_back(e.seen);
  out.stats = r.pf->stats();
  std::vector<ExpertKey> expected;
  for (int step = 0; step < steps; ++step) {
    for (int32_t l = 0; l < grid.num_layers; ++l) {
      for (int32_t e : trace[step][l]) expected.push_back({l, e});
    }
  }
  REQUIRE(out.reads == expected);
  return out;
}

TEST_CASE("stress: random routing and timing never read a wrong or half-copied expert") {
  for (EvictionPolicyKind policy :
       {EvictionPolicyKind::kLru, EvictionPolicyKind::kLfu, EvictionPolicyKind::kBelady}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      INFO("policy " << EvictionPolicyName(policy) << ", seed " << seed);
      const StressResult plain = Stress(policy, 0, seed);
      for (int mode : {1, 2, 3}) {
        INFO("prediction mode " << mode);
        const StressResult predicted = Stress(policy, mode, seed);
        // Prefetching changes timing only, never which weights the kernels read.
        CHECK(predicted.reads == plain.reads);
        int64_t issued = 0, used = 0, wasted = 0, misses = 0, uses = 0;
        for (const auto& s : predicted.stats.layers) {
          issued += s.prefetch_issued;
          used += s.prefetch_used;
          wasted += s.prefetch_wasted;
          misses += s.misses;
          uses += s.hits + s.misses;
          CHECK(s.predicted_correct <= s.predicted);
          CHECK(s.predicted_correct <= s.actual);
        }
        CHECK(issued > 0);
        CHECK(used + wasted <= issued);
        CHECK(predicted.stats.h2d_bytes == static_cast<uint64_t>(misses + issued) * kBytes);
        int64_t plain_uses = 0;
        for (const auto& s : plain.stats.layers) plain_uses += s.hits + s.misses;
        CHECK(uses == plain_uses);
      }
    }
  }
}

}  // namespace
}  // namespace moe::engine
