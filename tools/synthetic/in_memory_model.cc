#include "tools/synthetic/in_memory_model.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "tools/synthetic/hf_config.h"
#include "tools/synthetic/random_fill.h"
#include "tools/synthetic/synthetic_tokenizer.h"
#include "tools/synthetic/tensor_plan.h"

namespace moe::tools {
namespace {

constexpr uint64_t kAlign = 256;                  // every tensor / expert starts here
constexpr int64_t kChunkElements = int64_t{1} << 22;  // one fill job: 8 MiB of bf16

uint64_t AlignUp(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Where each planned tensor lives. Routed experts are recognised by their per-expert
// Hugging Face names (`...experts.{j}.<proj>.weight`, tensor_plan.cc's layout); the
// shared expert (`shared_expert.`) is dense.
struct Layout {
  std::vector<PlannedTensor> plan;
  std::vector<int> expert_of;        // per tensor: global expert index, -1 for dense
  std::vector<int> part_of;          // per expert tensor: 0 gate, 1 up, 2 down (plan order)
  std::vector<uint64_t> dense_offset;  // per dense tensor: offset in the dense arena
  std::vector<uint64_t> part_offset;   // per part: offset within an expert buffer
  std::vector<std::vector<size_t>> expert_tensors;  // per expert: its tensors, part order
  uint64_t dense_bytes = 0, expert_stride = 0, virtual_bytes = 0;
  int num_experts = 0, distinct = 0;
};

// The prefix naming a routed expert ("model.layers.3.mlp.experts.17."), or "" for a
// tensor that is not one.
absl::string_view ExpertKey(absl::string_view name) {
  const absl::string_view marker = ".experts.";
  const size_t at = name.find(marker);
  if (at == absl::string_view::npos) return "";
  size_t i = at + marker.size();
  const size_t digits = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
  if (i == digits || i >= name.size() || name[i] != '.') return "";
  return name.substr(0, i + 1);
}

absl::StatusOr<Layout> PlanLayout(const SyntheticSpec& spec, int distinct_experts) {
  Layout L;
  L.plan = PlanTensors(spec);
  const uint64_t esize = DTypeSize(spec.dtype);
  L.expert_of.assign(L.plan.size(), -1);
  L.part_of.assign(L.plan.size(), -1);
  L.dense_offset.assign(L.plan.size(), 0);
  std::string last_key;
  for (size_t i = 0; i < L.plan.size(); ++i) {
    const uint64_t bytes = static_cast<uint64_t>(L.plan[i].numel()) * esize;
    L.virtual_bytes += bytes;
    const absl::string_view key = ExpertKey(L.plan[i].name);
    if (key.empty()) {
      L.dense_offset[i] = L.dense_bytes;
      L.dense_bytes += AlignUp(bytes);
      continue;
    }
    if (key != last_key) {
      last_key = std::string(key);
      L.expert_tensors.emplace_back();
    }
    auto& parts = L.expert_tensors.back();
    L.expert_of[i] = static_cast<int>(L.expert_tensors.size()) - 1;
    L.part_of[i] = static_cast<int>(parts.size());
    parts.push_back(i);
  }
  L.num_experts = static_cast<int>(L.expert_tensors.size());
  if (L.num_experts > 0) {
    // Every routed expert has the same parts and shapes; the first one fixes the layout.
    const auto& first = L.expert_tensors.front();
    for (size_t p = 0; p < first.size(); ++p) {
      L.part_offset.push_back(L.expert_stride);
      L.expert_stride += static_cast<uint64_t>(L.plan[first[p]].numel()) * esize;
    }
    L.expert_stride = AlignUp(L.expert_stride);
    for (const auto& parts : L.expert_tensors) {
      bool same = parts.size() == first.size();
      for (size_t p = 0; same && p < parts.size(); ++p) {
        same = L.plan[parts[p]].shape == L.plan[first[p]].shape;
      }
      if (!same) {
        return absl::InternalError(absl::StrCat("routed expert tensor ", L.plan[parts[0]].name,
                                                " differs in parts or shapes from ",
                                                L.plan[first[0]].name));
      }
    }
  }
  L.distinct = std::min(distinct_experts, L.num_experts);
  return L;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  f.flush();
  if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// One fill job: elements [begin, begin + count) of plan[tensor] into `out`, with the
// values of plan[source] (the same tensor, or for an expert buffer the expert whose
// names it carries; identical shapes).
struct FillJob {
  size_t source;
  int64_t begin, count;
  char* out;
};

void RunJobs(const SyntheticSpec& spec, const Layout& L, const std::vector<FillJob>& jobs,
             int threads) {
  std::vector<uint64_t> keys(L.plan.size());
  for (size_t i = 0; i < L.plan.size(); ++i) keys[i] = TensorKey(spec.seed, L.plan[i].name);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j = next++; j < jobs.size(); j = next++) {
      const FillJob& job = jobs[j];
      FillTensorChunk(L.plan[job.source], keys[job.source], spec.dtype, job.begin, job.count,
                      job.out, 1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
}

}  // namespace

void InMemoryModel::FreeBytes::operator()(char* p) const { std::free(p); }

InMemoryModel::~InMemoryModel() {
  checkpoint_.reset();
  if (!meta_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(meta_dir_, ec);
  }
}

InMemoryFootprint PlanInMemoryFootprint(const SyntheticSpec& spec, int distinct_experts) {
  InMemoryFootprint f;
  auto L = PlanLayout(spec, std::max(1, distinct_experts));
  if (!L.ok()) return f;
  f.resident_bytes = L->dense_bytes + static_cast<uint64_t>(L->distinct) * L->expert_stride;
  f.virtual_bytes = L->virtual_bytes;
  f.num_experts_total = L->num_experts;
  return f;
}

absl::StatusOr<std::unique_ptr<InMemoryModel>> BuildInMemoryModel(const SyntheticSpec& spec,
                                                                  int distinct_experts,
                                                                  int threads) {
  if (auto st = ValidateSpec(spec); !st.ok()) return st;
  if (distinct_experts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("distinct_experts must be at least 1, got ", distinct_experts));
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  // The text files, as WriteSyntheticModel writes them.
  const int merges =
      spec.tokenizer_merges > 0 ? spec.tokenizer_merges : DefaultMergeCount(spec.vocab_size);
  const SyntheticTokenizer tok = BuildSyntheticTokenizer(merges, spec.max_position_embeddings);
  if (tok.vocab_size > spec.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size ", spec.vocab_size, " is smaller than the synthetic tokenizer's ",
                     tok.vocab_size, " tokens; raise vocab_size or lower tokenizer_merges"));
  }
  const std::string config_json = HfConfigJson(spec, tok.eos_id, tok.eos_id);
  const std::string generation_json = GenerationConfigJson(spec, tok.eos_id, tok.eos_id);

  std::unique_ptr<InMemoryModel> m(new InMemoryModel());
  auto config = engine::ParseModelConfig(config_json, generation_json);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat("synthetic config.json for profile '", spec.profile_name,
                                     "': ", config.status().message()));
  }
  m->config_ = *std::move(config);

  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/moe_in_memory_XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot create a temporary directory ", tmpl));
  }
  m->meta_dir_ = tmpl;
  for (const auto& [name, text] :
       {std::pair<const char*, const std::string&>{"config.json", config_json},
        {"generation_config.json", generation_json},
        {"tokenizer.json", tok.tokenizer_json},
        {"tokenizer_config.json", tok.tokenizer_config_json}}) {
    if (auto st = WriteText(absl::StrCat(m->meta_dir_, "/", name), text); !st.ok()) return st;
  }

  auto layout = PlanLayout(spec, distinct_experts);
  if (!layout.ok()) return layout.status();
  const Layout& L = *layout;
  const uint64_t expert_bytes = static_cast<uint64_t>(L.distinct) * L.expert_stride;
  // malloc'd, not value-initialised: pages are first touched by the fill threads.
  char* dense = static_cast<char*>(std::aligned_alloc(kAlign, std::max<uint64_t>(kAlign, L.dense_bytes)));
  char* experts = static_cast<char*>(std::aligned_alloc(kAlign, std::max<uint64_t>(kAlign, expert_bytes)));
  m->buffers_.emplace_back(dense);
  m->buffers_.emplace_back(experts);
  if (dense == nullptr || experts == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "in-memory model '%s': cannot allocate %.2f GiB of dense weights + %.2f GiB for %d "
        "distinct experts",
        spec.profile_name, L.dense_bytes / double(1 << 30), expert_bytes / double(1 << 30),
        L.distinct));
  }
  m->resident_bytes_ = L.dense_bytes + expert_bytes;
  m->virtual_bytes_ = L.virtual_bytes;
  m->num_experts_total_ = L.num_experts;
  m->distinct_experts_ = L.distinct;

  const uint64_t esize = DTypeSize(spec.dtype);
  std::vector<engine::TensorView> views(L.plan.size());
  std::vector<FillJob> jobs;
  auto add_jobs = [&](size_t source, char* out) {
    const int64_t n = L.plan[source].numel();
    for (int64_t b = 0; b < n; b += kChunkElements) {
      jobs.push_back({source, b, std::min(kChunkElements, n - b), out + b * esize});
    }
  };
  for (size_t i = 0; i < L.plan.size(); ++i) {
    const PlannedTensor& t = L.plan[i];
    char* data;
    if (L.expert_of[i] < 0) {
      data = dense + L.dense_offset[i];
      add_jobs(i, data);
    } else {
      const int buffer = L.expert_of[i] % L.distinct;
      data = experts + buffer * L.expert_stride + L.part_offset[L.part_of[i]];
      // The buffer is filled once, from the tensors of the expert that names it.
      if (L.expert_of[i] == buffer) add_jobs(i, data);
    }
    engine::TensorView& v = views[i];
    v.name = t.name;
    v.dtype = spec.dtype;
    v.shape = t.shape;
    v.data = data;
    v.nbytes = static_cast<size_t>(t.numel()) * esize;
  }
  RunJobs(spec, L, jobs, threads);
  m->checkpoint_ = engine::Checkpoint::FromMemory(m->meta_dir_, std::move(views));
  return m;
}

}  // namespace moe::tools
