#include "server/server_options.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace moe::server {
namespace {

using nlohmann::json;

template <typename T>
absl::Status Read(const json& j, const std::string& key, const std::string& origin, T* out) {
  try {
    *out = j.get<T>();
    return absl::OkStatus();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": option \"", key, "\" has the wrong type: ", e.what()));
  }
}

}  // namespace

absl::StatusOr<ServerOptions> ApplyConfigJson(absl::string_view text, const std::string& origin,
                                              ServerOptions o) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": must be a JSON object"));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    absl::Status s;
    if (k == "model") s = Read(v, k, origin, &o.model);
    else if (k == "device") s = Read(v, k, origin, &o.device);
    else if (k == "dtype") s = Read(v, k, origin, &o.dtype);
    else if (k == "gpu_memory_utilization") s = Read(v, k, origin, &o.gpu_memory_utilization);
    else if (k == "offload") s = Read(v, k, origin, &o.offload);
    else if (k == "expert_cache_gb") s = Read(v, k, origin, &o.expert_cache_gb);
    else if (k == "prefetch") s = Read(v, k, origin, &o.prefetch);
    else if (k == "prefetch_depth") s = Read(v, k, origin, &o.prefetch_depth);
    else if (k == "expert_cache_policy") s = Read(v, k, origin, &o.expert_cache_policy);
    else if (k == "host") s = Read(v, k, origin, &o.host);
    else if (k == "grpc_port") s = Read(v, k, origin, &o.grpc_port);
    else if (k == "http_port") s = Read(v, k, origin, &o.http_port);
    else if (k == "api_key") s = Read(v, k, origin, &o.api_key);
    else if (k == "allowed_origins") s = Read(v, k, origin, &o.allowed_origins);
    else if (k == "chat_template") s = Read(v, k, origin, &o.chat_template);
    else if (k == "served_model_name") s = Read(v, k, origin, &o.served_model_name);
    else if (k == "enable_auto_tool_choice") s = Read(v, k, origin, &o.enable_auto_tool_choice);
    else if (k == "tool_call_parser") s = Read(v, k, origin, &o.tool_call_parser);
    else if (k == "max_num_seqs") s = Read(v, k, origin, &o.max_num_seqs);
    else if (k == "max_num_batched_tokens") s = Read(v, k, origin, &o.max_num_batched_tokens);
    else if (k == "scheduling_policy") s = Read(v, k, origin, &o.scheduling_policy);
    else if (k == "expert_aware_batching") s = Read(v, k, origin, &o.expert_aware_batching);
    else if (k == "expert_aware_max_skips") s = Read(v, k, origin, &o.expert_aware_max_skips);
    else if (k == "expert_aware_miss_cost_steps") s = Read(v, k, origin, &o.expert_aware_miss_cost_steps);
    else if (k == "enable_prefix_caching") s = Read(v, k, origin, &o.enable_prefix_caching);
    else if (k == "num_kv_blocks") s = Read(v, k, origin, &o.num_kv_blocks);
    else if (k == "kv_cache_mb") s = Read(v, k, origin, &o.kv_cache_mb);
    else if (k == "max_queue") s = Read(v, k, origin, &o.max_queue);
    else if (k == "num_threads") s = Read(v, k, origin, &o.num_threads);
    else if (k == "drain_timeout_s") s = Read(v, k, origin, &o.drain_timeout_s);
    else if (k == "log_format") s = Read(v, k, origin, &o.log_format);
    else if (k == "log_level") s = Read(v, k, origin, &o.log_level);
    else if (k == "max_stream_buffer_tokens") s = Read(v, k, origin, &o.max_stream_buffer_tokens);
    else if (k == "max_body_mb") s = Read(v, k, origin, &o.max_body_mb);
    else if (k == "max_prompt_tokens") s = Read(v, k, origin, &o.max_prompt_tokens);
    else if (k == "cpu_memory_limit_mb") s = Read(v, k, origin, &o.cpu_memory_limit_mb);
    else if (k == "tls_cert") s = Read(v, k, origin, &o.tls_cert);
    else if (k == "tls_key") s = Read(v, k, origin, &o.tls_key);
    else if (!k.empty() && k[0] == '_') continue;  // "_comment" and friends
    else return absl::InvalidArgumentError(absl::StrCat(origin, ": unknown option \"", k, "\""));
    if (!s.ok()) return s;
  }
  return o;
}

absl::StatusOr<ServerOptions> ApplyConfigFile(const std::string& path, ServerOptions base) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("config: cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  base.config = path;
  return ApplyConfigJson(ss.str(), path, std::move(base));
}

