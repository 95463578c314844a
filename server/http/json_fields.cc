#include "server/http/json_fields.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace moe::server::http::json_fields {

absl::Status FieldError(absl::string_view field, absl::string_view msg) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", msg));
}

constexpr int kMaxJsonDepth = 64;

// Nesting depth of arrays/objects, outside strings. Deep documents are refused before
// parsing: copying and destroying them recurses.
int JsonDepth(absl::string_view body) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

absl::StatusOr<Json> ParseBody(absl::string_view body) {
  if (JsonDepth(body) > kMaxJsonDepth) {
    return FieldError("body", absl::StrCat("JSON nesting deeper than ", kMaxJsonDepth));
  }
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return FieldError("body", "is not valid JSON");
  if (!j.is_object()) return FieldError("body", "must be a JSON object");
  return j;
}

// The field's value, or nullptr when absent or null.
const Json* Get(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status GetString(const Json& obj, const char* key, std::string* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) return FieldError(key, "must be a string");
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status GetBool(const Json& obj, const char* key, bool* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return FieldError(key, "must be a boolean");
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status GetInt64(const Json& obj, const char* key, std::optional<int64_t>* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return FieldError(key, "is out of range");
    }
    *out = static_cast<int64_t>(u);
    return absl::OkStatus();
  }
  if (v->is_number_float()) {
    // 3.0 is 3, as vLLM's pydantic models read it; 2^64 arrives as a float too.
    const double d = v->get<double>();
    if (std::trunc(d) != d) return FieldError(key, "must be an integer");
    if (!(d >= -0x1p63 && d < 0x1p63)) return FieldError(key, "is out of range");
    *out = static_cast<int64_t>(d);
    return absl::OkStatus();
  }
  if (!v->is_number_integer()) return FieldError(key, "must be an integer");
  *out = v->get<int64_t>();
  return absl::OkStatus();
}

// An integer in [lo, hi].
absl::Status GetIntIn(const Json& obj, const char* key, int64_t lo, int64_t hi,
                      std::optional<int>* out) {
  std::optional<int64_t> v;
  if (absl::Status s = GetInt64(obj, key, &v); !s.ok()) return s;
  if (!v.has_value()) return absl::OkStatus();
  if (*v < lo || *v > hi) {
    return FieldError(key, absl::StrCat("must be in [", lo, ", ", hi, "], got ", *v));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status GetFloat(const Json& obj, const char* key, float* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number()) return FieldError(key, "must be a number");
  const double d = v->get<double>();
  if (!std::isfinite(d)) return FieldError(key, "must be finite");
  *out = static_cast<float>(d);
  return absl::OkStatus();
}

// A float in [lo, hi] (NaN and infinities refused by GetFloat).
absl::Status GetFloatIn(const Json& obj, const char* key, float lo, float hi, float* out) {
  if (absl::Status s = GetFloat(obj, key, out); !s.ok()) return s;
  if (*out < lo || *out > hi) {
    return FieldError(key, absl::StrCat("must be in [", lo, ", ", hi, "], got ", *out));
  }
  return absl::OkStatus();
}

}  // namespace moe::server::http::json_fields
