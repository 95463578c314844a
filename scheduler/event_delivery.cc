#include "scheduler/event_delivery.h"

#include <utility>

namespace moe::scheduler {

EventDelivery::EventDelivery() : thread_([this] { Loop(); }) {}

EventDelivery::~EventDelivery() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void EventDelivery::Post(std::vector<std::function<void()>> batch) {
  if (batch.empty()) return;
  absl::MutexLock lock(&mu_);
  for (auto& f : batch) queue_.push_back(std::move(f));
  posted_ += static_cast<int64_t>(batch.size());
}

void EventDelivery::Flush() {
  absl::MutexLock lock(&mu_);
  const int64_t target = posted_;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ >= target; };
  mu_.Await(absl::Condition(&done));
}

void EventDelivery::Loop() {
  std::deque<std::function<void()>> work;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stop_ with nothing left
      work.swap(queue_);
    }
    // Run the batch outside the lock, so posting never waits for a client's wake-up.
    for (auto& f : work) f();
    {
      absl::MutexLock lock(&mu_);
      done_ += static_cast<int64_t>(work.size());
    }
    work.clear();
  }
}

}  // namespace moe::scheduler
