// A byte-level recogniser of the JSON documents that validate against a compiled
// JsonSchema (json_schema.h), for constrained decoding (json_schema_constraint.h): after
// each byte it knows whether the bytes so far begin some valid document ("dead" once
// they cannot) and whether a whole document has been read ("complete").
//
// Strings, numbers and literals are lexed by a JsonRecognizer, so their syntax and limits
// (escapes, UTF-8, number length) are exactly JSON mode's; whitespace outside strings is
// limited to JsonRecognizer::kMaxWhitespaceRun bytes in a row. On top of that:
// objects take only their listed keys (plus any other, with any value, when additional
// properties are allowed), each at most once, and '}' only once every required key was
// seen; ',' only while another key can still come. Arrays take items of the item schema,
// between minItems and maxItems of them. Enum / const values must match a listed
// serialisation byte for byte. Integers refuse '.', 'e' and 'E'. String lengths count
// code points (an escape or a surrogate pair is one). Containers nest at most kMaxDepth
// deep. A key spelled with escapes that a listed key spells plainly counts as another key.
//
// The state is a value (a fixed-size array, no allocation), copied per byte during a
// token-trie walk. Equal states accept the same continuations (operator==).
//
// Thread safety: a value type; one thread at a time per instance. The schema must outlive
// it (the constraint holds a shared_ptr).
#pragma once

#include <array>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "engine/sampling/json_recognizer.h"
#include "engine/sampling/json_schema.h"

namespace moe::engine::sampling {

class JsonSchemaRecognizer {
 public:
  static constexpr int kMaxDepth = 16;

  JsonSchemaRecognizer() = default;  // dead; for arrays of states
  explicit JsonSchemaRecognizer(const JsonSchema* schema);

  bool Advance(uint8_t byte);
  bool AdvanceAll(absl::string_view bytes);

  bool dead() const { return phase_ == kDead; }
  bool complete() const;
  // Any plain string byte (IsPlainStringByte) is accepted whatever comes before it: inside
  // a string without length limits, or an object key that may be any string.
  bool AcceptsAnyPlain() const;

  // For trie_constraint.h's walk (the state is a plain value).
  void CopyFrom(const JsonSchemaRecognizer& o) { *this = o; }

  friend bool operator==(const JsonSchemaRecognizer& a, const JsonSchemaRecognizer& b);
  friend bool operator!=(const JsonSchemaRecognizer& a, const JsonSchemaRecognizer& b) {
    return !(a == b);
  }

 private:
  enum Phase : uint8_t {
    kDead,
    kValue,      // a value of ValueNode()
    kObjFirst,   // after '{': a key or '}'
    kObjKey,     // after ',' in an object: a key
    kKey,        // inside a key
    kColon,      // after a key
    kAfterValue, // inside a container after a value
    kArrFirst,   // after '[': an item or ']'
    kDone,       // the document is complete
    kString,     // inside a string value (lexer_)
    kNumber,     // inside a number (lexer_)
    kLiteral,    // inside true / false / null (lexer_)
    kEnum,       // matching enum texts: cands_, offset_
  };
  struct Frame {
    uint64_t seen = 0;   // objects: bit i, properties[i] was given
    uint32_t count = 0;  // arrays: items begun
    uint16_t node = 0;
    uint16_t child = 0;  // the schema of the value that comes next
    bool object = false;
    friend bool operator==(const Frame& a, const Frame& b) {
      return a.seen == b.seen && a.count == b.count && a.node == b.node &&
             a.child == b.child && a.object == b.object;
    }
  };

  bool Structural(uint8_t b);
  bool StartValue(uint16_t node, uint8_t b);
  bool StartKey();
  bool Key(uint8_t b);
  bool EndValue();
  bool Pop();
  bool MoreKeysPossible(const Frame& f) const;
  bool Kill() {
    phase_ = kDead;
    return false;
  }
  uint16_t ValueNode() const { return depth_ == 0 ? schema_->root() : frames_[depth_ - 1].child; }
  const JsonSchema::Node& N(uint16_t i) const { return schema_->node(i); }
  // The enum texts matched so far end exactly here.
  bool EnumEnds() const;

  const JsonSchema* schema_ = nullptr;
  std::array<Frame, kMaxDepth> frames_{};
  uint8_t depth_ = 0;
  uint8_t phase_ = kDead;
  uint8_t ws_run_ = 0;
  uint16_t scalar_ = 0;    // the node of the string / number / enum being read
  uint32_t offset_ = 0;    // enum / key: bytes matched
  uint32_t chars_ = 0;     // string: code points so far (only when length-limited)
  uint64_t cands_ = 0;     // enum texts / property keys still matching
  JsonRecognizer lexer_{JsonTopLevel::kAnyValue};
};

}  // namespace moe::engine::sampling
