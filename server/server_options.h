// Everything the server can be told: read from a JSON config file (configs/server.json)
// and overridden by command-line flags. Every flag has a config key of the same name
// with '-' spelled '_'.
//
// Thread safety: plain data and pure functions.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::server {

struct ServerOptions {
  std::string model;            // model directory (Hugging Face layout)
  std::string device = "auto";  // auto | cpu | cuda
  std::string dtype = "auto";   // CUDA storage dtype: auto | bf16 | fp16 | fp32
  // CUDA memory budget and expert offload (engine/model_runner.h OffloadOptions).
  double gpu_memory_utilization = 0.9;  // (0, 1]
  std::string offload = "auto";         // auto | on | off
  double expert_cache_gb = 0;           // 0: what the budget leaves
  std::string prefetch = "auto";        // auto | off | next-gate | pregate | router
  int prefetch_depth = 1;               // MoE layers ahead (next-gate)
  std::string expert_cache_policy = "lfu";  // lfu | lru | belady
  std::string host = "127.0.0.1";
  int grpc_port = 50051;        // 0: the OS picks a free port (printed)
  int http_port = 8080;         // OpenAI-compatible HTTP; 0: the OS picks; -1: no HTTP
  std::string api_key;          // both frontends require it when set (or $MOE_API_KEY)
  // CORS for browser clients: "" (no CORS headers), "*" (any origin) or a comma-separated
  // list of origins (e.g. "http://localhost:3000").
  std::string allowed_origins;
  std::string chat_template;    // file overriding the tokenizer's chat template
  std::string served_model_name;  // name in /v1/models; default: the model directory
  // vLLM's tool calling flags: parse chat completions for tool calls when a request
  // sends tools with tool_choice "auto". The parser must be named; "hermes" is the only
  // one ("" = none).
  bool enable_auto_tool_choice = false;
  std::string tool_call_parser;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  // vLLM's --scheduling-policy: "fcfs" (arrival order; a request's non-zero `priority`
  // is refused) or "priority" (lower `priority` first, preempting worse ones; no aging).
  std::string scheduling_policy = "fcfs";
  // Expert-aware batching (scheduler/expert_aware_composer.h): with a bounded GPU expert
  // cache, decodes whose experts overflow it together wait a step, at most
  // expert_aware_max_skips consecutive steps.
  bool expert_aware_batching = false;
  int expert_aware_max_skips = 4;
  // What one expert-cache miss costs in decode steps (t_miss / t_step): expert-aware
  // batching defers only where the misses it expects to save pay for the extra step.
  double expert_aware_miss_cost_steps = 0.2;  // >= 0
  // Automatic prefix caching (scheduler/prefix_cache.h): requests reuse the KV blocks of
  // a prompt prefix an earlier request computed. Outputs are unchanged.
  bool enable_prefix_caching = true;
  int num_kv_blocks = 0;        // 0: derived from kv_cache_mb
  int kv_cache_mb = 256;
  int max_queue = 256;
  int num_threads = 0;          // CPU backend threads; 0 = all cores
  double drain_timeout_s = 30;  // graceful shutdown: wait this long for in-flight work
  std::string log_format = "text";  // text | json
  std::string log_level = "info";   // trace | debug | info | warn | error
  std::string config;               // the config file read, if any
  // Reliability and security limits.
  int max_stream_buffer_tokens = 4096;  // untaken tokens per stream before RESOURCE_EXHAUSTED; 0 = unbounded
  int max_body_mb = 8;                  // HTTP request body limit (413 above it)
  int max_prompt_tokens = 0;            // 0: the model context is the only limit
  // CPU backend: weights + KV cache must fit in this many MiB (0: MemAvailable), checked
  // at startup; the error names both sizes.
  int cpu_memory_limit_mb = 0;
  std::string tls_cert;  // PEM certificate chain: both frontends serve TLS when set
  std::string tls_key;   // PEM private key (required with tls_cert)
};

// Reads a JSON object of options (unknown keys are an error naming the key; a mistyped
// value names the key and the expected type) on top of `base`.
absl::StatusOr<ServerOptions> ApplyConfigJson(absl::string_view json, const std::string& origin,
                                              ServerOptions base);
absl::StatusOr<ServerOptions> ApplyConfigFile(const std::string& path, ServerOptions base);

// Defaults ← --config file ← flags. On --help, returns CANCELLED with the help text as
// the message (print it and exit 0).
absl::StatusOr<ServerOptions> ParseServerFlags(int argc, char** argv);

// Checks ranges; errors name the option.
absl::Status ValidateServerOptions(const ServerOptions& o);

}  // namespace moe::server
