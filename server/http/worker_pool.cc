#include "server/http/worker_pool.h"

#include <algorithm>
#include <utility>

namespace moe::server::http {

WorkerPool::WorkerPool(int initial, int max_threads)
    : max_threads_(std::max({1, initial, max_threads})) {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < std::max(1, initial); ++i) StartWorkerLocked();
}

WorkerPool::~WorkerPool() { shutdown(); }

void WorkerPool::StartWorkerLocked() {
  ++idle_;
  threads_.emplace_back([this] { WorkerLoop(); });
}

void WorkerPool::enqueue(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    jobs_.push_back(std::move(fn));
    // Every worker busy (or already claimed by a queued job): grow, within the cap.
    if (idle_ < static_cast<int>(jobs_.size()) &&
        static_cast<int>(threads_.size()) < max_threads_) {
      StartWorkerLocked();
    }
  }
  cv_.notify_one();
}

void WorkerPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && threads_.empty()) return;
    shutdown_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

void WorkerPool::set_max_threads(int max_threads) {
  std::lock_guard<std::mutex> lock(mu_);
  max_threads_ = std::max({max_threads_, max_threads, 1});
}

int WorkerPool::max_threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_threads_;
}

int WorkerPool::num_threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(threads_.size());
}

void WorkerPool::WorkerLoop() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return shutdown_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // shutdown with nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
      --idle_;
    }
    job();
    std::lock_guard<std::mutex> lock(mu_);
    ++idle_;
  }
}

}  // namespace moe::server::http
