// Typed reads of the fields of an OpenAI-style JSON request body. Every error is
// INVALID_ARGUMENT whose message starts with the field and a colon ("top_p: must be a
// number"), which api_error.h reports as the error's `param`. A null field counts as absent:
// the Get* functions then leave `out` unchanged and return OK.
//
// Thread safety: pure functions of their input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::server::http::json_fields {

using Json = nlohmann::ordered_json;

// INVALID_ARGUMENT "<field>: <msg>".
absl::Status FieldError(absl::string_view field, absl::string_view msg);
// Nesting depth of arrays/objects outside strings (checked before parsing: copying and
// destroying deep documents recurses).
int JsonDepth(absl::string_view body);
// The body as a JSON object; errors name "body" (too deep, not JSON, not an object).
absl::StatusOr<Json> ParseBody(absl::string_view body);
// The field's value, or nullptr when absent or null.
const Json* Get(const Json& obj, const char* key);
absl::Status GetString(const Json& obj, const char* key, std::string* out);
absl::Status GetBool(const Json& obj, const char* key, bool* out);
// An integer; a whole-number float (3.0) counts, as vLLM reads it.
absl::Status GetInt64(const Json& obj, const char* key, std::optional<int64_t>* out);
// An integer in [lo, hi].
absl::Status GetIntIn(const Json& obj, const char* key, int64_t lo, int64_t hi,
                      std::optional<int>* out);
// A finite number.
absl::Status GetFloat(const Json& obj, const char* key, float* out);
// A finite number in [lo, hi].
absl::Status GetFloatIn(const Json& obj, const char* key, float lo, float hi, float* out);

}  // namespace moe::server::http::json_fields
