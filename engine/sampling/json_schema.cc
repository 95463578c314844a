#include "engine/sampling/json_schema.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace moe::engine::sampling {

using Json = nlohmann::ordered_json;

class JsonSchemaCompiler {
 public:
  JsonSchemaCompiler(const Json& root, bool strict, JsonSchema* out)
      : root_(root), strict_(strict), out_(out) {}

  absl::StatusOr<uint16_t> Compile(const Json& s, const std::string& path) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return uint16_t{0};
      return Error(path, "a 'false' schema accepts nothing");
    }
    if (!s.is_object()) return Error(path, "a schema must be an object");
    if (auto it = s.find("$ref"); it != s.end()) return Ref(s, *it, path);

    JsonSchema::Node n;
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      static const std::set<std::string> kIgnored = {
          "title", "description", "$schema", "$id", "$comment", "default", "examples",
          "$defs", "definitions"};
      static const std::set<std::string> kKnown = {
          "type", "properties", "required", "additionalProperties", "items", "minItems",
          "maxItems", "enum", "const", "minLength", "maxLength"};
      if (kIgnored.count(k) != 0) continue;
      if (kKnown.count(k) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "json_schema keyword '", k, "' is not supported (at ", path, ")"));
      }
    }
    if (auto it = s.find("type"); it != s.end()) {
      n.types = 0;
      std::vector<Json> list = it->is_array() ? it->get<std::vector<Json>>() : std::vector<Json>{*it};
      for (const Json& t : list) {
        const uint8_t bit = !t.is_string()            ? 0
                            : t == "object"           ? JsonSchema::kObject
                            : t == "array"            ? JsonSchema::kArray
                            : t == "string"           ? JsonSchema::kString
                            : t == "number"           ? JsonSchema::kNumber
                            : t == "integer"          ? JsonSchema::kInteger
                            : t == "boolean"          ? JsonSchema::kBoolean
                            : t == "null"             ? JsonSchema::kNull
                                                      : 0;
        if (bit == 0) return Error(path + "/type", "unknown type " + t.dump());
        n.types |= bit;
      }
      if (n.types == 0) return Error(path + "/type", "no type is allowed");
      if (n.types & JsonSchema::kNumber) n.types &= ~JsonSchema::kInteger;
    }
    std::vector<Json> values;
    if (auto it = s.find("enum"); it != s.end()) {
      if (!it->is_array() || it->empty()) return Error(path + "/enum", "must be a non-empty array");
      values = it->get<std::vector<Json>>();
    }
    if (auto it = s.find("const"); it != s.end()) values = {*it};
    if (values.size() > JsonSchema::kMaxEnum) {
      return Error(path + "/enum", absl::StrCat("more than ", JsonSchema::kMaxEnum, " values"));
    }
    for (const Json& v : values) {
      if (v.is_object() || v.is_array()) {
        return Error(path + "/enum", "only strings, numbers, booleans and null are supported");
      }
      n.enum_texts.push_back(v.dump(-1, ' ', false, Json::error_handler_t::replace));
    }
    absl::Status st = Counts(s, "minItems", path, &n.min_items);
    if (st.ok()) st = Counts(s, "maxItems", path, &n.max_items);
    if (st.ok()) st = Counts(s, "minLength", path, &n.min_length);
    if (st.ok()) st = Counts(s, "maxLength", path, &n.max_length);
    if (!st.ok()) return st;
    if (n.min_items > n.max_items) return Error(path, "minItems exceeds maxItems");
    if (n.min_length > n.max_length) return Error(path, "minLength exceeds maxLength");

    if (auto it = s.find("items"); it != s.end()) {
      absl::StatusOr<uint16_t> items = Compile(*it, path + "/items");
      if (!items.ok()) return items.status();
      n.items = *items;
    }
    if (auto it = s.find("properties"); it != s.end()) {
      if (!it->is_object()) return Error(path + "/properties", "must be an object");
      if (it->size() > JsonSchema::kMaxProperties) {
        return Error(path + "/properties",
                     absl::StrCat("more than ", JsonSchema::kMaxProperties, " properties"));
      }
      for (auto p = it->begin(); p != it->end(); ++p) {
        absl::StatusOr<uint16_t> child = Compile(p.value(), path + "/properties/" + p.key());
        if (!child.ok()) return child.status();
        const std::string quoted = Json(p.key()).dump(-1, ' ', false, Json::error_handler_t::replace);
        n.properties.push_back({quoted.substr(1, quoted.size() - 2), *child});
      }
    }
    bool additional = !strict_;
    if (auto it = s.find("additionalProperties"); it != s.end()) {
      if (!it->is_boolean()) {
        return Error(path + "/additionalProperties", "only true or false is supported");
      }
      additional = it->get<bool>();
    }
    n.additional = additional ? 0 : JsonSchema::kNone;
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) return Error(path + "/required", "must be an array of strings");
      for (const Json& r : *it) {
        if (!r.is_string()) return Error(path + "/required", "must be an array of strings");
        const auto& props = s.contains("properties") ? s["properties"] : Json::object();
        size_t i = 0;
        for (auto p = props.begin(); p != props.end(); ++p, ++i) {
          if (p.key() == r.get<std::string>()) break;
        }
        if (i == props.size()) {
          return Error(path + "/required", "required key '" + r.get<std::string>() +
                                               "' is not in properties");
        }
        n.required |= uint64_t{1} << i;
      }
    }
    return Add(std::move(n), path);
  }

  absl::StatusOr<uint16_t> Add(JsonSchema::Node n, const std::string& path) {
    if (out_->nodes_.size() >= JsonSchema::kMaxNodes) {
      return Error(path, absl::StrCat("the schema has more than ", JsonSchema::kMaxNodes, " nodes"));
    }
    out_->nodes_.push_back(std::move(n));
    return static_cast<uint16_t>(out_->nodes_.size() - 1);
  }

 private:
  static absl::Status Error(const std::string& path, const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat("json_schema: ", msg, " (at ", path, ")"));
  }

  static absl::Status Counts(const Json& s, const char* key, const std::string& path,
                             uint32_t* out) {
    auto it = s.find(key);
    if (it == s.end()) return absl::OkStatus();
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 1000000) {
      return Error(path + "/" + key, "must be an integer in [0, 1000000]");
    }
    *out = static_cast<uint32_t>(it->get<int64_t>());
    return absl::OkStatus();
  }

  absl::StatusOr<uint16_t> Ref(const Json& s, const Json& ref, const std::string& path) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      static const std::set<std::string> kOk = {"$ref", "title", "description", "$schema",
                                                "$id", "$comment", "default", "examples",
                                                "$defs", "definitions"};
      if (kOk.count(it.key()) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("json_schema keyword '", it.key(),
                                                       "' next to '$ref' is not supported (at ",
                                                       path, ")"));
      }
    }
    if (!ref.is_string()) return Error(path + "/$ref", "must be a string");
    const std::string r = ref.get<std::string>();
    std::string section, name;
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      const std::string p = prefix;
      if (r.compare(0, p.size(), p) == 0) {
        section = p.substr(2, p.size() - 3);
        name = r.substr(p.size());
      }
    }
    if (section.empty() || name.empty() || name.find('/') != std::string::npos ||
        name.find('~') != std::string::npos) {
      return Error(path + "/$ref", "only \"#/$defs/NAME\" and \"#/definitions/NAME\" are supported");
    }
    if (auto done = refs_.find(r); done != refs_.end()) return done->second;
    if (!in_progress_.insert(r).second) {
      return Error(path + "/$ref", "recursive $ref \"" + r + "\" is not supported");
    }
    auto defs = root_.find(section);
    if (defs == root_.end() || !defs->is_object() || !defs->contains(name)) {
      return Error(path + "/$ref", "\"" + r + "\" is not defined");
    }
    absl::StatusOr<uint16_t> node = Compile((*defs)[name], "#/" + section + "/" + name);
    in_progress_.erase(r);
    if (node.ok()) refs_[r] = *node;
    return node;
  }

  const Json& root_;
  bool strict_;
  JsonSchema* out_;
  std::map<std::string, uint16_t> refs_;
  std::set<std::string> in_progress_;
};

absl::StatusOr<std::shared_ptr<const JsonSchema>> JsonSchema::Compile(const Json& schema,
                                                                      bool strict) {
  auto out = std::make_shared<JsonSchema>();
  // Node 0: any value (the schema of unconstrained items and additional properties).
  JsonSchema::Node any;
  any.additional = 0;
  out->nodes_.push_back(any);
  JsonSchemaCompiler compiler(schema, strict, out.get());
  absl::StatusOr<uint16_t> root = compiler.Compile(schema, "#");
  if (!root.ok()) return root.status();
  out->root_ = *root;
  return std::shared_ptr<const JsonSchema>(std::move(out));
}

}  // namespace moe::engine::sampling
