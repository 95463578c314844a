// Drives one benchmark run: sends every request at its arrival time (arrivals.h), at
// most `max_concurrency` at once, each on its own thread, and times their streams.
//
// Timing: a request's clock starts when it is actually sent, after waiting for a
// concurrency slot (as in vLLM's benchmark); the run's duration is from the first
// dispatch to the end of the last stream. A request that fails (backend error,
// timeout, server error) is recorded with ok = false and the backend's message as its
// reason; every request in the dataset ends up with exactly one record.
//
// Thread safety: RunBenchmark may be called from one thread at a time per backend that
// is not itself safe for concurrent use; the Backend must allow concurrent Generate.
#ifndef MOE_TOOLS_BENCH_RUNNER_H_
#define MOE_TOOLS_BENCH_RUNNER_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "tools/bench/arrivals.h"
#include "tools/bench/backend.h"
#include "tools/bench/dataset.h"
#include "tools/bench/metrics.h"

namespace moe::bench {

struct RunOptions {
  ArrivalOptions arrivals;
  int max_concurrency = 0;  // 0 = unlimited
  GenerateOptions generate;
  bool progress = false;    // draw a progress bar on stderr
};

struct RunResult {
  std::vector<RequestRecord> records;  // in dataset order
  double duration_s = 0.0;
};

// InvalidArgument for bad options (rate, burstiness, negative concurrency, no requests).
absl::StatusOr<RunResult> RunBenchmark(Backend& backend, absl::Span<const BenchRequest> requests,
                                       const RunOptions& options);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_RUNNER_H_
