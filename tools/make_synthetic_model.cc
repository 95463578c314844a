// make_synthetic_model: writes a random-weight MoE checkpoint in Hugging Face format.
//
//   make_synthetic_model --profile tiny --arch qwen3_moe --seed 1 --out /tmp/tiny-qwen3
//   make_synthetic_model --profile olmoe-1b-7b --out /data/olmoe --layers 4
//
// Flags are parsed into a SyntheticSpec; all the work is in //tools/synthetic.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "absl/strings/str_format.h"
#include "tools/synthetic/synthetic_model.h"
#include "tools/synthetic/synthetic_spec.h"
#include "tools/synthetic/tensor_plan.h"

namespace {

using moe::tools::SyntheticSpec;

std::string Size(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30)) return absl::StrFormat("%.2f GiB", bytes / double(1 << 30));
  if (bytes >= (uint64_t{1} << 20)) return absl::StrFormat("%.1f MiB", bytes / double(1 << 20));
  if (bytes >= 1024) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  return absl::StrFormat("%d B", bytes);
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

int Fail(const std::string& msg) {
  std::cerr << "make_synthetic_model: " << msg << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Writes a random-weight MoE checkpoint (config, tokenizer, safetensors) in "
               "Hugging Face format."};
  std::string profile = "tiny", profile_file, arch, out_dir, dtype = "bf16", config_style = "hf5";
  std::string routing = "standard";
  int router_hidden = 0;
  uint64_t seed = 0;
  int layers = 0, threads = 0;
  double shard_size_gib = 4.0;
  float init_std = 0.02f;
  bool list_profiles = false;

  std::string known = "built-in: ";
  for (const auto& n : moe::tools::BuiltinProfileNames()) known += n + " ";
  app.add_option("--profile", profile, "model shape profile (" + known + ")")
      ->capture_default_str();
  app.add_option("--profile-file", profile_file, "a profile JSON file instead of --profile")
      ->check(CLI::ExistingFile);
  app.add_option("--arch", arch, "family for the tiny profile: mixtral|qwen2_moe|qwen3_moe|olmoe");
  app.add_option("--seed", seed, "weight seed (same seed, same bytes)")->capture_default_str();
  app.add_option("--out", out_dir, "output directory (created if missing)");
  app.add_option("--dtype", dtype, "weight dtype")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}))
      ->capture_default_str();
  app.add_option("--layers", layers, "override the number of layers")->check(CLI::PositiveNumber);
  app.add_option("--shard-size-gb", shard_size_gib, "shard size in GiB")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--config-style", config_style,
                 "config.json spelling: hf5 (rope_parameters) or hf4 (rope_theta)")
      ->check(CLI::IsMember({"hf4", "hf5"}))
      ->capture_default_str();
  app.add_option("--init-std", init_std,
                 "initializer_range; matrices use init_std*50/sqrt(fan_in)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--routing", routing,
                 "standard | pregated (gate at layer l picks layer l+1's experts) | router "
                 "(decoupled router over token embeddings); see engine/experts/FORMATS.md")
      ->check(CLI::IsMember({"standard", "pregated", "router"}))
      ->capture_default_str();
  app.add_option("--router-hidden-size", router_hidden, "router width for --routing router (0: hidden_size)");
  app.add_option("--threads", threads, "generation threads (0: all cores)");
  app.add_flag("--list-profiles", list_profiles, "print the built-in profiles and exit");
  CLI11_PARSE(app, argc, argv);

  if (list_profiles) {
    for (const auto& n : moe::tools::BuiltinProfileNames()) std::cout << n << "\n";
    return 0;
  }
  if (out_dir.empty()) return Fail("--out is required");

  std::optional<moe::tools::Family> family;
  if (!arch.empty()) {
    auto f = moe::tools::ParseFamily(arch);
    if (!f.ok()) return Fail(std::string(f.status().message()));
    family = *f;
  }
  std::string json, source;
  if (!profile_file.empty()) {
    auto text = ReadFile(profile_file);
    if (!text) return Fail("cannot read " + profile_file);
    json = *text;
    source = profile_file;
  } else {
    auto text = moe::tools::BuiltinProfileJson(profile);
    if (!text.ok()) return Fail(std::string(text.status().message()));
    json = *text;
    source = profile;
  }
  auto parsed = moe::tools::SpecFromProfileJson(json, source, family);
  if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
  SyntheticSpec spec = *parsed;
  spec.seed = seed;
  if (layers > 0) spec.num_layers = layers;
  spec.dtype = dtype == "fp32"   ? moe::DType::kF32
               : dtype == "fp16" ? moe::DType::kF16
                                 : moe::DType::kBF16;
  spec.config_style =
      config_style == "hf4" ? moe::tools::ConfigStyle::kHf4 : moe::tools::ConfigStyle::kHf5;
  spec.shard_size_bytes = static_cast<uint64_t>(std::llround(shard_size_gib * (1 << 30)));
  spec.init_std = init_std;
  if (auto r = moe::tools::ParseRouting(routing); r.ok()) {
    spec.routing = *r;
  } else {
    return Fail(std::string(r.status().message()));
  }
  spec.router_hidden_size = router_hidden;
  if (auto st = moe::tools::ValidateSpec(spec); !st.ok()) return Fail(std::string(st.message()));

  const int64_t params = moe::tools::ParameterCount(spec);
  std::cerr << absl::StrFormat("writing %s (%s, %d layers, %d experts top-%d): %.3fB parameters, "
                               "%s weights, seed %d -> %s\n",
                               spec.profile_name, moe::tools::FamilyName(spec.family),
                               spec.num_layers, spec.num_experts, spec.num_experts_per_tok,
                               params / 1e9, dtype, seed, out_dir);

  moe::tools::WriteOptions options;
  options.threads = threads;
  const bool tty = isatty(fileno(stderr));
  options.on_progress = [&](const moe::tools::WriteProgress& p) {
    const double pct = p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0;
    std::cerr << absl::StrFormat("%s[%5.1f%%] %s / %s  %s%s", tty ? "\r" : "", pct,
                                 Size(p.bytes_done), Size(p.bytes_total), p.file,
                                 tty ? "   " : "\n");
  };
  std::vector<moe::tools::WrittenFile> written;
  auto st = moe::tools::WriteSyntheticModel(spec, out_dir, options, &written);
  if (tty) std::cerr << "\n";
  if (!st.ok()) return Fail(std::string(st.message()));
  uint64_t total = 0;
  for (const auto& f : written) {
    std::cout << absl::StrFormat("%12s  %s/%s\n", Size(f.bytes), out_dir, f.name);
    total += f.bytes;
  }
  std::cout << absl::StrFormat("%12s  total, %d files\n", Size(total), written.size());
  return 0;
}
