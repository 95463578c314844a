#include "scheduler/testing/cpu_test_model.h"

#include <string>
#include <utility>

#include "engine/cpu/cpu_runner.h"

namespace moe::scheduler::testing {

absl::StatusOr<CpuTestModel> LoadCpuTestModel(absl::string_view dir, int num_kv_blocks) {
  CpuTestModel m;
  const std::string path(dir);
  absl::StatusOr<engine::ModelConfig> cfg = engine::LoadModelConfig(path);
  if (!cfg.ok()) return cfg.status();
  m.config = *std::move(cfg);
  auto ck = engine::Checkpoint::Open(path);
  if (!ck.ok()) return ck.status();
  m.ckpt = *std::move(ck);
  engine::RunnerOptions o;
  o.kv_block_size = 16;
  o.num_kv_blocks = num_kv_blocks;
  o.num_threads = 2;
  auto r = engine::CreateCpuRunner(*m.ckpt, m.config, o);
  if (!r.ok()) return r.status();
  m.runner = *std::move(r);
  return m;
}

}  // namespace moe::scheduler::testing
