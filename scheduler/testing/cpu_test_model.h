// A model directory loaded with the CPU runner, for scheduler tests that run real
// routing and real logits (block size 16, 2 threads).
//
// Thread safety: a plain value; the runner is used as the scheduler uses it.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"

namespace moe::scheduler::testing {

struct CpuTestModel {
  engine::ModelConfig config;
  std::unique_ptr<engine::Checkpoint> ckpt;  // the runner reads it: keep it alive
  std::unique_ptr<engine::ModelRunner> runner;
};

// Fails with the loader's status (naming the file at fault).
absl::StatusOr<CpuTestModel> LoadCpuTestModel(absl::string_view dir, int num_kv_blocks);

}  // namespace moe::scheduler::testing
