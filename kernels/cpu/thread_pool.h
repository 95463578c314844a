// A small fixed-size thread pool for the CPU kernels, and ParallelFor over an index range.
//
// Thread safety: ParallelFor may be called from any thread; concurrent calls on one pool
// are serialised (one parallel loop runs at a time). A ParallelFor issued from inside a
// running loop body (nested parallelism) runs serially on the calling thread, so kernels
// may call each other freely.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moe::kernels::cpu {

class ThreadPool {
 public:
  // `num_threads` counts the calling thread too: a pool of N runs loop bodies on N
  // threads (N-1 workers + the caller). 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), each at least `min_chunk`
  // long (except possibly the last), and returns when all chunks are done.
  void ParallelFor(int64_t n, int64_t min_chunk, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void WorkerLoop();
  void RunChunks();

  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor calls

  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  bool stop_ = false;
  uint64_t generation_ = 0;
  // The current loop (valid while a ParallelFor is running).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  int64_t num_chunks_ = 0;
  int64_t next_chunk_ = 0;      // guarded by mu_
  int64_t chunks_done_ = 0;     // guarded by mu_
  int active_workers_ = 0;      // workers inside RunChunks, guarded by mu_
};

// Runs fn over [0, n) on `pool`, or serially when `pool` is null or n is small.
void ParallelFor(ThreadPool* pool, int64_t n, int64_t min_chunk,
                 const std::function<void(int64_t, int64_t)>& fn);

}  // namespace moe::kernels::cpu
