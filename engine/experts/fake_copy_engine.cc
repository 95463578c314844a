#include "engine/experts/fake_copy_engine.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::engine {
namespace {

std::string KeyName(ExpertKey k) { return absl::StrCat("(", k.layer, ",", k.expert, ")"); }

std::string KeyName(const std::optional<ExpertKey>& k) {
  return k.has_value() ? KeyName(*k) : std::string("nothing");
}

}  // namespace

FakeCopyEngine::FakeCopyEngine(int32_t num_slots) : slots_(num_slots > 0 ? num_slots : 0) {}

absl::Status FakeCopyEngine::Violation(std::string what) {
  Record(what);
  return absl::FailedPreconditionError(absl::StrCat("fake copy engine: ", what));
}

absl::Status FakeCopyEngine::CheckSlot(int32_t slot, const char* call) const {
  if (slot < 0 || slot >= num_slots()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fake copy engine: ", call, "(", slot, "): no such slot"));
  }
  return absl::OkStatus();
}

absl::Status FakeCopyEngine::IssueFill(int32_t slot, ExpertKey key, bool demand) {
  calls_.push_back({Call::kIssueFill, slot, key, demand});
  if (absl::Status st = CheckSlot(slot, "IssueFill"); !st.ok()) return st;
  SlotState& s = slots_[slot];
  if (s.fill.has_value()) {
    return Violation(absl::StrCat("IssueFill(slot ", slot, ", ", KeyName(key),
                                  ") while the copy of ", KeyName(s.fill->key),
                                  " into it is still in flight"));
  }
  for (const Item& it : queue_) {
    if (!it.is_wait && it.slot == slot && it.seq > s.readers_upto) {
      return Violation(absl::StrCat("IssueFill(slot ", slot, ", ", KeyName(key),
                                    ") while a queued read of ", KeyName(it.expected),
                                    " in it is not covered by RecordReader"));
    }
  }
  Fill f;
  f.id = next_fill_id_++;
  f.key = key;
  f.after_seq = s.readers_upto;
  s.fill = f;
  s.last_fill_id = f.id;
  return absl::OkStatus();
}

bool FakeCopyEngine::FillDone(int32_t slot) {
  calls_.push_back({Call::kFillDone, slot, {-1, -1}, false});
  if (!CheckSlot(slot, "FillDone").ok()) return false;
  return !slots_[slot].fill.has_value();
}

absl::Status FakeCopyEngine::ComputeWaitFill(int32_t slot) {
  calls_.push_back({Call::kComputeWaitFill, slot, {-1, -1}, false});
  if (absl::Status st = CheckSlot(slot, "ComputeWaitFill"); !st.ok()) return st;
  SlotState& s = slots_[slot];
  s.waited_fill_id = s.last_fill_id;
  if (s.fill.has_value()) {  // a wait on a completed copy is a no-op
    Item w;
    w.seq = next_seq_++;
    w.is_wait = true;
    w.slot = slot;
    w.fill_id = s.fill->id;
    queue_.push_back(w);
  }
  return absl::OkStatus();
}

absl::Status FakeCopyEngine::RecordReader(int32_t slot) {
  calls_.push_back({Call::kRecordReader, slot, {-1, -1}, false});
  if (absl::Status st = CheckSlot(slot, "RecordReader"); !st.ok()) return st;
  slots_[slot].readers_upto = next_seq_ - 1;
  return absl::OkStatus();
}

bool FakeCopyEngine::Complete(int32_t slot) {
  if (slot < 0 || slot >= num_slots()) return false;
  SlotState& s = slots_[slot];
  if (!s.fill.has_value() || !Started(*s.fill)) return false;
  s.contents = s.fill->key;
  s.done_fill_id = s.fill->id;
  s.fill.reset();
  return true;
}

int FakeCopyEngine::CompleteAll() {
  int n = 0;
  for (int32_t slot = 0; slot < num_slots(); ++slot) n += Complete(slot) ? 1 : 0;
  return n;
}

absl::Status FakeCopyEngine::ComputeRead(int32_t slot, ExpertKey expected) {
  if (absl::Status st = CheckSlot(slot, "ComputeRead"); !st.ok()) return st;
  const SlotState& s = slots_[slot];
  if (s.fill.has_value() && s.waited_fill_id != s.fill->id) {
    return Violation(absl::StrCat("a read of slot ", slot, " (expecting ", KeyName(expected),
                                  ") would race with the copy of ", KeyName(s.fill->key),
                                  " into it: the compute stream never waited on that copy"));
  }
  const std::optional<ExpertKey> will_hold =
      s.fill.has_value() ? std::optional<ExpertKey>(s.fill->key) : s.contents;
  if (will_hold != expected) {
    return Violation(absl::StrCat("a read of slot ", slot, " expects ", KeyName(expected),
                                  " but the slot will hold ", KeyName(will_hold)));
  }
  Item r;
  r.seq = next_seq_++;
  r.slot = slot;
  r.expected = expected;
  queue_.push_back(r);
  return absl::OkStatus();
}

int FakeCopyEngine::ComputeDrain() {
  int n = 0;
  while (!queue_.empty()) {
    const Item it = queue_.front();
    SlotState& s = slots_[it.slot];
    if (it.is_wait) {
      if (s.done_fill_id < it.fill_id) break;
    } else {
      if (s.fill.has_value() && Started(*s.fill)) {
        Record(absl::StrCat("a read of slot ", it.slot, " ran while the copy of ",
                               KeyName(s.fill->key), " into it was in flight"));
      } else if (s.contents != it.expected) {
        Record(absl::StrCat("a read of slot ", it.slot, " expected ", KeyName(it.expected),
                               " and saw ", KeyName(s.contents)));
      }
      executed_.push_back({it.slot, s.contents.value_or(ExpertKey{-1, -1})});
    }
    executed_seq_ = it.seq;
    queue_.pop_front();
    ++n;
  }
  return n;
}

int64_t FakeCopyEngine::CountCalls(Call::Kind kind) const {
  int64_t n = 0;
  for (const Call& c : calls_) n += c.kind == kind ? 1 : 0;
  return n;
}

std::vector<int32_t> FakeCopyEngine::InFlightSlots() const {
  std::vector<int32_t> out;
  for (int32_t slot = 0; slot < num_slots(); ++slot) {
    if (slots_[slot].fill.has_value()) out.push_back(slot);
  }
  return out;
}

}  // namespace moe::engine
