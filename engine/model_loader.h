// Loads everything needed to serve a Hugging Face model directory: config, weights
// (memory-mapped), tokenizer and a ModelRunner on the chosen device.
//
// Thread safety: LoadModel may be called from any thread; the result is owned by the
// caller. The runner inside is driven by one thread at a time (see model_runner.h).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"
#include "engine/tokenizer/tokenizer.h"

namespace moe::engine {

enum class DeviceKind { kAuto, kCpu, kCuda };

// Parses "auto" | "cpu" | "cuda"; the error names the field "device".
absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view s);

struct LoadOptions {
  DeviceKind device = DeviceKind::kAuto;
  RunnerOptions runner;
  // Called with (bytes done, bytes total) while weights are prepared; may be empty.
  std::function<void(size_t, size_t)> progress;
};

struct LoadedModel {
  ModelConfig config;
  std::unique_ptr<Checkpoint> checkpoint;  // must outlive runner
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ModelRunner> runner;
  DeviceKind device = DeviceKind::kCpu;  // the device actually chosen
  std::string device_reason;             // e.g. "no CUDA device: CUDA driver version is insufficient"
};

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir, const LoadOptions& options);

}  // namespace moe::engine
