// The HTTP listener's task queue: a thread pool that starts with `initial` workers and
// adds one whenever a connection arrives while every worker is busy, up to a cap. An SSE
// stream holds its worker until it ends, so the cap bounds concurrent streams; the
// gateway raises it once the scheduler is known (max_num_seqs + headroom), so every
// sequence the engine can run at once can also be streamed. Connections beyond the cap
// wait in the queue.
//
// Thread safety: enqueue / shutdown / set_max_threads may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <httplib.h>

namespace moe::server::http {

class WorkerPool : public httplib::TaskQueue {
 public:
  // `initial` >= 1 workers start at once; at most `max_threads` (>= initial) ever run.
  WorkerPool(int initial, int max_threads);
  ~WorkerPool() override;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;  // runs queued tasks, then joins every worker

  // Raises (never lowers below the running workers) the cap.
  void set_max_threads(int max_threads);
  int max_threads() const;
  int num_threads() const;

 private:
  void StartWorkerLocked();
  void WorkerLoop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  int idle_ = 0;
  int max_threads_;
  bool shutdown_ = false;
};

}  // namespace moe::server::http
