// moe_server refuses, at startup and with a message naming the file or both sizes, a
// checkpoint truncated or corrupted on disk and a model that does not fit the memory
// budget; it exits non-zero.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "tests/reliability/reliability_util.h"

namespace moe::reliability {
namespace {

// Runs moe_server on `model` and returns {exit code, stdout + stderr}.
std::pair<int, std::string> RunServer(const std::string& model,
                                      std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--model", model, "--device", "cpu", "--num-threads", "1"};
  if (extra.empty()) extra = {"--num-kv-blocks", "64"};
  args.insert(args.end(), extra.begin(), extra.end());
  ServerProcess p(args);
  const int code = p.WaitExit(absl::Seconds(60));
  return {code, p.Stdout() + p.Stderr()};
}

TEST_CASE("A truncated safetensors file: exit non-zero naming the file") {
  const std::string dir = CopyTinyModel("truncated");
  const std::string file = dir + "/model.safetensors";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  auto [code, out] = RunServer(dir);
  INFO(out);
  REQUIRE(code != 0);
  REQUIRE(code != -1);
  REQUIRE_THAT(out, Catch::Contains("model.safetensors"));
}

TEST_CASE("A corrupted safetensors header: exit non-zero naming the file") {
  const std::string dir = CopyTinyModel("corrupt");
  const std::string file = dir + "/model.safetensors";
  SECTION("JSON header bytes flipped") {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);
    f.write("\xff\xfe{{", 4);
  }
  SECTION("header length prefix larger than the file") {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const char huge[8] = {0, 0, 0, 0, 0, 0, 0, 0x10};
    f.write(huge, 8);
  }
  auto [code, out] = RunServer(dir);
  INFO(out);
  REQUIRE(code != 0);
  REQUIRE(code != -1);
  REQUIRE_THAT(out, Catch::Contains("model.safetensors"));
}

TEST_CASE("Weights + KV cache above --cpu-memory-limit-mb: exit non-zero naming both sizes") {
  auto [code, out] = RunServer(kTinyModel, {"--cpu-memory-limit-mb", "1", "--kv-cache-mb", "64"});
  INFO(out);
  REQUIRE(code != 0);
  REQUIRE(code != -1);
  REQUIRE_THAT(out, Catch::Contains("model too big for the memory budget"));
  REQUIRE_THAT(out, Catch::Contains("weights 0.5 MiB"));
  REQUIRE_THAT(out, Catch::Contains("KV cache 64.0 MiB"));
  REQUIRE_THAT(out, Catch::Contains("cpu_memory_limit_mb is 1.0 MiB"));
}

TEST_CASE("A KV cache larger than the machine's available memory: exit non-zero") {
  auto [code, out] = RunServer(kTinyModel, {"--kv-cache-mb", "1000000000"});
  INFO(out);
  REQUIRE(code != 0);
  REQUIRE(code != -1);
  REQUIRE_THAT(out, Catch::Contains("available memory (MemAvailable)"));
}

TEST_CASE("The same model within budget still serves") {
  ServerProcess p({"--model", kTinyModel, "--device", "cpu", "--num-threads", "1",
                   "--num-kv-blocks", "64", "--cpu-memory-limit-mb", "64"});
  REQUIRE(p.WaitServing(absl::Seconds(60)));
}

}  // namespace
}  // namespace moe::reliability
