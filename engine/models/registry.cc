#include "engine/models/registry.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace moe::engine {

WeightBinder FindWeightBinder(Architecture arch) {
  switch (arch) {
    case Architecture::kMixtral: return &BindMixtral;
    case Architecture::kQwen2Moe: return &BindQwen2Moe;
    case Architecture::kQwen3Moe: return &BindQwen3Moe;
    case Architecture::kOlmoe: return &BindOlmoe;
  }
  return nullptr;
}

absl::StatusOr<DecoderWeights> BindDecoderWeights(const Checkpoint& ckpt, const ModelConfig& config) {
  WeightBinder binder = FindWeightBinder(config.arch);
  if (binder == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("no weight binder for architecture ", static_cast<int>(config.arch)));
  }
  auto w = binder(ckpt, config);
  if (!w.ok()) {
    return absl::Status(w.status().code(),
                        absl::StrCat(ArchitectureName(config.arch), " checkpoint in ",
                                     ckpt.dir(), ": ", w.status().message()));
  }
  return w;
}

}  // namespace moe::engine
