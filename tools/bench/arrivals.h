// Request arrival schedule: when each request is sent, relative to the benchmark start.
//
// An infinite rate sends everything at t = 0. A finite rate draws the gaps between
// arrivals from a gamma distribution with shape = burstiness and scale =
// 1 / (rate * burstiness), so the mean gap is always 1 / rate and the coefficient of
// variation is 1 / sqrt(burstiness): burstiness 1 is a Poisson process, < 1 burstier,
// > 1 more regular. Pure function; thread-safe; seeded and reproducible.
#ifndef MOE_TOOLS_BENCH_ARRIVALS_H_
#define MOE_TOOLS_BENCH_ARRIVALS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::bench {

struct ArrivalOptions {
  // Requests per second; +infinity (or <= 0 is rejected) sends all at once.
  double request_rate = 0.0;
  double burstiness = 1.0;
  uint64_t seed = 0;
};

// Returns `count` non-decreasing offsets in seconds; the first request goes at 0 and each
// later one a drawn gap after the previous (as vLLM's benchmark does). Fails with
// InvalidArgument for a rate or burstiness that is not > 0.
absl::StatusOr<std::vector<double>> ArrivalOffsets(int count, const ArrivalOptions& options);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_ARRIVALS_H_
