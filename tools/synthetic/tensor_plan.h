// The tensors of a synthetic checkpoint: Hugging Face names and shapes per family, exactly
// as the published checkpoints spell them (one tensor per expert), with how each is
// initialised.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tools/synthetic/synthetic_spec.h"

namespace moe::tools {

enum class InitKind {
  kNormal,  // std * N(0, 1)
  kNorm,    // 1 + std * N(0, 1)  (RMSNorm weights)
};

struct PlannedTensor {
  std::string name;
  std::vector<int64_t> shape;
  InitKind init = InitKind::kNormal;
  float std = 0.f;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// In model order: embeddings, then layer by layer, then the final norm and lm_head.
// The spec must have passed ValidateSpec.
std::vector<PlannedTensor> PlanTensors(const SyntheticSpec& spec);

int64_t ParameterCount(const SyntheticSpec& spec);

}  // namespace moe::tools
