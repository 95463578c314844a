// Runs closures on one background thread, in the order they were posted. The scheduler's
// engine thread hands every push to a request handle (tokens, completion, error) to it, so
// waking a client's thread — a futex wake per stream per token, and the CPU the woken
// frontend thread then takes — happens beside the next GPU step instead of inside the
// engine's host time between steps. One FIFO and one thread: the events of each handle
// keep their order.
//
// Thread safety: Post and Flush may be called from any thread; the closures run on the
// delivery thread, one at a time.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe::scheduler {

class EventDelivery {
 public:
  EventDelivery();
  // Runs everything still queued, then joins the thread.
  ~EventDelivery();
  EventDelivery(const EventDelivery&) = delete;
  EventDelivery& operator=(const EventDelivery&) = delete;

  // Queues the batch (in order) behind everything posted before.
  void Post(std::vector<std::function<void()>> batch);
  // Returns once every closure posted before this call has run.
  void Flush();

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  int64_t posted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t done_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace moe::scheduler
