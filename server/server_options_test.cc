#include "server/server_options.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace moe::server {
namespace {

absl::StatusOr<ServerOptions> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "moe_server");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return ParseServerFlags(static_cast<int>(argv.size()), argv.data());
}

TEST_CASE("Flags override the config file, which overrides the defaults") {
  const std::string path = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR")
                                                                  : "/tmp") +
                           "/server_options_test.json";
  {
    std::ofstream f(path);
    f << R"({"model": "/m", "grpc_port": 6000, "max_num_seqs": 7, "log_format": "json",
             "_comment": "ignored"})";
  }
  auto o = Parse({"--config", path, "--grpc-port", "0", "--max-queue", "3"});
  REQUIRE(o.ok());
  REQUIRE(o->model == "/m");
  REQUIRE(o->grpc_port == 0);        // flag wins
  REQUIRE(o->max_num_seqs == 7);     // from the file
  REQUIRE(o->log_format == "json");  // from the file
  REQUIRE(o->max_queue == 3);        // flag
  REQUIRE(o->host == "127.0.0.1");   // default
  std::remove(path.c_str());
}

TEST_CASE("Config errors name the option") {
  auto unknown = ApplyConfigJson(R"({"max_num_sequences": 3})", "cfg.json", {});
  REQUIRE(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(unknown.status().message()).find("max_num_sequences") != std::string::npos);
  auto mistyped = ApplyConfigJson(R"({"grpc_port": "x"})", "cfg.json", {});
  REQUIRE(std::string(mistyped.status().message()).find("grpc_port") != std::string::npos);
  auto bad_device = Parse({"--model", "/m", "--device", "tpu"});
  REQUIRE(std::string(bad_device.status().message()).rfind("device", 0) == 0);
  auto no_model = Parse({});
  REQUIRE(std::string(no_model.status().message()).rfind("model", 0) == 0);
  auto bad_format = Parse({"--model", "/m", "--log-format", "xml"});
  REQUIRE(std::string(bad_format.status().message()).rfind("log_format", 0) == 0);
}

