#include "tools/bench/progress_bar.h"

#include <catch2/catch.hpp>

namespace moe::bench {
namespace {

TEST_CASE("The progress bar shows the fraction done and the failures", "[progress]") {
  CHECK(ProgressBar::Render(5, 1, 10, 2.5, 10) == "[=====>    ] 5/10 done, 1 failed, 2.5 s");
  CHECK(ProgressBar::Render(10, 0, 10, 4.0, 10) == "[==========] 10/10 done, 0 failed, 4.0 s");
  CHECK(ProgressBar::Render(0, 0, 10, 0.0, 4) == "[>   ] 0/10 done, 0 failed, 0.0 s");
}

TEST_CASE("A disabled progress bar accepts updates and draws nothing", "[progress]") {
  ProgressBar bar(3, false);
  bar.Add(true);
  bar.Add(false);
  bar.Finish();
  SUCCEED();
}

}  // namespace
}  // namespace moe::bench