absl::StatusOr<ServerOptions> ParseServerFlags(int argc, char** argv) {
  ServerOptions flags;
  CLI::App app{"moe_server: gRPC inference server for Mixture-of-Experts models"};
  app.add_option("--config", flags.config, "JSON config file (flags override it)");
  app.add_option("--model", flags.model, "model directory (config.json, *.safetensors, tokenizer.json)");
  app.add_option("--device", flags.device, "auto | cpu | cuda");
  app.add_option("--dtype", flags.dtype, "CUDA storage dtype: auto (the checkpoint's) | bf16 | fp16 | fp32; the CPU computes in fp32");
  app.add_option("--gpu-memory-utilization", flags.gpu_memory_utilization, "CUDA: fraction of the GPU's memory for weights, KV cache and expert cache, checked at load");
  app.add_option("--offload", flags.offload, "CUDA expert offload: auto (only when the experts do not fit) | on | off");
  app.add_option("--expert-cache-gb", flags.expert_cache_gb, "GPU expert cache size with offload (0 = what --gpu-memory-utilization leaves)");
  app.add_option("--prefetch", flags.prefetch, "expert prefetch: auto (the checkpoint's exact predictor, else next-gate) | off | next-gate | pregate | router");
  app.add_option("--prefetch-depth", flags.prefetch_depth, "MoE layers ahead the next-gate predictor looks");
  app.add_option("--expert-cache-policy", flags.expert_cache_policy, "expert cache eviction: lru | lfu | belady");
  app.add_option("--host", flags.host, "address to listen on");
  app.add_option("--grpc-port", flags.grpc_port, "gRPC port; 0 picks a free one");
  app.add_option("--http-port", flags.http_port, "OpenAI-compatible HTTP port; 0 picks a free one, -1 disables HTTP");
  app.add_option("--api-key", flags.api_key, "require this key on both frontends (default: $MOE_API_KEY)");
  app.add_option("--allowed-origins", flags.allowed_origins, "CORS for browser clients on the HTTP port: * or comma-separated origins (default: none, no CORS headers)");
  app.add_option("--chat-template", flags.chat_template, "Jinja chat template file overriding the tokenizer's");
  app.add_option("--served-model-name", flags.served_model_name, "model name clients use (default: the model directory)");
  app.add_flag("--enable-auto-tool-choice", flags.enable_auto_tool_choice, "chat tool calling: requests with tools and tool_choice \"auto\" get the model's tool calls back as tool_calls (needs --tool-call-parser)");
  app.add_option("--tool-call-parser", flags.tool_call_parser, "how tool calls are read from the model's output: hermes (<tool_call>{...}</tool_call>, Qwen2.5/Qwen3 templates)");
  app.add_option("--max-num-seqs", flags.max_num_seqs, "sequences per step at most");
  app.add_option("--max-num-batched-tokens", flags.max_num_batched_tokens, "tokens per step at most");
  app.add_option("--scheduling-policy", flags.scheduling_policy, "fcfs (arrival order; requests must not set priority) | priority (requests' priority field, lower first: admitted first, preempted last, and may preempt running requests of a larger value; no aging, as in vLLM)");
  app.add_flag("--expert-aware-batching", flags.expert_aware_batching, "with a bounded GPU expert cache (offload), run decodes whose experts fit the cache together and defer the rest a step (outputs unchanged)");
  app.add_option("--expert-aware-max-skips", flags.expert_aware_max_skips, "expert-aware batching: consecutive steps a decode may be deferred at most");
  app.add_option("--expert-aware-miss-cost-steps", flags.expert_aware_miss_cost_steps, "expert-aware batching: what one expert-cache miss costs, in decode steps (t_miss / t_step); decodes are deferred only where the misses saved pay for the extra step");
  app.add_flag("--enable-prefix-caching,!--no-enable-prefix-caching", flags.enable_prefix_caching, "automatic prefix caching (default on): reuse the KV cache of a prompt prefix an earlier request computed (shared system prompts, multi-turn chats) instead of prefilling it again; outputs unchanged");
  app.add_option("--num-kv-blocks", flags.num_kv_blocks, "KV cache blocks (16 tokens each); 0 = from --kv-cache-mb");
  app.add_option("--kv-cache-mb", flags.kv_cache_mb, "KV cache size when --num-kv-blocks is 0");
  app.add_option("--max-queue", flags.max_queue, "waiting requests before RESOURCE_EXHAUSTED");
  app.add_option("--num-threads", flags.num_threads, "CPU threads (0 = all cores)");
  app.add_option("--drain-timeout", flags.drain_timeout_s, "seconds to finish in-flight requests on SIGTERM/SIGINT");
  app.add_option("--log-format", flags.log_format, "text | json");
  app.add_option("--log-level", flags.log_level, "trace | debug | info | warn | error");
  app.add_option("--max-stream-buffer-tokens", flags.max_stream_buffer_tokens, "tokens a stream may buffer for a slow client before it is cancelled (RESOURCE_EXHAUSTED); 0 = unbounded");
  app.add_option("--max-body-mb", flags.max_body_mb, "HTTP request body limit in MiB (413 above it)");
  app.add_option("--max-prompt-tokens", flags.max_prompt_tokens, "longest prompt accepted, in tokens (0 = the model context)");
  app.add_option("--cpu-memory-limit-mb", flags.cpu_memory_limit_mb, "CPU backend: weights + KV cache must fit in this (0 = MemAvailable); checked at startup");
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate chain: serve gRPC and HTTP over TLS (with --tls-key)");
  app.add_option("--tls-key", flags.tls_key, "PEM private key for --tls-cert");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return absl::CancelledError(app.help());
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(absl::StrCat("flags: ", e.what()));
  }
  ServerOptions o;
  if (!flags.config.empty()) {
    auto from_file = ApplyConfigFile(flags.config, o);
    if (!from_file.ok()) return from_file.status();
    o = *from_file;
  }
  auto set = [&app](const char* name) { return app.count(name) > 0; };
  if (set("--model")) o.model = flags.model;
  if (set("--device")) o.device = flags.device;
  if (set("--dtype")) o.dtype = flags.dtype;
  if (set("--gpu-memory-utilization")) o.gpu_memory_utilization = flags.gpu_memory_utilization;
  if (set("--offload")) o.offload = flags.offload;
  if (set("--expert-cache-gb")) o.expert_cache_gb = flags.expert_cache_gb;
  if (set("--prefetch")) o.prefetch = flags.prefetch;
  if (set("--prefetch-depth")) o.prefetch_depth = flags.prefetch_depth;
  if (set("--expert-cache-policy")) o.expert_cache_policy = flags.expert_cache_policy;
  if (set("--host")) o.host = flags.host;
  if (set("--grpc-port")) o.grpc_port = flags.grpc_port;
  if (set("--http-port")) o.http_port = flags.http_port;
  if (set("--api-key")) o.api_key = flags.api_key;
  if (set("--allowed-origins")) o.allowed_origins = flags.allowed_origins;
  if (set("--chat-template")) o.chat_template = flags.chat_template;
  if (set("--served-model-name")) o.served_model_name = flags.served_model_name;
  if (set("--enable-auto-tool-choice")) o.enable_auto_tool_choice = flags.enable_auto_tool_choice;
  if (set("--tool-call-parser")) o.tool_call_parser = flags.tool_call_parser;
  if (o.api_key.empty()) {
    if (const char* env = std::getenv("MOE_API_KEY"); env != nullptr) o.api_key = env;
  }
  if (set("--max-num-seqs")) o.max_num_seqs = flags.max_num_seqs;
  if (set("--max-num-batched-tokens")) o.max_num_batched_tokens = flags.max_num_batched_tokens;
  if (set("--scheduling-policy")) o.scheduling_policy = flags.scheduling_policy;
  if (set("--expert-aware-batching")) o.expert_aware_batching = flags.expert_aware_batching;
  if (set("--expert-aware-max-skips")) o.expert_aware_max_skips = flags.expert_aware_max_skips;
  if (set("--expert-aware-miss-cost-steps")) o.expert_aware_miss_cost_steps = flags.expert_aware_miss_cost_steps;
  if (set("--enable-prefix-caching")) o.enable_prefix_caching = flags.enable_prefix_caching;
  if (set("--num-kv-blocks")) o.num_kv_blocks = flags.num_kv_blocks;
  if (set("--kv-cache-mb")) o.kv_cache_mb = flags.kv_cache_mb;
  if (set("--max-queue")) o.max_queue = flags.max_queue;
  if (set("--num-threads")) o.num_threads = flags.num_threads;
  if (set("--drain-timeout")) o.drain_timeout_s = flags.drain_timeout_s;
  if (set("--log-format")) o.log_format = flags.log_format;
  if (set("--log-level")) o.log_level = flags.log_level;
  if (set("--max-stream-buffer-tokens")) o.max_stream_buffer_tokens = flags.max_stream_buffer_tokens;
  if (set("--max-body-mb")) o.max_body_mb = flags.max_body_mb;
  if (set("--max-prompt-tokens")) o.max_prompt_tokens = flags.max_prompt_tokens;
  if (set("--cpu-memory-limit-mb")) o.cpu_memory_limit_mb = flags.cpu_memory_limit_mb;
  if (set("--tls-cert")) o.tls_cert = flags.tls_cert;
  if (set("--tls-key")) o.tls_key = flags.tls_key;
  if (absl::Status s = ValidateServerOptions(o); !s.ok()) return s;
  return o;
}

