#include "tools/bench/arrivals.h"

#include <cmath>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::bench {

absl::StatusOr<std::vector<double>> ArrivalOffsets(int count, const ArrivalOptions& o) {
  if (count < 0) return absl::InvalidArgumentError("count: must be >= 0");
  if (!(o.request_rate > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_rate: must be > 0 or inf (got ", o.request_rate, ")"));
  }
  std::vector<double> out(count, 0.0);
  if (std::isinf(o.request_rate)) return out;
  if (!(o.burstiness > 0.0) || std::isinf(o.burstiness)) {
    return absl::InvalidArgumentError(
        absl::StrCat("burstiness: must be a finite value > 0 (got ", o.burstiness, ")"));
  }
  std::mt19937_64 rng(o.seed);
  std::gamma_distribution<double> gap(o.burstiness, 1.0 / (o.request_rate * o.burstiness));
  double t = 0.0;
  for (int i = 0; i < count; ++i) {
    out[i] = t;
    t += gap(rng);
  }
  return out;
}

}  // namespace moe::bench
