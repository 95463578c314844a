// Where engine_bench's model comes from: a checkpoint directory (--model DIR, memory-
// mapped) or a synthetic model built in host memory (--synthetic PROFILE, see
// tools/synthetic/in_memory_model.h: dense weights exact, routed experts cycling through
// --distinct-experts buffers), so shapes whose checkpoint would not fit on the disk
// (Mixtral-8x7B) can be benchmarked. The model is loaded once and shared by every pass.
//
// Thread safety: BenchModel is immutable after Load; readable from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "tools/synthetic/in_memory_model.h"

namespace moe::engine {

struct BenchModelFlags {
  std::string model_dir;          // --model
  std::string synthetic_profile;  // --synthetic (a built-in profile name)
  std::string routing = "standard";
  uint64_t seed = 1;
  int distinct_experts = 16;
  int threads = 0;  // 0: hardware concurrency
  // Whether a synthetic-only flag (--routing, --seed, --distinct-experts, --threads) was
  // given: refused with --model, which would silently ignore it.
  bool synthetic_flag_given = false;
};

// Whether `flag` is one of --model, --synthetic, --routing, --seed, --distinct-experts,
// --threads; ParseBenchModelFlag then stores its value (an error names the flag and value).
bool IsBenchModelFlag(const std::string& flag);
absl::Status ParseBenchModelFlag(const std::string& flag, const std::string& value,
                                 BenchModelFlags* flags);

// Checks that exactly one of --model / --synthetic is given, and that the synthetic-only
// flags come with --synthetic. The error names the flags.
absl::Status ValidateBenchModelFlags(const BenchModelFlags& flags);

class BenchModel {
 public:
  // Opens the directory or builds the synthetic model, printing (stdout) what it did:
  // for a synthetic model its build time and resident / virtual bytes.
  static absl::StatusOr<std::unique_ptr<BenchModel>> Load(const BenchModelFlags& flags);

  const Checkpoint& checkpoint() const;
  const ModelConfig& config() const { return config_; }
  // For rows and JSON: the directory, or "synthetic:PROFILE:ROUTING".
  const std::string& label() const { return label_; }
  // The routing for the JSON's "routing" field: the synthetic model's, or for a directory
  // $MOE_ROUTING when set, else "standard".
  const std::string& routing() const { return routing_; }

 private:
  BenchModel() = default;
  ModelConfig config_;
  std::unique_ptr<Checkpoint> disk_;                 // --model
  std::unique_ptr<moe::tools::InMemoryModel> memory_;  // --synthetic
  std::string label_, routing_;
};

}  // namespace moe::engine
