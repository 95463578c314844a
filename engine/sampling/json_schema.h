// A JSON Schema compiled for constrained decoding (OpenAI's response_format
// {"type": "json_schema"}): a flat graph of nodes that JsonSchemaRecognizer
// (json_schema_recognizer.h) walks byte by byte.
//
// The supported subset: "type" (object / array / string / number / integer / boolean /
// null, or a list of them), "properties", "required", "additionalProperties" (false or
// true; absent means false when `strict`, as OpenAI does, else true), "items",
// "minItems", "maxItems", "enum" / "const" of strings, numbers, booleans and null (the
// output must be the value's compact serialisation, byte for byte), "minLength" /
// "maxLength" (in code points), and "$ref" to "#/$defs/NAME" or "#/definitions/NAME"
// (non-recursive). Annotations ("title", "description", "$schema", "$id", "$comment",
// "default", "examples") are ignored. Anything else, including "anyOf", "pattern" and
// "format", is refused: "json_schema keyword 'X' is not supported (at #/path)".
// Limits: 64 properties per object, 64 enum values, 4096 nodes.
//
// Thread safety: immutable after Compile; shared freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace moe::engine::sampling {

class JsonSchema {
 public:
  enum TypeBit : uint8_t {
    kObject = 1,
    kArray = 2,
    kString = 4,
    kNumber = 8,   // any JSON number
    kInteger = 16, // digits only (no fraction or exponent)
    kBoolean = 32,
    kNull = 64,
    kAnyType = 127,
  };
  static constexpr int kMaxProperties = 64;
  static constexpr int kMaxEnum = 64;
  static constexpr int kMaxNodes = 4096;
  static constexpr uint16_t kNone = 0xFFFF;

  struct Property {
    std::string text;  // the key as it appears between the quotes (JSON-escaped)
    uint16_t node = 0;
  };
  struct Node {
    uint8_t types = kAnyType;
    // Non-empty: the value must be one of these serialisations exactly.
    std::vector<std::string> enum_texts;
    std::vector<Property> properties;
    uint64_t required = 0;        // bit i: properties[i] is required
    uint16_t additional = kNone;  // the schema of other keys' values; kNone: none allowed
    uint16_t items = 0;           // the schema of array items
    uint32_t min_items = 0;
    uint32_t max_items = UINT32_MAX;
    uint32_t min_length = 0;
    uint32_t max_length = UINT32_MAX;
    bool length_limited() const { return min_length > 0 || max_length != UINT32_MAX; }
  };

  // Node 0 accepts any JSON value; the root is root().
  static absl::StatusOr<std::shared_ptr<const JsonSchema>> Compile(
      const nlohmann::ordered_json& schema, bool strict);

  const Node& node(uint16_t i) const { return nodes_[i]; }
  uint16_t root() const { return root_; }
  size_t size() const { return nodes_.size(); }

 private:
  friend class JsonSchemaCompiler;
  std::vector<Node> nodes_;
  uint16_t root_ = 0;
};

}  // namespace moe::engine::sampling
