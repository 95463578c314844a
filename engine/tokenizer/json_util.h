// Small typed accessors over nlohmann::json that report the field at fault, for the
// tokenizer.json parsers. Paths look like "pre_tokenizer.pretokenizers[1].pattern".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace moe::engine::tok {

using Json = nlohmann::json;

inline absl::Status FieldError(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", path, " ", msg));
}

inline std::string Sub(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

inline std::string Index(const std::string& path, size_t i) {
  return absl::StrCat(path, "[", i, "]");
}

inline absl::StatusOr<std::string> GetString(const Json& j, const std::string& key,
                                             const std::string& path) {
  auto it = j.find(key);
  if (it == j.end()) return FieldError(Sub(path, key), "is missing");
  if (!it->is_string()) return FieldError(Sub(path, key), "must be a string");
  return it->get<std::string>();
}

inline absl::StatusOr<bool> GetBool(const Json& j, const std::string& key,
                                    const std::string& path, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) return FieldError(Sub(path, key), "must be a boolean");
  return it->get<bool>();
}

inline absl::StatusOr<int64_t> GetInt(const Json& j, const std::string& key,
                                      const std::string& path, int64_t def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number_integer()) return FieldError(Sub(path, key), "must be an integer");
  return it->get<int64_t>();
}

// The "type" of a component object.
inline absl::StatusOr<std::string> GetType(const Json& j, const std::string& path) {
  if (!j.is_object()) return FieldError(path, "must be an object");
  return GetString(j, "type", path);
}

inline absl::Status Unsupported(const std::string& path, const std::string& type) {
  return FieldError(Sub(path, "type"), absl::StrCat("'", type, "' is not supported"));
}

// Parses the array `j[key]` (a "Sequence" component's parts) with `parse(element, path)`,
// which returns absl::StatusOr<std::unique_ptr<T>>. Errors name the element's path.
template <typename T, typename ParseFn>
absl::StatusOr<std::vector<std::unique_ptr<T>>> ParseParts(const Json& j, const std::string& key,
                                                           const std::string& path,
                                                           ParseFn parse) {
  const std::string list = Sub(path, key);
  if (!j.contains(key) || !j[key].is_array()) return FieldError(list, "must be an array");
  std::vector<std::unique_ptr<T>> parts;
  for (size_t i = 0; i < j[key].size(); ++i) {
    auto part = parse(j[key][i], Index(list, i));
    if (!part.ok()) return part.status();
    parts.push_back(std::move(*part));
  }
  return parts;
}

}  // namespace moe::engine::tok
