#include "tools/synthetic/safetensors_stream_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moe::tools {

uint64_t StreamTensorInfo::nbytes() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

absl::StatusOr<std::unique_ptr<SafetensorsStreamWriter>> SafetensorsStreamWriter::Create(
    const std::string& path, std::vector<StreamTensorInfo> tensors,
    const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  for (size_t i = 1; i < tensors.size(); ++i) {
    if (tensors[i].name == tensors[i - 1].name) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", tensors[i].name, "\" listed twice"));
    }
  }
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": reserved tensor name"));
    }
    const uint64_t end = offset + t.nbytes();
    header[t.name] = {{"dtype", DTypeName(t.dtype)}, {"shape", t.shape},
                      {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  auto w = std::unique_ptr<SafetensorsStreamWriter>(new SafetensorsStreamWriter());
  w->path_ = path;
  w->partial_path_ = path + ".partial";
  w->tensors_ = std::move(tensors);
  w->header_bytes_ = 8 + text.size();
  w->data_bytes_ = offset;
  w->f_ = std::fopen(w->partial_path_.c_str(), "wb");
  if (w->f_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", w->partial_path_, ": ", std::strerror(errno)));
  }
  std::setvbuf(w->f_, nullptr, _IOFBF, 1 << 20);
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  if (std::fwrite(len, 1, 8, w->f_) != 8 ||
      std::fwrite(text.data(), 1, text.size(), w->f_) != text.size()) {
    return absl::UnavailableError(
        absl::StrCat("writing ", w->partial_path_, ": ", std::strerror(errno)));
  }
  return w;
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (f_ != nullptr) std::fclose(f_);
  if (!finished_ && !partial_path_.empty()) std::remove(partial_path_.c_str());
}

absl::Status SafetensorsStreamWriter::Append(const void* data, size_t n) {
  if (f_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(path_, ": closed"));
  if (written_ + n > data_bytes_) {
    return absl::OutOfRangeError(absl::StrCat(path_, ": ", written_ + n,
                                              " bytes of tensor data appended, header declares ",
                                              data_bytes_));
  }
  if (std::fwrite(data, 1, n, f_) != n) {
    return absl::UnavailableError(absl::StrCat("writing ", partial_path_, ": ",
                                               std::strerror(errno)));
  }
  written_ += n;
  return absl::OkStatus();
}

absl::Status SafetensorsStreamWriter::Finish() {
  if (f_ == nullptr) return absl::FailedPreconditionError(absl::StrCat(path_, ": closed"));
  if (written_ != data_bytes_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path_, ": only ", written_, " of ", data_bytes_, " bytes of tensor data appended"));
  }
  const bool flushed = std::fflush(f_) == 0;
  const int close_rc = std::fclose(f_);
  f_ = nullptr;
  if (!flushed || close_rc != 0) {
    return absl::UnavailableError(absl::StrCat("writing ", partial_path_, ": ",
                                               std::strerror(errno)));
  }
  if (std::rename(partial_path_.c_str(), path_.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("renaming ", partial_path_, " to ", path_, ": ",
                                               std::strerror(errno)));
  }
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace moe::tools
