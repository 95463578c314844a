#include "engine/loader/checkpoint.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace moe::engine {
namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

std::string Shape(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Reads the index's weight_map: tensor name -> shard file name, and the shards in order
// of first appearance.
absl::Status ParseIndex(const std::string& index_path, std::map<std::string, std::string>* weight_map,
                        std::vector<std::string>* shards) {
  auto text = ReadTextFile(index_path);
  if (!text.ok()) return text.status();
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint index ", index_path, ": ", what));
  };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    return bad(absl::StrCat("malformed JSON: ", e.what()));
  }
  if (!root.is_object()) return bad("not a JSON object");
  auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object()) return bad("missing or non-object 'weight_map'");
  std::set<std::string> seen;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it->is_string()) {
      return bad(absl::StrCat("'weight_map' entry for tensor '", it.key(), "' is not a string"));
    }
    std::string shard = it->get<std::string>();
    // Shards live in the model directory; a name that climbs out of it is refused.
    if (shard.empty() || shard[0] == '/' || shard.find("..") != std::string::npos) {
      return bad(absl::StrCat("tensor '", it.key(), "' names an invalid shard file '", shard, "'"));
    }
    (*weight_map)[it.key()] = shard;
    if (seen.insert(shard).second) shards->push_back(shard);
  }
  if (weight_map->empty()) return bad("'weight_map' is empty");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": not a regular file"));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    int err = errno;
    std::string msg = absl::StrCat("cannot read ", path, ": ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return ss.str();
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  const std::string config = JoinPath(dir, "config.json");
  if (!IsRegularFile(config)) {
    return absl::NotFoundError(absl::StrCat("model directory ", dir, ": ", config, " is missing"));
  }

  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;

  const std::string single = JoinPath(dir, kSingleFile);
  const std::string index = JoinPath(dir, kIndexFile);
  // Like transformers: a single model.safetensors wins over an index.
  if (IsRegularFile(single)) {
    auto f = SafetensorsFile::Open(single);
    if (!f.ok()) return f.status();
    for (const TensorView& t : (*f)->tensors()) ckpt->by_name_[t.name] = &t;
    ckpt->files_.push_back(std::move(*f));
    return ckpt;
  }
  if (!IsRegularFile(index)) {
    return absl::NotFoundError(absl::StrCat("model directory ", dir, ": no weights (neither ",
                                            kSingleFile, " nor ", kIndexFile, ")"));
  }

  std::map<std::string, std::string> weight_map;
  std::vector<std::string> shards;
  if (absl::Status s = ParseIndex(index, &weight_map, &shards); !s.ok()) return s;

  for (const std::string& shard : shards) {
    const std::string path = JoinPath(dir, shard);
    if (!IsRegularFile(path)) {
      // Name one tensor that needs it: that is what a user searches their download for.
      std::string example;
      for (const auto& [name, file] : weight_map) {
        if (file == shard) {
          example = name;
          break;
        }
      }
      return absl::NotFoundError(absl::StrCat("checkpoint ", dir, ": shard ", path,
                                              " listed in ", kIndexFile, " (e.g. for tensor '",
                                              example, "') is missing"));
    }
    auto f = SafetensorsFile::Open(path);
    if (!f.ok()) return f.status();
    for (const TensorView& t : (*f)->tensors()) {
      auto [it, inserted] = ckpt->by_name_.emplace(t.name, &t);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat("checkpoint ", dir, ": tensor '", t.name,
                                                       "' is in both ", it->second->file,
                                                       " and ", path));
      }
    }
    ckpt->files_.push_back(std::move(*f));
  }

  for (const auto& [name, shard] : weight_map) {
    auto it = ckpt->by_name_.find(name);
    const std::string expected = JoinPath(dir, shard);
    if (it == ckpt->by_name_.end()) {
      return absl::NotFoundError(absl::StrCat("checkpoint ", dir, ": tensor '", name,
                                              "' is listed in ", kIndexFile, " under ", expected,
                                              " but that file does not hold it"));
    }
    if (it->second->file != expected) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", dir, ": tensor '", name, "' is listed in ", kIndexFile, " under ",
          expected, " but found in ", it->second->file));
    }
  }
  return ckpt;
}

std::unique_ptr<Checkpoint> Checkpoint::FromMemory(std::string label,
                                                   std::vector<TensorView> views) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = std::move(label);
  ckpt->memory_views_ = std::move(views);
  for (TensorView& t : ckpt->memory_views_) {
    if (t.file.empty()) t.file = ckpt->dir_;
    ckpt->by_name_.emplace(t.name, &t);  // keeps the first of duplicate names
  }
  return ckpt;
}

const TensorView* Checkpoint::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

absl::StatusOr<const TensorView*> Checkpoint::Get(absl::string_view name,
                                                  const std::vector<int64_t>& shape) const {
  const TensorView* t = Find(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat("checkpoint ", dir_, ": tensor '", name,
                                            "' not found (expected shape ", Shape(shape), ")"));
  }
  if (!IsFloatWeightType(t->dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", t->file, " has dtype ",
                                                   DTypeName(t->dtype),
                                                   "; weights must be F32, F16 or BF16"));
  }
  if (t->shape != shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", t->file,
                                                   ": expected shape ", Shape(shape),
                                                   ", got ", t->ShapeString()));
  }
  return t;
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) names.push_back(name);
  return names;  // std::map keeps them sorted
}

size_t Checkpoint::TotalBytes() const {
  size_t total = 0;
  for (const auto& [name, t] : by_name_) total += t->nbytes;
  return total;
}

}  // namespace moe::engine
