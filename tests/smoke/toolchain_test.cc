#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#ifdef MOE_HAVE_CUDA
#include "kernels/cuda/device_query.h"
#endif

TEST_CASE("toolchain links absl and spdlog") {
  absl::StatusOr<int> v = absl::InvalidArgumentError(absl::StrCat("field ", "x"));
  REQUIRE_FALSE(v.ok());
  REQUIRE(v.status().message() == "field x");
  spdlog::info("spdlog works");
}

#ifdef MOE_HAVE_CUDA
TEST_CASE("CUDA device query answers without a GPU") {
  auto info = moe::kernels::cuda::QueryDevices();
  if (info.count == 0) REQUIRE_FALSE(info.error.empty());
}
#endif
