#include "engine/loader/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe::engine {
namespace {

using nlohmann::json;

// The Python library refuses headers above 100 MB; so do we, before allocating anything.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

bool ParseDType(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16},
      {"F64", DType::kF64}, {"I64", DType::kI64}, {"I32", DType::kI32},
      {"I16", DType::kI16}, {"I8", DType::kI8},   {"U8", DType::kU8},
      {"BOOL", DType::kBool},
  };
  for (const auto& [name, t] : kNames) {
    if (s == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

uint64_t ReadLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Validates one tensor entry of the header; `data_size` is the data section's length.
absl::Status ParseEntry(const std::string& name, const json& value, uint64_t data_size,
                        absl::string_view path, SafetensorsHeaderEntry* entry) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors file ", path, ": tensor '", name, "': ", what));
  };
  if (!value.is_object()) return bad("header entry is not a JSON object");
  entry->name = name;

  auto dt = value.find("dtype");
  if (dt == value.end() || !dt->is_string()) return bad("missing or non-string 'dtype'");
  if (!ParseDType(dt->get<std::string>(), &entry->dtype)) {
    return bad(absl::StrCat("unknown dtype '", dt->get<std::string>(), "'"));
  }

  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) return bad("missing or non-array 'shape'");
  // Element count, checked for overflow: a hostile header must not wrap it around.
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *shape) {
    if (!d.is_number_integer()) return bad("'shape' holds a non-integer");
    int64_t v = d.get<int64_t>();
    if (v < 0) return bad(absl::StrCat("negative dimension ", v, " in 'shape'"));
    entry->shape.push_back(v);
    uint64_t u = static_cast<uint64_t>(v);
    if (u != 0 && numel > std::numeric_limits<uint64_t>::max() / u) overflow = true;
    numel *= u;
  }

  auto offs = value.find("data_offsets");
  if (offs == value.end() || !offs->is_array() || offs->size() != 2 ||
      !(*offs)[0].is_number_unsigned() || !(*offs)[1].is_number_unsigned()) {
    return bad("missing 'data_offsets' or not a pair of non-negative integers");
  }
  entry->begin = (*offs)[0].get<uint64_t>();
  entry->end = (*offs)[1].get<uint64_t>();
  if (entry->begin > entry->end) {
    return bad(absl::StrCat("data_offsets [", entry->begin, ", ", entry->end,
                            "] run backwards"));
  }
  if (entry->end > data_size) {
    return bad(absl::StrCat("data_offsets [", entry->begin, ", ", entry->end,
                            "] run past the end of the data section (", data_size,
                            " bytes); the file is truncated or corrupt"));
  }
  uint64_t elem = DTypeSize(entry->dtype);
  if (overflow || (numel != 0 && numel > std::numeric_limits<uint64_t>::max() / elem) ||
      numel * elem != entry->end - entry->begin) {
    return bad(absl::StrCat("shape ", ShapeToString(entry->shape), " of ",
                            DTypeName(entry->dtype), " needs ",
                            overflow ? std::string("more than 2^64")
                                     : absl::StrCat(numel * elem),
                            " bytes but data_offsets span ", entry->end - entry->begin));
  }
  return absl::OkStatus();
}

}  // namespace

std::string TensorView::ShapeString() const { return ShapeToString(shape); }

