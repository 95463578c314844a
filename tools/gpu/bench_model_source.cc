#include "tools/gpu/bench_model_source.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tools/synthetic/synthetic_spec.h"

namespace moe::engine {

namespace {

// A whole number >= min; the error names the flag.
absl::StatusOr<long long> ParseWhole(const std::string& flag, const std::string& v, long long min) {
  char* end = nullptr;
  errno = 0;
  const long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || n < min) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", v, "' is not a whole number >= ", min));
  }
  return n;
}

}  // namespace

bool IsBenchModelFlag(const std::string& flag) {
  return flag == "--model" || flag == "--synthetic" || flag == "--routing" || flag == "--seed" ||
         flag == "--distinct-experts" || flag == "--threads";
}

absl::Status ParseBenchModelFlag(const std::string& flag, const std::string& value,
                                 BenchModelFlags* flags) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
  if (flag == "--model") {
    flags->model_dir = value;
    return absl::OkStatus();
  }
  if (flag == "--synthetic") {
    flags->synthetic_profile = value;
    return absl::OkStatus();
  }
  flags->synthetic_flag_given = true;
  if (flag == "--routing") {
    flags->routing = value;
    return absl::OkStatus();
  }
  const long long min = flag == "--seed" ? 0 : 1;
  auto n = ParseWhole(flag, value, min);
  if (!n.ok()) return n.status();
  if (flag == "--seed") {
    flags->seed = static_cast<uint64_t>(*n);
  } else if (flag == "--distinct-experts") {
    flags->distinct_experts = static_cast<int>(std::min<long long>(*n, 1 << 30));
  } else if (flag == "--threads") {
    flags->threads = static_cast<int>(std::min<long long>(*n, 4096));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not a model-source flag: ", flag));
  }
  return absl::OkStatus();
}

absl::Status ValidateBenchModelFlags(const BenchModelFlags& flags) {
  const bool dir = !flags.model_dir.empty(), synthetic = !flags.synthetic_profile.empty();
  if (dir && synthetic) {
    return absl::InvalidArgumentError(
        "--model DIR and --synthetic PROFILE are mutually exclusive: give one");
  }
  if (!dir && !synthetic) {
    return absl::InvalidArgumentError(
        "a model is required: --model DIR (a checkpoint directory) or --synthetic PROFILE (built "
        "in memory)");
  }
  if (dir && flags.synthetic_flag_given) {
    return absl::InvalidArgumentError(
        "--routing, --seed, --distinct-experts and --threads apply to --synthetic only (a --model "
        "directory's config.json says its routing)");
  }
  if (synthetic) {
    if (auto r = moe::tools::ParseRouting(flags.routing); !r.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--routing: ", r.status().message()));
    }
    if (flags.distinct_experts < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--distinct-experts must be at least 1, got ", flags.distinct_experts));
    }
  }
  return absl::OkStatus();
}

const Checkpoint& BenchModel::checkpoint() const {
  return disk_ ? *disk_ : memory_->checkpoint();
}

absl::StatusOr<std::unique_ptr<BenchModel>> BenchModel::Load(const BenchModelFlags& flags) {
  if (auto st = ValidateBenchModelFlags(flags); !st.ok()) return st;
  std::unique_ptr<BenchModel> m(new BenchModel());
  if (!flags.model_dir.empty()) {
    auto config = LoadModelConfig(flags.model_dir);
    if (!config.ok()) return config.status();
    auto ckpt = Checkpoint::Open(flags.model_dir);
    if (!ckpt.ok()) return ckpt.status();
    m->config_ = *std::move(config);
    m->disk_ = *std::move(ckpt);
    m->label_ = flags.model_dir;
    const char* routing = std::getenv("MOE_ROUTING");
    m->routing_ = routing != nullptr && *routing ? routing : "standard";
    return m;
  }

  auto profile = moe::tools::BuiltinProfileJson(flags.synthetic_profile);
  if (!profile.ok()) {
    return absl::Status(profile.status().code(),
                        absl::StrCat("--synthetic: ", profile.status().message()));
  }
  auto spec = moe::tools::SpecFromProfileJson(*profile, flags.synthetic_profile, std::nullopt);
  if (!spec.ok()) return spec.status();
  spec->routing = *moe::tools::ParseRouting(flags.routing);  // validated above
  spec->seed = flags.seed;
  const auto t0 = std::chrono::steady_clock::now();
  auto built = moe::tools::BuildInMemoryModel(*spec, flags.distinct_experts, flags.threads);
  if (!built.ok()) return built.status();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m->memory_ = *std::move(built);
  m->config_ = m->memory_->config();
  m->routing_ = moe::tools::RoutingName(spec->routing);
  m->label_ = absl::StrCat("synthetic:", flags.synthetic_profile, ":", m->routing_);
  std::printf(
      "model %s built in memory in %.1f s: resident %.2f GiB (dense weights + %d distinct of "
      "%d experts%s), virtual %.2f GiB (the checkpoint's size), seed %llu\n",
      m->label_.c_str(), secs, m->memory_->resident_bytes() / double(1ull << 30),
      m->memory_->distinct_experts(), m->memory_->num_experts_total(),
      m->memory_->distinct_experts() < m->memory_->num_experts_total() ? "; expert values repeat"
                                                                       : "",
      m->memory_->virtual_bytes() / double(1ull << 30),
      static_cast<unsigned long long>(flags.seed));
  return m;
}

}  // namespace moe::engine
