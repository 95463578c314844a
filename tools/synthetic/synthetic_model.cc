#include "tools/synthetic/synthetic_model.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "tools/synthetic/hf_config.h"
#include "tools/synthetic/random_fill.h"
#include "tools/synthetic/safetensors_stream_writer.h"
#include "tools/synthetic/synthetic_tokenizer.h"
#include "tools/synthetic/tensor_plan.h"

namespace moe::tools {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr int64_t kChunkElements = int64_t{32} << 20;  // 64 MiB of bf16 per piece
constexpr uint64_t kReportBytes = uint64_t{256} << 20;

absl::Status WriteTextFile(const fs::path& path, const std::string& text) {
  const fs::path partial = path.string() + ".partial";
  {
    std::ofstream f(partial, std::ios::binary | std::ios::trunc);
    if (!f) return absl::UnavailableError(absl::StrCat("cannot create ", partial.string()));
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.flush();
    if (!f) return absl::UnavailableError(absl::StrCat("writing ", partial.string()));
  }
  std::error_code ec;
  fs::rename(partial, path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("renaming to ", path.string(), ": ", ec.message()));
  return absl::OkStatus();
}

bool IsOurWeightFile(const std::string& name) {
  if (name == kSingleFile || name == kIndexFile) return true;
  return absl::StartsWith(name, "model-") && absl::EndsWith(name, ".safetensors") &&
         absl::StrContains(name, "-of-");
}

}  // namespace

std::vector<ShardPlan> PlanShards(const SyntheticSpec& spec) {
  const auto tensors = PlanTensors(spec);
  const uint64_t esize = DTypeSize(spec.dtype);
  std::vector<ShardPlan> shards;
  uint64_t total = 0;
  for (const auto& t : tensors) total += t.numel() * esize;
  if (total <= spec.shard_size_bytes) {
    ShardPlan one{kSingleFile, {}, total};
    for (size_t i = 0; i < tensors.size(); ++i) one.tensors.push_back(i);
    return {one};
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t b = tensors[i].numel() * esize;
    if (shards.empty() || (shards.back().bytes + b > spec.shard_size_bytes &&
                           !shards.back().tensors.empty())) {
      shards.push_back({});
    }
    shards.back().tensors.push_back(i);
    shards.back().bytes += b;
  }
  for (size_t k = 0; k < shards.size(); ++k) {
    shards[k].file = absl::StrFormat("model-%05d-of-%05d.safetensors", k + 1, shards.size());
  }
  return shards;
}

absl::Status WriteSyntheticModel(const SyntheticSpec& spec, const std::string& out_dir) {
  return WriteSyntheticModel(spec, out_dir, WriteOptions(), nullptr);
}

absl::Status WriteSyntheticModel(const SyntheticSpec& spec, const std::string& out_dir,
                                 const WriteOptions& options, std::vector<WrittenFile>* written) {
  if (auto st = ValidateSpec(spec); !st.ok()) return st;
  const int merges =
      spec.tokenizer_merges > 0 ? spec.tokenizer_merges : DefaultMergeCount(spec.vocab_size);
  const SyntheticTokenizer tok = BuildSyntheticTokenizer(merges, spec.max_position_embeddings);
  if (tok.vocab_size > spec.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "vocab_size ", spec.vocab_size, " is smaller than the synthetic tokenizer's ",
        tok.vocab_size, " tokens (256 bytes + ", tok.num_merges, " merges + ",
        tok.special_tokens.size(), " special); raise vocab_size or lower tokenizer_merges"));
  }

  const fs::path dir(out_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", out_dir, ": ", ec.message()));

  const auto tensors = PlanTensors(spec);
  const auto shards = PlanShards(spec);
  uint64_t total = 0;
  for (const auto& s : shards) total += s.bytes;

  if (options.check_free_space) {
    struct statvfs vfs;
    if (statvfs(out_dir.c_str(), &vfs) == 0) {
      const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
      const uint64_t need = total + (uint64_t{16} << 20);
      if (free_bytes < need) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "%s: the model needs %.2f GiB but only %.2f GiB are free there (try --layers to "
            "write fewer layers)",
            out_dir, need / double(1 << 30), free_bytes / double(1 << 30)));
      }
    }
  }

  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (IsOurWeightFile(entry.path().filename().string())) stale.push_back(entry.path());
  }
  for (const auto& p : stale) {
    if (!fs::remove(p, ec) || ec) {
      return absl::UnavailableError(absl::StrCat("cannot remove stale ", p.string()));
    }
  }

  std::vector<WrittenFile> files;
  auto add_text = [&](const char* name, const std::string& text) -> absl::Status {
    if (auto st = WriteTextFile(dir / name, text); !st.ok()) return st;
    files.push_back({name, text.size()});
    return absl::OkStatus();
  };
  const int bos = tok.eos_id, eos = tok.eos_id;
  if (auto st = add_text("config.json", HfConfigJson(spec, bos, eos)); !st.ok()) return st;
  if (auto st = add_text("generation_config.json", GenerationConfigJson(spec, bos, eos)); !st.ok())
    return st;
  if (auto st = add_text("tokenizer.json", tok.tokenizer_json); !st.ok()) return st;
  if (auto st = add_text("tokenizer_config.json", tok.tokenizer_config_json); !st.ok()) return st;

  const int threads =
      options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  std::vector<char> buf;
  WriteProgress progress{0, total, ""};
  uint64_t last_report = 0;
  nlohmann::json weight_map = nlohmann::json::object();
  const DType dtype = spec.dtype;
  const size_t esize = DTypeSize(dtype);

  for (const ShardPlan& shard : shards) {
    std::vector<StreamTensorInfo> infos;
    std::map<std::string, size_t> index_of;
    for (size_t i : shard.tensors) {
      infos.push_back({tensors[i].name, dtype, tensors[i].shape});
      index_of[tensors[i].name] = i;
      weight_map[tensors[i].name] = shard.file;
    }
    const std::string path = (dir / shard.file).string();
    auto writer = SafetensorsStreamWriter::Create(path, std::move(infos));
    if (!writer.ok()) return writer.status();
    progress.file = shard.file;
    for (const StreamTensorInfo& info : (*writer)->layout()) {
      const PlannedTensor& t = tensors[index_of.at(info.name)];
      const uint64_t key = TensorKey(spec.seed, t.name);
      const int64_t n = t.numel();
      for (int64_t begin = 0; begin < n; begin += kChunkElements) {
        const int64_t count = std::min(kChunkElements, n - begin);
        buf.resize(static_cast<size_t>(count) * esize);
        FillTensorChunk(t, key, dtype, begin, count, buf.data(), threads);
        if (auto st = (*writer)->Append(buf.data(), buf.size()); !st.ok()) return st;
        progress.bytes_done += buf.size();
        if (options.on_progress && progress.bytes_done - last_report >= kReportBytes) {
          options.on_progress(progress);
          last_report = progress.bytes_done;
        }
      }
    }
    if (auto st = (*writer)->Finish(); !st.ok()) return st;
    files.push_back({shard.file, (*writer)->file_bytes()});
    if (options.on_progress) options.on_progress(progress);
  }
  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    if (auto st = add_text(kIndexFile, index.dump(2) + "\n"); !st.ok()) return st;
  }
  if (written != nullptr) *written = std::move(files);
  return absl::OkStatus();
}

}  // namespace moe::tools