TEST_CASE("Offload and GPU memory options parse, and bad values name the option") {
  auto o = Parse({"--model", "/m", "--offload", "on", "--expert-cache-gb", "12.5", "--prefetch", "next-gate",
                  "--prefetch-depth", "2", "--expert-cache-policy", "belady", "--gpu-memory-utilization", "0.8"});
  REQUIRE(o.ok());
  REQUIRE(o->offload == "on");
  REQUIRE(o->expert_cache_gb == 12.5);
  REQUIRE(o->prefetch == "next-gate");
  REQUIRE(o->prefetch_depth == 2);
  REQUIRE(o->expert_cache_policy == "belady");
  REQUIRE(o->gpu_memory_utilization == 0.8);
  auto defaults = Parse({"--model", "/m"});
  REQUIRE(defaults->offload == "auto");
  REQUIRE(defaults->prefetch == "auto");
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--offload", "maybe"}, "offload"},
      {{"--prefetch", "oracle"}, "prefetch"},
      {{"--prefetch-depth", "0"}, "prefetch_depth"},
      {{"--expert-cache-policy", "fifo"}, "expert_cache_policy"},
      {{"--expert-cache-gb", "-1"}, "expert_cache_gb"},
      {{"--gpu-memory-utilization", "1.5"}, "gpu_memory_utilization"},
      {{"--gpu-memory-utilization", "0"}, "gpu_memory_utilization"},
  };
  for (const auto& [args, name] : bad) {
    std::vector<std::string> a = {"--model", "/m"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = Parse(a);
    INFO(args[0] << " " << args[1]);
    REQUIRE(r.status().code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(std::string(r.status().message()).rfind(name, 0) == 0);
  }
  auto from_json = ApplyConfigJson(R"({"offload": "off", "expert_cache_gb": 4, "prefetch_depth": 3})", "cfg.json", {});
  REQUIRE(from_json.ok());
  REQUIRE(from_json->offload == "off");
  REQUIRE(from_json->prefetch_depth == 3);
}

TEST_CASE("Expert-aware batching flags parse, from flags and the config file") {
  auto defaults = Parse({"--model", "/m"});
  REQUIRE(defaults.ok());
  REQUIRE_FALSE(defaults->expert_aware_batching);
  REQUIRE(defaults->expert_aware_max_skips == 4);
  auto o = Parse({"--model", "/m", "--expert-aware-batching", "--expert-aware-max-skips", "2"});
  REQUIRE(o.ok());
  REQUIRE(o->expert_aware_batching);
  REQUIRE(o->expert_aware_max_skips == 2);
  auto bad = Parse({"--model", "/m", "--expert-aware-max-skips", "-1"});
  REQUIRE(bad.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(bad.status().message()).rfind("expert_aware_max_skips", 0) == 0);
  auto from_json =
      ApplyConfigJson(R"({"expert_aware_batching": true, "expert_aware_max_skips": 6})", "cfg.json", {});
  REQUIRE(from_json.ok());
  REQUIRE(from_json->expert_aware_batching);
  REQUIRE(from_json->expert_aware_max_skips == 6);
  REQUIRE(defaults->expert_aware_miss_cost_steps == Approx(0.2));
  auto cost = Parse({"--model", "/m", "--expert-aware-miss-cost-steps", "0.05"});
  REQUIRE(cost.ok());
  REQUIRE(cost->expert_aware_miss_cost_steps == Approx(0.05));
  auto bad_cost = Parse({"--model", "/m", "--expert-aware-miss-cost-steps", "-1"});
  REQUIRE(bad_cost.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(bad_cost.status().message()).rfind("expert_aware_miss_cost_steps", 0) == 0);
  auto cost_json = ApplyConfigJson(R"({"expert_aware_miss_cost_steps": 1.5})", "cfg.json", {});
  REQUIRE(cost_json.ok());
  REQUIRE(cost_json->expert_aware_miss_cost_steps == Approx(1.5));
  auto help = Parse({"--help"});
  REQUIRE(help.status().code() == absl::StatusCode::kCancelled);
  REQUIRE(std::string(help.status().message()).find("--expert-aware-batching") != std::string::npos);
  REQUIRE(std::string(help.status().message()).find("--expert-aware-max-skips") != std::string::npos);
}

TEST_CASE("Prefix caching is on by default and can be turned off by flag or config") {
  auto defaults = Parse({"--model", "/m"});
  REQUIRE(defaults.ok());
  REQUIRE(defaults->enable_prefix_caching);
  auto off = Parse({"--model", "/m", "--no-enable-prefix-caching"});
  REQUIRE(off.ok());
  REQUIRE_FALSE(off->enable_prefix_caching);
  auto on = Parse({"--model", "/m", "--enable-prefix-caching"});
  REQUIRE(on.ok());
  REQUIRE(on->enable_prefix_caching);
  // The last of the two flags wins.
  auto last = Parse({"--model", "/m", "--enable-prefix-caching", "--no-enable-prefix-caching"});
  REQUIRE(last.ok());
  REQUIRE_FALSE(last->enable_prefix_caching);
  auto json_off = ApplyConfigJson(R"({"enable_prefix_caching": false})", "cfg.json", {});
  REQUIRE(json_off.ok());
  REQUIRE_FALSE(json_off->enable_prefix_caching);
  auto bad = ApplyConfigJson(R"({"enable_prefix_caching": "yes"})", "cfg.json", {});
  REQUIRE(bad.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(bad.status().message()).find("enable_prefix_caching") != std::string::npos);
  auto help = Parse({"--help"});
  REQUIRE(std::string(help.status().message()).find("--enable-prefix-caching") != std::string::npos);
  REQUIRE(std::string(help.status().message()).find("--no-enable-prefix-caching") != std::string::npos);
}

TEST_CASE("Tool calling flags: hermes is the only parser, auto choice needs one") {
  auto defaults = Parse({"--model", "/m"});
  REQUIRE(defaults.ok());
  REQUIRE_FALSE(defaults->enable_auto_tool_choice);
  REQUIRE(defaults->tool_call_parser.empty());
  auto on = Parse({"--model", "/m", "--enable-auto-tool-choice", "--tool-call-parser", "hermes"});
  REQUIRE(on.ok());
  REQUIRE(on->enable_auto_tool_choice);
  REQUIRE(on->tool_call_parser == "hermes");
  auto unknown = Parse({"--model", "/m", "--enable-auto-tool-choice", "--tool-call-parser", "mistral"});
  REQUIRE(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(unknown.status().message()).rfind("tool_call_parser", 0) == 0);
  REQUIRE(std::string(unknown.status().message()).find("mistral") != std::string::npos);
  auto no_parser = Parse({"--model", "/m", "--enable-auto-tool-choice"});
  REQUIRE(no_parser.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(no_parser.status().message()).rfind("tool_call_parser", 0) == 0);
  auto from_json = ApplyConfigJson(R"({"enable_auto_tool_choice": true, "tool_call_parser": "hermes"})",
                                   "cfg.json", {});
  REQUIRE(from_json.ok());
  REQUIRE(from_json->enable_auto_tool_choice);
  REQUIRE(from_json->tool_call_parser == "hermes");
  auto help = Parse({"--help"});
  REQUIRE(std::string(help.status().message()).find("--enable-auto-tool-choice") != std::string::npos);
  REQUIRE(std::string(help.status().message()).find("--tool-call-parser") != std::string::npos);
}

TEST_CASE("Scheduling policy: fcfs by default, priority by flag or config, else an error "
          "naming the option") {
  auto defaults = Parse({"--model", "/m"});
  REQUIRE(defaults.ok());
  REQUIRE(defaults->scheduling_policy == "fcfs");
  auto prio = Parse({"--model", "/m", "--scheduling-policy", "priority"});
  REQUIRE(prio.ok());
  REQUIRE(prio->scheduling_policy == "priority");
  auto bad = Parse({"--model", "/m", "--scheduling-policy", "lifo"});
  REQUIRE(bad.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(bad.status().message()).rfind("scheduling_policy", 0) == 0);
  REQUIRE(std::string(bad.status().message()).find("--scheduling-policy") != std::string::npos);
  REQUIRE(std::string(bad.status().message()).find("lifo") != std::string::npos);
  auto from_json = ApplyConfigJson(R"({"scheduling_policy": "priority"})", "cfg.json", {});
  REQUIRE(from_json.ok());
  REQUIRE(from_json->scheduling_policy == "priority");
  auto bad_json = ApplyConfigJson(R"({"model": "/m", "scheduling_policy": "edf"})", "cfg.json", {});
  REQUIRE(bad_json.ok());
  REQUIRE(ValidateServerOptions(*bad_json).code() == absl::StatusCode::kInvalidArgument);
  auto help = Parse({"--help"});
  REQUIRE(std::string(help.status().message()).find("--scheduling-policy") != std::string::npos);
}

TEST_CASE("The shipped configs/server.json parses") {
  auto o = ApplyConfigFile("configs/server.json", {});
  REQUIRE(o.ok());
  REQUIRE(o->grpc_port == 50051);
  REQUIRE(o->enable_prefix_caching);
  REQUIRE(o->scheduling_policy == "fcfs");
}

}  // namespace
}  // namespace moe::server
