#include "server/http/tool_call_parser.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace moe::server::http {
namespace {

using Json = nlohmann::ordered_json;

constexpr absl::string_view kOpen = "<tool_call>";
constexpr absl::string_view kClose = "</tool_call>";
constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr int kIdChars = 24;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool AllSpace(absl::string_view s) { return std::all_of(s.begin(), s.end(), IsSpace); }

// Python's json.dumps(v, ensure_ascii=False): ", " and ": " separators, key order kept.
void DumpPythonStyle(const Json& v, std::string* out) {
  if (v.is_object()) {
    out->push_back('{');
    bool first = true;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!first) out->append(", ");
      first = false;
      out->append(Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace));
      out->append(": ");
      DumpPythonStyle(it.value(), out);
    }
    out->push_back('}');
  } else if (v.is_array()) {
    out->push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out->append(", ");
      DumpPythonStyle(v[i], out);
    }
    out->push_back(']');
  } else {
    out->append(v.dump(-1, ' ', false, Json::error_handler_t::replace));
  }
}

// The call a block body stands for, or nullopt when it is not one (then the block is
// content). Draws an id only for a call.
std::optional<ToolCall> BlockToCall(absl::string_view body, ToolCallIdGenerator* ids) {
  const Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || name->get<std::string>().empty()) {
    return std::nullopt;
  }
  ToolCall call;
  call.name = name->get<std::string>();
  auto args = j.find("arguments");
  if (args == j.end() || args->is_null()) {
    call.arguments = "{}";
  } else if (args->is_string()) {
    call.arguments = args->get<std::string>();
  } else {
    DumpPythonStyle(*args, &call.arguments);
  }
  call.id = ids->Next();
  return call;
}

// Length of the longest suffix of `s` that is a proper prefix of "<tool_call>".
size_t PartialOpenSuffix(absl::string_view s) {
  for (size_t n = std::min(s.size(), kOpen.size() - 1); n > 0; --n) {
    if (s.substr(s.size() - n) == kOpen.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace

ToolCallIdGenerator::ToolCallIdGenerator() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd()};
  rng_.seed(seq);
}

ToolCallIdGenerator::ToolCallIdGenerator(uint64_t seed) : rng_(seed) {}

std::string ToolCallIdGenerator::Next() {
  std::string id = "call_";
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof(kAlnum)) - 2);
  for (int i = 0; i < kIdChars; ++i) id.push_back(kAlnum[pick(rng_)]);
  return id;
}

ParsedToolCalls ParseToolCalls(absl::string_view text, ToolCallIdGenerator* ids) {
  ParsedToolCalls out;
  std::string content;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = text.find(kOpen, pos);
    if (open == absl::string_view::npos) {
      absl::StrAppend(&content, text.substr(pos));
      break;
    }
    absl::StrAppend(&content, text.substr(pos, open - pos));
    const size_t body_start = open + kOpen.size();
    const size_t close = text.find(kClose, body_start);
    const bool closed = close != absl::string_view::npos;
    const absl::string_view body =
        text.substr(body_start, closed ? close - body_start : absl::string_view::npos);
    const size_t end = closed ? close + kClose.size() : text.size();
    if (std::optional<ToolCall> call = BlockToCall(body, ids)) {
      out.calls.push_back(*std::move(call));
    } else {
      absl::StrAppend(&content, text.substr(open, end - open));
    }
    pos = end;
  }
  if (out.calls.empty() || !AllSpace(content)) out.content = std::move(content);
  return out;
}

std::vector<ToolCallStreamParser::Item> ToolCallStreamParser::Feed(absl::string_view delta) {
  std::vector<Item> out;
  buf_.append(delta.data(), delta.size());
  Process(&out);
  return out;
}

std::vector<ToolCallStreamParser::Item> ToolCallStreamParser::Finish() {
  std::vector<Item> out;
  if (in_block_) {
    EmitBlock(buf_, /*closed=*/false, &out);
  } else {
    EmitContent(buf_, &out);
  }
  buf_.clear();
  in_block_ = false;
  // Only whitespace came: null content beside calls, else the text as it was.
  if (num_calls_ == 0 && !held_space_.empty()) {
    Item item;
    item.content = std::move(held_space_);
    out.push_back(std::move(item));
  }
  held_space_.clear();
  return out;
}

void ToolCallStreamParser::Process(std::vector<Item>* out) {
  while (true) {
    if (!in_block_) {
      const size_t open = buf_.find(kOpen.data(), 0, kOpen.size());
      if (open == std::string::npos) {
        const size_t keep = PartialOpenSuffix(buf_);
        EmitContent(absl::string_view(buf_).substr(0, buf_.size() - keep), out);
        buf_.erase(0, buf_.size() - keep);
        return;
      }
      EmitContent(absl::string_view(buf_).substr(0, open), out);
      buf_.erase(0, open + kOpen.size());
      in_block_ = true;
      scan_from_ = 0;
    }
    const size_t close = buf_.find(kClose.data(), scan_from_, kClose.size());
    if (close == std::string::npos) {
      // The close tag may straddle deltas: resume where a match could still begin.
      scan_from_ = buf_.size() >= kClose.size() ? buf_.size() - kClose.size() + 1 : 0;
      return;
    }
    EmitBlock(absl::string_view(buf_).substr(0, close), /*closed=*/true, out);
    buf_.erase(0, close + kClose.size());
    in_block_ = false;
  }
}

void ToolCallStreamParser::EmitContent(absl::string_view text, std::vector<Item>* out) {
  if (text.empty()) return;
  if (!seen_text_) {
    held_space_.append(text.data(), text.size());
    if (AllSpace(text)) return;
    seen_text_ = true;
    text = held_space_;
  }
  // Adjacent content (e.g. text before and after an invalid block) merges into one item.
  if (!out->empty() && !out->back().call.has_value()) {
    out->back().content.append(text.data(), text.size());
  } else {
    Item item;
    item.content = std::string(text);
    out->push_back(std::move(item));
  }
  held_space_.clear();
}

void ToolCallStreamParser::EmitBlock(absl::string_view body, bool closed,
                                     std::vector<Item>* out) {
  if (std::optional<ToolCall> call = BlockToCall(body, &ids_)) {
    Item item;
    item.call = *std::move(call);
    item.index = num_calls_++;
    out->push_back(std::move(item));
    return;
  }
  EmitContent(absl::StrCat(kOpen, body, closed ? kClose : ""), out);
}

}  // namespace moe::server::http
