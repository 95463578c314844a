#include "tools/bench/runner.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tools/bench/progress_bar.h"

namespace moe::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Turns a backend's stream events into a RequestRecord. Called from one thread.
class TimingListener : public StreamListener {
 public:
  TimingListener(Clock::time_point sent, const BenchRequest& request, RequestRecord& record)
      : sent_(sent), last_(sent), request_(request), record_(record) {}

  void OnTokens(int tokens) override {
    auto now = Clock::now();
    if (record_.chunk_tokens.empty()) {
      record_.ttft_s = Seconds(now - sent_);
    } else {
      record_.itl_s.push_back(Seconds(now - last_));
    }
    record_.chunk_tokens.push_back(tokens);
    last_ = now;
  }
  void OnUsage(int prompt_tokens, int completion_tokens) override {
    record_.prompt_tokens = prompt_tokens;
    record_.output_tokens = completion_tokens;
    record_.usage_from_server = true;
  }
  void OnUsageMissing(int completion_tokens) override {
    record_.prompt_tokens = request_.prompt_len;
    record_.output_tokens = completion_tokens;
    record_.usage_from_server = false;
  }

 private:
  Clock::time_point sent_;
  Clock::time_point last_;
  const BenchRequest& request_;
  RequestRecord& record_;
};

// Counting semaphore for the concurrency limit.
class Slots {
 public:
  explicit Slots(int limit) : free_(limit) {}
  void Acquire() {
    absl::MutexLock lock(&mu_, absl::Condition(this, &Slots::Available));
    --free_;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    ++free_;
  }

 private:
  bool Available() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return free_ > 0; }
  absl::Mutex mu_;
  int free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<RunResult> RunBenchmark(Backend& backend, absl::Span<const BenchRequest> requests,
                                       const RunOptions& options) {
  if (requests.empty()) return absl::InvalidArgumentError("num_prompts: no requests to send");
  if (options.max_concurrency < 0) {
    return absl::InvalidArgumentError("max_concurrency: must be >= 0 (0 = unlimited)");
  }
  if (!(options.generate.timeout_s > 0.0)) {
    return absl::InvalidArgumentError("timeout: must be > 0 seconds");
  }
  absl::StatusOr<std::vector<double>> offsets =
      ArrivalOffsets(static_cast<int>(requests.size()), options.arrivals);
  if (!offsets.ok()) return offsets.status();

  const int n = static_cast<int>(requests.size());
  RunResult result;
  result.records.resize(n);
  Slots slots(options.max_concurrency > 0 ? options.max_concurrency : n);
  ProgressBar progress(n, options.progress);
  std::vector<std::thread> threads;
  threads.reserve(n);
  // Finished threads are joined as the run goes, so long runs do not keep thousands of
  // dead threads' stacks around.
  std::unique_ptr<std::atomic<bool>[]> finished(new std::atomic<bool>[n]);
  for (int i = 0; i < n; ++i) finished[i] = false;
  int joined = 0;

  const Clock::time_point start = Clock::now();
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(
        start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>((*offsets)[i])));
    slots.Acquire();
    while (joined < i && finished[joined].load()) threads[joined++].join();
    threads.emplace_back([&, i] {
      const BenchRequest& request = requests[i];
      RequestRecord& record = result.records[i];
      record.index = request.index;
      Clock::time_point sent = Clock::now();
      record.start_s = Seconds(sent - start);
      TimingListener listener(sent, request, record);
      absl::Status status = backend.Generate(request, options.generate, listener);
      record.latency_s = Seconds(Clock::now() - sent);
      record.ok = status.ok();
      if (!status.ok()) {
        record.error = std::string(status.message());
        if (record.error.empty()) record.error = status.ToString();
      }
      progress.Add(record.ok);
      finished[i] = true;
      slots.Release();
    });
  }
  for (int i = joined; i < n; ++i) threads[i].join();
  result.duration_s = Seconds(Clock::now() - start);
  progress.Finish();
  return result;
}

}  // namespace moe::bench
