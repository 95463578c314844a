#include "engine/sampling/json_schema_recognizer.h"

namespace moe::engine::sampling {
namespace {

bool IsWhitespace(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
bool IsNumberByte(uint8_t b) {
  return (b >= '0' && b <= '9') || b == '.' || b == 'e' || b == 'E' || b == '+' || b == '-';
}

}  // namespace

JsonSchemaRecognizer::JsonSchemaRecognizer(const JsonSchema* schema)
    : schema_(schema), phase_(kValue) {}

bool operator==(const JsonSchemaRecognizer& a, const JsonSchemaRecognizer& b) {
  if (a.schema_ != b.schema_ || a.depth_ != b.depth_ || a.phase_ != b.phase_ ||
      a.ws_run_ != b.ws_run_ || a.scalar_ != b.scalar_ || a.offset_ != b.offset_ ||
      a.chars_ != b.chars_ || a.cands_ != b.cands_ || a.lexer_ != b.lexer_) {
    return false;
  }
  for (int i = 0; i < a.depth_; ++i) {
    if (!(a.frames_[i] == b.frames_[i])) return false;
  }
  return true;
}

bool JsonSchemaRecognizer::AdvanceAll(absl::string_view bytes) {
  for (char c : bytes) {
    if (!Advance(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool JsonSchemaRecognizer::EnumEnds() const {
  const auto& texts = N(scalar_).enum_texts;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (((cands_ >> i) & 1) && texts[i].size() == offset_) return true;
  }
  return false;
}

bool JsonSchemaRecognizer::complete() const {
  if (phase_ == kDone) return true;
  if (depth_ != 0) return false;
  if (phase_ == kNumber) return lexer_.complete();
  if (phase_ == kEnum) return EnumEnds();
  return false;
}

bool JsonSchemaRecognizer::AcceptsAnyPlain() const {
  if (phase_ == kString) return lexer_.InPlainString() && !N(scalar_).length_limited();
  if (phase_ == kKey) {
    return lexer_.InPlainString() && N(frames_[depth_ - 1].node).additional != JsonSchema::kNone;
  }
  return false;
}

bool JsonSchemaRecognizer::MoreKeysPossible(const Frame& f) const {
  const JsonSchema::Node& n = N(f.node);
  if (n.additional != JsonSchema::kNone) return true;
  const uint64_t all = n.properties.size() == 64 ? ~uint64_t{0}
                                                 : (uint64_t{1} << n.properties.size()) - 1;
  return (f.seen & all) != all;
}

bool JsonSchemaRecognizer::EndValue() {
  phase_ = depth_ == 0 ? kDone : kAfterValue;
  offset_ = chars_ = 0;
  cands_ = 0;
  scalar_ = 0;
  lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
  return true;
}

bool JsonSchemaRecognizer::Pop() {
  frames_[--depth_] = Frame();
  return EndValue();
}

bool JsonSchemaRecognizer::StartValue(uint16_t node, uint8_t b) {
  const JsonSchema::Node& n = N(node);
  if (!n.enum_texts.empty()) {
    uint64_t c = 0;
    for (size_t i = 0; i < n.enum_texts.size(); ++i) {
      if (static_cast<uint8_t>(n.enum_texts[i][0]) == b) c |= uint64_t{1} << i;
    }
    if (c == 0) return Kill();
    phase_ = kEnum, scalar_ = node, cands_ = c, offset_ = 1;
    return true;
  }
  auto push = [&](bool object) {
    if (depth_ >= kMaxDepth) return Kill();
    Frame& f = frames_[depth_++];
    f = Frame();
    f.node = node;
    f.object = object;
    f.child = object ? 0 : n.items;
    phase_ = object ? kObjFirst : kArrFirst;
    return true;
  };
  if (b == '{' && (n.types & JsonSchema::kObject)) return push(true);
  if (b == '[' && (n.types & JsonSchema::kArray)) return push(false);
  if (b == '"' && (n.types & JsonSchema::kString)) {
    phase_ = kString, scalar_ = node, chars_ = 0;
    lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
    return lexer_.Advance(b);
  }
  if ((b == '-' || (b >= '0' && b <= '9')) &&
      (n.types & (JsonSchema::kNumber | JsonSchema::kInteger))) {
    phase_ = kNumber, scalar_ = node;
    lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
    return lexer_.Advance(b);
  }
  if (((b == 't' || b == 'f') && (n.types & JsonSchema::kBoolean)) ||
      (b == 'n' && (n.types & JsonSchema::kNull))) {
    phase_ = kLiteral;
    lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
    return lexer_.Advance(b);
  }
  return Kill();
}

bool JsonSchemaRecognizer::StartKey() {
  const Frame& f = frames_[depth_ - 1];
  const JsonSchema::Node& n = N(f.node);
  const bool additional = n.additional != JsonSchema::kNone;
  cands_ = 0;
  for (size_t i = 0; i < n.properties.size(); ++i) {
    // With additional keys allowed, a seen key still matches, so that its repetition is
    // recognised (and refused) rather than taken as another key.
    if (additional || !((f.seen >> i) & 1)) cands_ |= uint64_t{1} << i;
  }
  if (cands_ == 0 && !additional) return Kill();
  phase_ = kKey, offset_ = 0;
  lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
  return lexer_.Advance('"');
}

bool JsonSchemaRecognizer::Key(uint8_t b) {
  Frame& f = frames_[depth_ - 1];
  const JsonSchema::Node& n = N(f.node);
  const bool additional = n.additional != JsonSchema::kNone;
  const bool closes = b == '"' && lexer_.InPlainString();
  if (!lexer_.Advance(b)) return Kill();
  if (closes) {
    for (size_t i = 0; i < n.properties.size(); ++i) {
      if (((cands_ >> i) & 1) && n.properties[i].text.size() == offset_) {
        if ((f.seen >> i) & 1) return Kill();  // a repeated key
        f.seen |= uint64_t{1} << i;
        f.child = n.properties[i].node;
        phase_ = kColon, cands_ = 0, offset_ = 0;
        lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
        return true;
      }
    }
    if (!additional) return Kill();
    f.child = n.additional;
    phase_ = kColon, cands_ = 0, offset_ = 0;
    lexer_ = JsonRecognizer(JsonTopLevel::kAnyValue);
    return true;
  }
  uint64_t next = 0;
  for (size_t i = 0; i < n.properties.size(); ++i) {
    const std::string& t = n.properties[i].text;
    if (((cands_ >> i) & 1) && offset_ < t.size() && static_cast<uint8_t>(t[offset_]) == b) {
      next |= uint64_t{1} << i;
    }
  }
  cands_ = next;
  if (cands_ != 0) {
    ++offset_;
  } else if (!additional) {
    return Kill();
  } else {
    offset_ = 0;  // another key: the offset no longer matters (equal states stay equal)
  }
  return true;
}

bool JsonSchemaRecognizer::Structural(uint8_t b) {
  if (IsWhitespace(b)) {
    if (ws_run_ >= JsonRecognizer::kMaxWhitespaceRun) return Kill();
    ++ws_run_;
    return true;
  }
  ws_run_ = 0;
  switch (phase_) {
    case kValue:
      return StartValue(ValueNode(), b);
    case kObjFirst:
      if (b == '}') return N(frames_[depth_ - 1].node).required == 0 ? Pop() : Kill();
      [[fallthrough]];
    case kObjKey:
      return b == '"' ? StartKey() : Kill();
    case kColon:
      if (b != ':') return Kill();
      phase_ = kValue;
      return true;
    case kArrFirst: {
      Frame& f = frames_[depth_ - 1];
      const JsonSchema::Node& n = N(f.node);
      if (b == ']') return n.min_items == 0 ? Pop() : Kill();
      if (n.max_items == 0) return Kill();
      f.count = 1;
      return StartValue(f.child, b);
    }
    case kAfterValue: {
      Frame& f = frames_[depth_ - 1];
      const JsonSchema::Node& n = N(f.node);
      if (f.object) {
        if (b == ',' && MoreKeysPossible(f)) {
          phase_ = kObjKey;
          return true;
        }
        if (b == '}' && (f.seen & n.required) == n.required) return Pop();
        return Kill();
      }
      if (b == ',' && f.count < n.max_items) {
        ++f.count;
        phase_ = kValue;
        return true;
      }
      if (b == ']' && f.count >= n.min_items) return Pop();
      return Kill();
    }
    default:  // kDone: only whitespace may follow
      return Kill();
  }
}

bool JsonSchemaRecognizer::Advance(uint8_t b) {
  switch (phase_) {
    case kDead:
      return false;
    case kKey:
      return Key(b);
    case kString: {
      const JsonSchema::Node& n = N(scalar_);
      if (n.length_limited() && lexer_.InPlainString()) {
        if (b == '"') {
          if (chars_ < n.min_length) return Kill();
        } else {
          if (chars_ >= n.max_length) return Kill();
          ++chars_;  // the first byte of a character (or of an escape)
        }
      }
      if (!lexer_.Advance(b)) return Kill();
      return lexer_.complete() ? EndValue() : true;
    }
    case kNumber:
      if (IsNumberByte(b)) {
        if ((N(scalar_).types & JsonSchema::kNumber) == 0 && (b == '.' || b == 'e' || b == 'E')) {
          return Kill();  // an integer
        }
        return lexer_.Advance(b) ? true : Kill();
      }
      if (!lexer_.complete()) return Kill();
      EndValue();
      return Advance(b);
    case kLiteral:
      if (!lexer_.Advance(b)) return Kill();
      return lexer_.complete() ? EndValue() : true;
    case kEnum: {
      const auto& texts = N(scalar_).enum_texts;
      uint64_t next = 0;
      for (size_t i = 0; i < texts.size(); ++i) {
        if (((cands_ >> i) & 1) && offset_ < texts[i].size() &&
            static_cast<uint8_t>(texts[i][offset_]) == b) {
          next |= uint64_t{1} << i;
        }
      }
      if (next != 0) {
        cands_ = next;
        ++offset_;
        return true;
      }
      if (!EnumEnds()) return Kill();
      EndValue();
      return Advance(b);
    }
    default:
      return Structural(b);
  }
}

}  // namespace moe::engine::sampling
