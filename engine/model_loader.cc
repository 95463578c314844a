#include "engine/model_loader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/cpu/cpu_runner.h"
#include "engine/experts/routing_format.h"
#ifdef MOE_HAVE_CUDA
#include "engine/cuda/cuda_runner.h"
#include "kernels/cuda/device_query.h"
#endif

namespace moe::engine {

absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view s) {
  if (s == "auto") return DeviceKind::kAuto;
  if (s == "cpu") return DeviceKind::kCpu;
  if (s == "cuda") return DeviceKind::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("device: '", s, "' is not one of auto, cpu, cuda"));
}

namespace {

// Decides where the model runs. A CUDA device is used only when one is present and this
// build has a CUDA backend for models; otherwise the CPU backend runs it, and the reason
// is reported so the server can log it.
absl::StatusOr<DeviceKind> ChooseDevice(DeviceKind requested, std::string* reason) {
  std::string cuda_state;
  int cuda_devices = 0;
#ifdef MOE_HAVE_CUDA
  kernels::cuda::DeviceInfo info = kernels::cuda::QueryDevices();
  cuda_devices = info.count;
  cuda_state = info.count > 0
                   ? absl::StrCat(info.count, " CUDA device(s), first: ", info.name)
                   : absl::StrCat("no CUDA device: ", info.error);
#else
  cuda_state = "this build has no CUDA support (--config=cpu)";
#endif
#ifdef MOE_HAVE_CUDA
  constexpr bool kCudaModelBackend = true;
#else
  constexpr bool kCudaModelBackend = false;
#endif
  switch (requested) {
    case DeviceKind::kCpu:
      *reason = "requested cpu";
      return DeviceKind::kCpu;
    case DeviceKind::kCuda:
      if (cuda_devices == 0) {
        return absl::FailedPreconditionError(absl::StrCat("device=cuda: ", cuda_state));
      }
      if (!kCudaModelBackend) {
        return absl::UnimplementedError(absl::StrCat(
            "device=cuda: ", cuda_state,
            ", but this build has no CUDA model backend yet; use --device cpu"));
      }
      *reason = cuda_state;
      return DeviceKind::kCuda;
    case DeviceKind::kAuto:
      if (cuda_devices > 0 && kCudaModelBackend) {
        *reason = cuda_state;
        return DeviceKind::kCuda;
      }
      *reason = cuda_devices > 0
                    ? absl::StrCat(cuda_state, "; no CUDA model backend in this build, using cpu")
                    : absl::StrCat(cuda_state, "; using cpu");
      return DeviceKind::kCpu;
  }
  return absl::InternalError("unreachable device kind");
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir, const LoadOptions& options) {
  const std::string& dt = options.runner.dtype;
  if (dt != "auto" && dt != "bf16" && dt != "fp16" && dt != "fp32") {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype: '", dt, "' is not one of auto, bf16, fp16, fp32"));
  }
  LoadedModel model;
  auto device = ChooseDevice(options.device, &model.device_reason);
  if (!device.ok()) return device.status();
  model.device = *device;

  auto config = LoadModelConfig(dir);
  if (!config.ok()) return config.status();
  model.config = *std::move(config);

  // The routing variant (standard, pre-gated, decoupled router) is validated here so a
  // malformed moe_serve_routing key fails the load early; every variant runs on both
  // backends.
  auto routing = LoadRoutingFormat(dir, model.config);
  if (!routing.ok()) return routing.status();

  auto checkpoint = Checkpoint::Open(dir);
  if (!checkpoint.ok()) return checkpoint.status();
  model.checkpoint = *std::move(checkpoint);

  auto tokenizer = Tokenizer::FromDirectory(dir);
  if (!tokenizer.ok()) return tokenizer.status();
  model.tokenizer = *std::move(tokenizer);
  if (model.tokenizer->vocab_size() > model.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, "/tokenizer.json: the tokenizer has ", model.tokenizer->vocab_size(),
        " tokens but config.json's vocab_size is ", model.config.vocab_size));
  }

  absl::StatusOr<std::unique_ptr<ModelRunner>> runner;
#ifdef MOE_HAVE_CUDA
  if (model.device == DeviceKind::kCuda) {
    auto dtype = ParseCudaDType(options.runner.dtype);
    if (!dtype.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("dtype: ", dtype.status().message()));
    }
    runner = CreateCudaRunner(*model.checkpoint, model.config, options.runner, *dtype);
  } else {
    runner = CreateCpuRunner(*model.checkpoint, model.config, options.runner);
  }
#else
  runner = CreateCpuRunner(*model.checkpoint, model.config, options.runner);
#endif
  if (!runner.ok()) return runner.status();
  model.runner = *std::move(runner);
  if (options.progress) {
    size_t total = model.checkpoint->TotalBytes();
    options.progress(total, total);
  }
  return model;
}

}  // namespace moe::engine
