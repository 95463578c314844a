// A CopyEngine for tests: copies complete only when the test says so, and the compute
// stream is modelled explicitly, so that both ordering rules of copy_engine.h can be
// checked rather than assumed.
//
// Model:
//   - Each slot holds the bytes of at most one expert (`contents`, set when a fill
//     completes) and has at most one fill in flight.
//   - The compute stream is an in-order queue of items, each with a sequence number: waits
//     (ComputeWaitFill) and reads (ComputeRead, which the test calls where a real backend
//     would enqueue an expert kernel reading the slot). ComputeDrain() runs the queue in
//     order and stops at a wait whose fill has not completed.
//   - RecordReader(slot) marks every compute item queued so far as a reader of the slot.
//     A fill issued afterwards depends on them: Complete() refuses to complete it before
//     the compute queue has run past them (rule 1: a copy never overwrites data a queued
//     kernel has yet to read).
//   - A read is checked when queued (it must be ordered after the slot's in-flight fill by
//     a ComputeWaitFill, and the slot will then hold `expected`) and again when it runs
//     (no fill into the slot may be running, and the contents must be `expected`)
//     (rule 2: a slot is never read while a copy into it is in flight).
// Violations (also: IssueFill into a slot with a fill in flight, or with queued reads not
// covered by RecordReader; a fill never waited on being read) are recorded in
// violations(); IssueFill and ComputeRead return FailedPrecondition for theirs.
//
// Thread safety: not thread safe (one test thread).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "engine/experts/copy_engine.h"
#include "engine/experts/expert_key.h"

namespace moe::engine {

class FakeCopyEngine : public CopyEngine {
 public:
  struct Call {
    enum Kind { kIssueFill, kFillDone, kComputeWaitFill, kRecordReader };
    Kind kind;
    int32_t slot = -1;
    ExpertKey key{-1, -1};  // kIssueFill only
    bool demand = false;    // kIssueFill only
  };
  // A read that ran: the slot and the expert whose bytes it saw.
  struct ExecutedRead {
    int32_t slot = -1;
    ExpertKey seen{-1, -1};
  };

  explicit FakeCopyEngine(int32_t num_slots);

  // CopyEngine.
  absl::Status IssueFill(int32_t slot, ExpertKey key, bool demand) override;
  bool FillDone(int32_t slot) override;
  absl::Status ComputeWaitFill(int32_t slot) override;
  absl::Status RecordReader(int32_t slot) override;

  // Test controls.
  // Completes `slot`'s fill if one is in flight and the compute work it is ordered after
  // has run; returns whether it completed.
  bool Complete(int32_t slot);
  // Completes every fill that can complete; returns how many did.
  int CompleteAll();
  // Queues a compute read of `slot` expected to see `expected`'s bytes (see the file
  // comment); FailedPrecondition, also recorded, when it would not.
  absl::Status ComputeRead(int32_t slot, ExpertKey expected);
  // Runs the compute queue in order until it is empty or reaches a wait on an incomplete
  // fill; returns the number of items run.
  int ComputeDrain();

  // Inspection.
  const std::vector<Call>& calls() const { return calls_; }
  int64_t CountCalls(Call::Kind kind) const;
  const std::vector<std::string>& violations() const { return violations_; }
  const std::vector<ExecutedRead>& executed_reads() const { return executed_; }
  std::optional<ExpertKey> contents(int32_t slot) const { return slots_[slot].contents; }
  bool fill_in_flight(int32_t slot) const { return slots_[slot].fill.has_value(); }
  std::vector<int32_t> InFlightSlots() const;
  // The compute stream's queue is empty.
  bool compute_idle() const { return queue_.empty(); }
  int32_t num_slots() const { return static_cast<int32_t>(slots_.size()); }

 private:
  struct Fill {
    int64_t id = 0;
    ExpertKey key;
    int64_t after_seq = 0;  // may start once compute has run every item with seq <= this
  };
  struct SlotState {
    std::optional<ExpertKey> contents;
    std::optional<Fill> fill;     // in flight
    int64_t last_fill_id = 0;     // latest fill issued (0: none)
    int64_t done_fill_id = 0;     // latest fill completed
    int64_t waited_fill_id = 0;   // latest fill the compute stream was ordered after
    int64_t readers_upto = 0;     // RecordReader covered compute items with seq <= this
  };
  struct Item {
    int64_t seq = 0;
    bool is_wait = false;
    int32_t slot = -1;
    int64_t fill_id = 0;  // waits
    ExpertKey expected;   // reads
  };

  void Record(std::string what) { violations_.push_back(std::move(what)); }
  absl::Status Violation(std::string what);
  absl::Status CheckSlot(int32_t slot, const char* call) const;
  bool Started(const Fill& f) const { return executed_seq_ >= f.after_seq; }

  std::vector<SlotState> slots_;
  std::deque<Item> queue_;
  int64_t next_seq_ = 1;
  int64_t executed_seq_ = 0;  // every item with seq <= this has run
  int64_t next_fill_id_ = 1;
  std::vector<Call> calls_;
  std::vector<std::string> violations_;
  std::vector<ExecutedRead> executed_;
};

}  // namespace moe::engine
