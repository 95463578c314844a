// Writes a complete Hugging Face-format model directory with seeded random weights:
// config.json, generation_config.json, model.safetensors (or model-0000i-of-0000n
// shards plus model.safetensors.index.json when the weights exceed the shard size),
// tokenizer.json and tokenizer_config.json. Tensors are generated and written piece by
// piece, so memory use stays small whatever the model's size.
//
// Same spec (seed included) → byte-identical files. A tensor's values depend only on
// the seed and its name, not on sharding or dtype order.
//
// Thread safety: WriteSyntheticModel may run concurrently for different directories.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/synthetic/synthetic_spec.h"

namespace moe::tools {

struct WriteProgress {
  uint64_t bytes_done = 0;   // tensor bytes written so far
  uint64_t bytes_total = 0;  // of all weight files
  std::string file;          // the file being written
};

struct WrittenFile {
  std::string name;  // relative to the directory
  uint64_t bytes = 0;
};

struct WriteOptions {
  // Called about every 256 MiB of weights and at the end of each weight file.
  std::function<void(const WriteProgress&)> on_progress;
  int threads = 0;  // generation threads; 0: the machine's hardware concurrency
  bool check_free_space = true;
};

// Creates `out_dir` if needed. Weight files this function would write under other names
// (a stale model.safetensors, shards or index from an earlier run) are removed first so
// the directory holds one consistent checkpoint. Errors name the file or spec field;
// a directory without room for the weights is refused before anything is written.
absl::Status WriteSyntheticModel(const SyntheticSpec& spec, const std::string& out_dir);
absl::Status WriteSyntheticModel(const SyntheticSpec& spec, const std::string& out_dir,
                                 const WriteOptions& options, std::vector<WrittenFile>* written);

// The weight files' names and the tensors in each, as WriteSyntheticModel splits them:
// tensors in model order, a new shard whenever the next tensor would overflow the shard
// size (a tensor larger than a shard gets one of its own).
struct ShardPlan {
  std::string file;
  std::vector<size_t> tensors;  // indices into PlanTensors(spec)
  uint64_t bytes = 0;
};
std::vector<ShardPlan> PlanShards(const SyntheticSpec& spec);

}  // namespace moe::tools