absl::StatusOr<SafetensorsHeader> ParseSafetensorsHeader(absl::string_view bytes,
                                                         absl::string_view path) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path, ": ", what));
  };
  if (bytes.empty()) return bad("file is empty (0 bytes)");
  if (bytes.size() < 8) {
    return bad(absl::StrCat("file is ", bytes.size(),
                            " bytes, too short for the 8-byte header length"));
  }
  SafetensorsHeader header;
  header.header_size = ReadLe64(bytes.data());
  if (header.header_size > kMaxHeaderBytes) {
    return bad(absl::StrCat("header length ", header.header_size,
                            " is implausibly large (limit ", kMaxHeaderBytes, ")"));
  }
  if (header.header_size > bytes.size() - 8) {
    return bad(absl::StrCat("header length ", header.header_size, " runs past the file (",
                            bytes.size(), " bytes); the file is truncated"));
  }
  const uint64_t data_size = bytes.size() - 8 - header.header_size;
  absl::string_view text = bytes.substr(8, header.header_size);

  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return bad(absl::StrCat("malformed JSON header: ", e.what()));
  }
  if (!root.is_object()) return bad("JSON header is not an object");

  try {
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (!it->is_object()) return bad("'__metadata__' is not a JSON object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          if (!m->is_string()) {
            return bad(absl::StrCat("'__metadata__' value for '", m.key(),
                                    "' is not a string"));
          }
          header.metadata[m.key()] = m->get<std::string>();
        }
        continue;
      }
      SafetensorsHeaderEntry entry;
      absl::Status s = ParseEntry(it.key(), *it, data_size, path, &entry);
      if (!s.ok()) return s;
      header.entries.push_back(std::move(entry));
    }
  } catch (const json::exception& e) {
    return bad(absl::StrCat("invalid JSON header: ", e.what()));
  }

  // Overlaps: sort the non-empty ranges by start and compare neighbours.
  std::vector<const SafetensorsHeaderEntry*> by_offset;
  for (const auto& e : header.entries) {
    if (e.end > e.begin) by_offset.push_back(&e);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* cur = by_offset[i];
    if (cur->begin < prev->end) {
      return bad(absl::StrCat("tensors '", prev->name, "' [", prev->begin, ", ", prev->end,
                              ") and '", cur->name, "' [", cur->begin, ", ", cur->end,
                              ") overlap"));
    }
  }
  return header;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string msg = absl::StrCat("cannot open safetensors file ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("cannot stat ", path, ": ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors file ", path, ": not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {  // mmap cannot map 0 bytes; say what is wrong instead
    ::close(fd);
    return absl::InvalidArgumentError(
        size == 0 ? absl::StrCat("safetensors file ", path, ": file is empty (0 bytes)")
                  : absl::StrCat("safetensors file ", path, ": file is ", size,
                                 " bytes, too short for the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::InternalError(
        absl::StrCat("cannot mmap safetensors file ", path, ": ", std::strerror(map_err)));
  }

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->map_size_ = size;

  auto header =
      ParseSafetensorsHeader(absl::string_view(static_cast<const char*>(map), size), path);
  if (!header.ok()) return header.status();  // the destructor unmaps

  const char* data = static_cast<const char*>(map) + 8 + header->header_size;
  file->metadata_ = std::move(header->metadata);
  file->tensors_.reserve(header->entries.size());
  for (auto& e : header->entries) {
    TensorView v;
    v.name = e.name;
    v.dtype = e.dtype;
    v.shape = std::move(e.shape);
    v.data = data + e.begin;
    v.nbytes = static_cast<size_t>(e.end - e.begin);
    v.file = path;
    file->index_[v.name] = file->tensors_.size();
    file->tensors_.push_back(std::move(v));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const TensorView* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  // Larger element types first, then by name: every tensor stays aligned to its element
  // size (the header is padded to 8), which is the order the Python library uses.
  std::vector<const TensorToWrite*> order;
  order.reserve(tensors.size());
  for (const auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    size_t sa = DTypeSize(a->dtype), sb = DTypeSize(b->dtype);
    if (sa != sb) return sa > sb;
    return a->name < b->name;
  });

  // ordered_json keeps the Python library's layout: metadata first, then the tensors in
  // file order, each as {"dtype", "shape", "data_offsets"}; the files come out identical.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const TensorToWrite& t = *order[i];
    if (t.name.empty() || t.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteSafetensors ", path, ": invalid tensor name '", t.name, "'"));
    }
    if (i > 0 && order[i - 1]->name == t.name) {
      return absl::InvalidArgumentError(
          absl::StrCat("WriteSafetensors ", path, ": tensor '", t.name, "' given twice"));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "WriteSafetensors ", path, ": tensor '", t.name, "' has a negative dimension"));
      }
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * DTypeSize(t.dtype) != t.data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WriteSafetensors ", path, ": tensor '", t.name, "' of shape ",
          ShapeToString(t.shape), " ", DTypeName(t.dtype), " needs ",
          numel * DTypeSize(t.dtype), " bytes but ", t.data.size(), " were given"));
    }
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {  // e.g. a name that is not valid UTF-8
    return absl::InvalidArgumentError(
        absl::StrCat("WriteSafetensors ", path, ": cannot encode header: ", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  // Write beside the target and rename, so a reader never sees a half-written file.
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("WriteSafetensors: cannot create ", tmp, ": ", std::strerror(errno)));
  }
  bool ok = std::fwrite(Le64(text.size()).data(), 1, 8, f) == 8 &&
            std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const TensorToWrite* t : order) {
    if (!ok) break;
    ok = t->data.empty() || std::fwrite(t->data.data(), 1, t->data.size(), f) == t->data.size();
  }
  int write_err = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    write_err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    return absl::InternalError(
        absl::StrCat("WriteSafetensors: writing ", tmp, " failed: ", std::strerror(write_err)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("WriteSafetensors: cannot rename ", tmp, " to ",
                                            path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace moe::engine
