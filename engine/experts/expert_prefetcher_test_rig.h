// The test rig shared by the ExpertPrefetcher tests: a prefetcher over FakeCopyEngine,
// one engine-like layer pass (acquire, the expert kernels' reads, release), settling the
// fake device, per-layer counters. Test-only; single-threaded.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/experts/expert_prefetcher.h"
#include "engine/experts/fake_copy_engine.h"

namespace moe::engine::testing {

// One step's experts per MoE layer (ExpertPrefetcher::SetStepRouting).
using StepRouting = std::vector<std::vector<int32_t>>;

constexpr uint64_t kBytes = 1000;

struct Rig {
  FakeCopyEngine fake;
  std::unique_ptr<ExpertPrefetcher> pf;

  Rig(ExpertGrid grid, int32_t slots, EvictionPolicyKind policy = EvictionPolicyKind::kLru,
      std::vector<int32_t> moe_layers = {}, bool step_foresight = false)
      : fake(slots) {
    ExpertPrefetcherOptions o;
    o.step_foresight = step_foresight;
    o.grid = grid;
    o.num_slots = slots;
    o.bytes_per_expert = kBytes;
    o.policy = policy;
    o.moe_layers = std::move(moe_layers);
    auto p = ExpertPrefetcher::Create(o, &fake);
    REQUIRE(p.ok());
    pf = std::move(*p);
  }

  // One layer as an engine runs it: acquire, enqueue the expert kernels (reads the fake
  // checks), release. Returns slot_of.
  std::vector<int32_t> Layer(int32_t layer, const std::vector<int32_t>& experts) {
    std::vector<int32_t> slot_of;
    const absl::Status st = pf->AcquireLayer(layer, experts, &slot_of);
    INFO(st.message());
    REQUIRE(st.ok());
    for (int32_t e : experts) {
      REQUIRE(slot_of[e] >= 0);
      const absl::Status read = fake.ComputeRead(slot_of[e], {layer, e});
      INFO(read.message());
      REQUIRE(read.ok());
    }
    REQUIRE(pf->ReleaseLayer().ok());
    return slot_of;
  }

  // Lets the device catch up: every copy and every queued kernel finishes.
  void Settle() {
    for (int guard = 0; guard < 1000; ++guard) {
      const int progress = fake.CompleteAll() + fake.ComputeDrain();
      if (progress == 0) break;
    }
    REQUIRE(fake.compute_idle());
    REQUIRE(fake.InFlightSlots().empty());
  }

  OffloadLayerStats LayerStats(int32_t layer) const {
    for (const auto& s : pf->stats().layers) {
      if (s.layer == layer) return s;
    }
    FAIL("no counters for layer " << layer);
    return {};
  }
};

inline void RequireNoViolations(const FakeCopyEngine& fake) {
  for (const auto& v : fake.violations()) INFO(v);
  REQUIRE(fake.violations().empty());
}

}  // namespace moe::engine::testing
