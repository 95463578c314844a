#include "tools/bench/progress_bar.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"

namespace moe::bench {

ProgressBar::ProgressBar(int total, bool enabled)
    : total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { Finish(); }

bool ProgressBar::StderrIsTty() { return isatty(STDERR_FILENO) == 1; }

std::string ProgressBar::Render(int done, int failed, int total, double elapsed_s, int width) {
  int filled = total > 0 ? static_cast<int>(static_cast<double>(done) / total * width) : width;
  std::string bar(width, ' ');
  for (int i = 0; i < filled && i < width; ++i) bar[i] = '=';
  if (filled < width) bar[filled] = '>';
  return absl::StrFormat("[%s] %d/%d done, %d failed, %.1f s", bar, done, total, failed,
                         elapsed_s);
}

void ProgressBar::Add(bool ok) {
  if (!enabled_) return;
  absl::MutexLock lock(&mu_);
  ++done_;
  if (!ok) ++failed_;
  DrawLocked(false);
}

void ProgressBar::Finish() {
  if (!enabled_) return;
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  DrawLocked(true);
  std::fputc('\n', stderr);
  finished_ = true;
}

void ProgressBar::DrawLocked(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  std::fprintf(stderr, "\r%s", Render(done_, failed_, total_, elapsed, 40).c_str());
  std::fflush(stderr);
}

}  // namespace moe::bench
