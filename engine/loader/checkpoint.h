// A Hugging Face model directory: config.json, one `model.safetensors` or shards listed in
// `model.safetensors.index.json`, tokenizer files and generation_config.json.
// All shards are memory-mapped; tensors are looked up by their Hugging Face names.
// FromMemory builds one over caller-owned tensor data instead (synthetic models built in
// memory by benchmarks), with the same lookups.
//
// Thread safety: immutable after Open(); safe to read from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/loader/safetensors.h"

namespace moe::engine {

class Checkpoint {
 public:
  // Opens `dir`. Fails with a message naming the file when config.json or the weights
  // are missing, a shard named by the index is missing or truncated, or two shards hold
  // the same tensor.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  // A checkpoint over caller-owned memory: `views` are taken as they are (their `data`
  // pointers stay owned by the caller, who must keep them alive and unchanged longer than
  // the Checkpoint; several views may share data). Names must be distinct (of duplicates
  // the first is kept). A view with an empty `file` gets `label` there, so errors name
  // it. dir() returns `label`; files() is empty; Find/Get/TensorNames/TotalBytes behave
  // as for a file checkpoint (TotalBytes counts shared data once per view).
  static std::unique_ptr<Checkpoint> FromMemory(std::string label, std::vector<TensorView> views);

  // The directory (or FromMemory's label).
  const std::string& dir() const { return dir_; }
  const TensorView* Find(absl::string_view name) const;  // nullptr if absent

  // The tensor `name`, checked: present, a float dtype (F32/F16/BF16) and exactly
  // `shape`. The error names the tensor, its file, and the expected and actual shapes.
  absl::StatusOr<const TensorView*> Get(absl::string_view name,
                                        const std::vector<int64_t>& shape) const;

  std::vector<std::string> TensorNames() const;  // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

  // Total bytes of all tensors.
  size_t TotalBytes() const;

 private:
  Checkpoint() = default;
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<TensorView> memory_views_;  // FromMemory's; never resized after construction
  std::map<std::string, const TensorView*, std::less<>> by_name_;
};

// Reads a whole small text file (config.json and friends). The error names the path.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace moe::engine
