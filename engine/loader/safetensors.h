// Reads safetensors files by memory-mapping them: tensor data is never copied, the
// TensorViews point into the read-only mapping, which lives as long as the file object.
//
// Thread safety: a SafetensorsFile is immutable after Open() and may be read from any
// thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/dtype.h"

namespace moe::engine {

// A tensor inside a mapped checkpoint file. `data` points into the mapping.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // path of the file holding it, for error messages

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  std::string ShapeString() const;  // "[8, 64]"
};

// The parsed JSON header of a safetensors file, with offsets relative to the data section.
struct SafetensorsHeaderEntry {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
};
struct SafetensorsHeader {
  uint64_t header_size = 0;  // the JSON's length (the first 8 bytes of the file)
  std::vector<SafetensorsHeaderEntry> entries;
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// Parses and validates a whole safetensors file image (`bytes` is the file, at least the
// header). Every error names `path` and, where one is at fault, the tensor: a header
// length past the file, malformed JSON, an unknown dtype, a shape whose element count
// disagrees with its byte range, offsets that run past the file or overlap.
// Pure function of its input: the fuzz target calls it directly.
absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view bytes,
                                                         absl::string_view path);

class SafetensorsFile {
 public:
  // Maps `path` read-only and parses its header. Errors name the file.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(absl::string_view name) const;  // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The whole mapping (for cudaHostRegister by the offload pool).
  const void* mapped_data() const { return map_; }
  size_t mapped_size() const { return map_size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` holds numel * DTypeSize(dtype) bytes.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string data;
};

// Writes a safetensors file as the Python library does: header JSON padded with spaces
// to a multiple of 8; tensors laid out by element size, largest first, then by name, so
// every tensor is aligned to its element size in the mapping (for single-dtype files this
// is plain name order). Written to `path`.tmp.<pid> and renamed, so readers never see a
// partial file. Errors (not written) for duplicate names or data of the wrong size.
// Used by make_synthetic_model and by tests.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace moe::engine
