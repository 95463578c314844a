// A one-line progress bar on stderr: "[=====>    ] 120/500 done, 3 failed, 12.3 s".
//
// Thread safety: Update may be called from any thread; redraws are throttled to ten a
// second. A disabled bar does nothing (use Enabled() to decide: stderr is a terminal).
#ifndef MOE_TOOLS_BENCH_PROGRESS_BAR_H_
#define MOE_TOOLS_BENCH_PROGRESS_BAR_H_

#include <chrono>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moe::bench {

class ProgressBar {
 public:
  ProgressBar(int total, bool enabled);
  ~ProgressBar();  // calls Finish()

  // Records one more finished request.
  void Add(bool ok);
  // Draws the final state and ends the line; idempotent.
  void Finish();

  // The bar's text for `done` of `total` requests; exposed for tests.
  static std::string Render(int done, int failed, int total, double elapsed_s, int width);
  // True when stderr is a terminal.
  static bool StderrIsTty();

 private:
  void DrawLocked(bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int total_;
  const bool enabled_;
  const std::chrono::steady_clock::time_point start_;
  absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_draw_ ABSL_GUARDED_BY(mu_);
};

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_PROGRESS_BAR_H_
