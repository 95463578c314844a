// Hermes-style tool calls in model output (the format of the Qwen2.5 / Qwen3 chat
// templates, and of vLLM's `--tool-call-parser hermes`):
//
//   Some text<tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
//
// A block becomes a call when its body is a JSON object with a string "name";
// "arguments" may be an object (re-serialised as Python's json.dumps does, key order
// kept), a string (taken as the arguments' JSON text) or absent ("{}"). Any other block
// stays in the content as the text the model wrote, tags included: output is never lost.
// A block left open at the end of the text is a call if its body is complete JSON, else
// content.
//
// `content` is the text outside call blocks, concatenated; null when calls were found and
// it is empty or only whitespace (as vLLM reports it). Without calls it is the whole
// text, unchanged.
//
// Two modes that agree: ParseToolCalls on a whole completion, and ToolCallStreamParser
// fed the same text in deltas split anywhere: the concatenation of its content items is
// the whole-text content ("" for null), and its calls are the same, in order.
//
// Thread safety: ParseToolCalls is a pure function; ToolCallIdGenerator and
// ToolCallStreamParser are single-threaded objects (one per choice).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moe::server::http {

struct ToolCall {
  std::string id;         // "call_" + 24 alphanumerics
  std::string name;
  std::string arguments;  // JSON text
};

// Ids for tool calls: random per generator, or a deterministic sequence from a seed.
class ToolCallIdGenerator {
 public:
  ToolCallIdGenerator();                        // seeded from std::random_device
  explicit ToolCallIdGenerator(uint64_t seed);  // same seed, same ids
  std::string Next();

 private:
  std::mt19937_64 rng_;
};

struct ParsedToolCalls {
  std::optional<std::string> content;
  std::vector<ToolCall> calls;
};

// Whole-text mode. Call ids are drawn from `ids` in order.
ParsedToolCalls ParseToolCalls(absl::string_view text, ToolCallIdGenerator* ids);

// Streaming mode: an incremental state machine over text deltas.
class ToolCallStreamParser {
 public:
  // One output event: content text (non-empty) or a complete call.
  struct Item {
    std::string content;
    std::optional<ToolCall> call;
    int index = 0;  // the call's position among this stream's calls (0, 1, ...)
  };

  explicit ToolCallStreamParser(ToolCallIdGenerator ids = ToolCallIdGenerator())
      : ids_(std::move(ids)) {}

  // Feeds the next delta. Content is released at once unless it might be the start of
  // "<tool_call>" (that suffix is held until the next delta decides) or the message's
  // content so far is only whitespace (held until non-whitespace arrives; at the end
  // dropped if calls were found, so a message that is only calls has null content). A
  // call is released when its closing tag arrives.
  std::vector<Item> Feed(absl::string_view delta);
  // End of the stream: releases what is held; an open block becomes a call if its body
  // is complete, else content. The parser is spent afterwards.
  std::vector<Item> Finish();

  int num_calls() const { return num_calls_; }

 private:
  void Process(std::vector<Item>* out);
  void EmitContent(absl::string_view text, std::vector<Item>* out);
  void EmitBlock(absl::string_view body, bool closed, std::vector<Item>* out);

  ToolCallIdGenerator ids_;
  bool in_block_ = false;
  std::string buf_;         // text after the last tag (a held tag prefix, or a block body)
  size_t scan_from_ = 0;    // in a block, where the close-tag search resumes
  bool seen_text_ = false;  // non-whitespace content released
  std::string held_space_;  // leading whitespace-only content
  int num_calls_ = 0;
};

}  // namespace moe::server::http