absl::Status ValidateServerOptions(const ServerOptions& o) {
  auto bad = [](const char* name, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", why));
  };
  if (o.model.empty()) return bad("model", "a model directory is required (--model DIR)");
  if (o.dtype != "auto" && o.dtype != "bf16" && o.dtype != "fp16" && o.dtype != "fp32") {
    return bad("dtype", absl::StrCat("must be auto, bf16, fp16 or fp32, got \"", o.dtype, "\""));
  }
  if (!(o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1)) {
    return bad("gpu_memory_utilization", absl::StrCat("must be in (0, 1], got ", o.gpu_memory_utilization));
  }
  if (o.offload != "auto" && o.offload != "on" && o.offload != "off") {
    return bad("offload", absl::StrCat("must be auto, on or off, got \"", o.offload, "\""));
  }
  if (!(o.expert_cache_gb >= 0)) return bad("expert_cache_gb", "must be >= 0");
  if (o.prefetch != "auto" && o.prefetch != "off" && o.prefetch != "next-gate" && o.prefetch != "pregate" &&
      o.prefetch != "router") {
    return bad("prefetch", absl::StrCat("must be auto, off, next-gate, pregate or router, got \"", o.prefetch, "\""));
  }
  if (o.prefetch_depth < 1) return bad("prefetch_depth", "must be >= 1");
  if (o.expert_cache_policy != "lru" && o.expert_cache_policy != "lfu" && o.expert_cache_policy != "belady") {
    return bad("expert_cache_policy", absl::StrCat("must be lru, lfu or belady, got \"", o.expert_cache_policy, "\""));
  }
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda") {
    return bad("device", absl::StrCat("must be auto, cpu or cuda, got \"", o.device, "\""));
  }
  if (o.grpc_port < 0 || o.grpc_port > 65535) return bad("grpc_port", "must be in [0, 65535]");
  if (o.http_port < -1 || o.http_port > 65535) {
    return bad("http_port", "must be in [0, 65535], or -1 to disable HTTP");
  }
  if (o.max_num_seqs < 1) return bad("max_num_seqs", "must be >= 1");
  if (o.max_num_batched_tokens < 1) return bad("max_num_batched_tokens", "must be >= 1");
  if (o.scheduling_policy != "fcfs" && o.scheduling_policy != "priority") {
    return bad("scheduling_policy", absl::StrCat("--scheduling-policy must be fcfs or priority, got \"",
                                                 o.scheduling_policy, "\""));
  }
  if (o.expert_aware_max_skips < 0) return bad("expert_aware_max_skips", "must be >= 0");
  if (!(o.expert_aware_miss_cost_steps >= 0)) return bad("expert_aware_miss_cost_steps", "must be >= 0");
  if (o.num_kv_blocks < 0) return bad("num_kv_blocks", "must be >= 0");
  if (o.kv_cache_mb < 1) return bad("kv_cache_mb", "must be >= 1");
  if (o.max_queue < 0) return bad("max_queue", "must be >= 0");
  if (o.drain_timeout_s < 0) return bad("drain_timeout_s", "must be >= 0");
  if (o.max_stream_buffer_tokens < 0) return bad("max_stream_buffer_tokens", "must be >= 0");
  if (o.max_body_mb < 1) return bad("max_body_mb", "must be >= 1");
  if (o.max_prompt_tokens < 0) return bad("max_prompt_tokens", "must be >= 0");
  if (o.cpu_memory_limit_mb < 0) return bad("cpu_memory_limit_mb", "must be >= 0");
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return bad(o.tls_cert.empty() ? "tls_cert" : "tls_key",
               "--tls-cert and --tls-key must be given together");
  }
  if (!o.tool_call_parser.empty() && o.tool_call_parser != "hermes") {
    return bad("tool_call_parser",
               absl::StrCat("unknown parser \"", o.tool_call_parser, "\"; the only one is hermes"));
  }
  if (o.enable_auto_tool_choice && o.tool_call_parser.empty()) {
    return bad("tool_call_parser", "--enable-auto-tool-choice requires --tool-call-parser hermes");
  }
  if (o.log_format != "text" && o.log_format != "json") {
    return bad("log_format", "must be text or json");
  }
  return absl::OkStatus();
}

}  // namespace moe::server
