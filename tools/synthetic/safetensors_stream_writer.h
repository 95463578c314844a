// Writes a safetensors file whose tensors are produced piece by piece, so a multi-GB
// shard is never held in memory. Same format as the Python library writes: an 8-byte
// little-endian header length, a JSON header (keys sorted, "__metadata__" first) padded
// with spaces to a multiple of 8, then the tensors' bytes in name order.
//
// The file is written to `path` + ".partial" and renamed on Finish(), so an interrupted
// run never leaves a plausible-looking truncated shard.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/dtype.h"

namespace moe::tools {

struct StreamTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

class SafetensorsStreamWriter {
 public:
  // Writes the header. `tensors` may come in any order; layout() gives the data order.
  // Fails on duplicate names, naming the tensor, or when the file cannot be created.
  static absl::StatusOr<std::unique_ptr<SafetensorsStreamWriter>> Create(
      const std::string& path, std::vector<StreamTensorInfo> tensors,
      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});
  ~SafetensorsStreamWriter();  // removes the .partial file if Finish() did not succeed

  // The tensors in the order their bytes must be appended (sorted by name).
  const std::vector<StreamTensorInfo>& layout() const { return tensors_; }
  uint64_t data_bytes() const { return data_bytes_; }
  uint64_t file_bytes() const { return header_bytes_ + data_bytes_; }

  // Appends the next `n` bytes of tensor data (layout order). Errors name the file
  // (disk full...) or report writing past the declared size.
  absl::Status Append(const void* data, size_t n);
  // Checks every declared byte was appended, flushes, closes and renames into place.
  absl::Status Finish();

 private:
  SafetensorsStreamWriter() = default;
  std::string path_;
  std::string partial_path_;
  std::FILE* f_ = nullptr;
  std::vector<StreamTensorInfo> tensors_;
  uint64_t header_bytes_ = 0;
  uint64_t data_bytes_ = 0;
  uint64_t written_ = 0;
  bool finished_ = false;
};

}  // namespace moe::tools
