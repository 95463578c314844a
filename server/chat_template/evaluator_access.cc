// Attribute, item and slice access (Evaluator members), with Jinja's lookup
// rules: `a.b` prefers methods then keys, `a['b']` keys then methods; missing
// names give Undefined; Python indexing on lists and (code-point) strings.
#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/chat_template/evaluator.h"
#include "server/chat_template/utf8.h"

namespace moe::server::chat_template {
namespace {

bool IsIntLike(const Value& v) {
  return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool;
}

}  // namespace

Value Evaluator::GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) {
    Fail(absl::StrCat("'", obj.str().empty() ? "value" : obj.str(), "' is undefined (reading attribute '",
                      name, "')"));
  }
  if (IsMethodName(obj, name)) {
    Callable c;
    c.type = Callable::Type::kMethod;
    c.name = name;
    c.self = std::make_shared<Value>(obj);
    return Value::Function(std::move(c));
  }
  if (obj.is_dict() || obj.kind() == Value::Kind::kNamespace) {
    const Value* v = obj.Find(name);
    if (v != nullptr) return *v;
  }
  return Value::Undefined(name);
}

Value Evaluator::GetItem(const Value& obj, const Value& key) {
  if (obj.is_undefined()) {
    Fail(absl::StrCat("'", obj.str().empty() ? "value" : obj.str(), "' is undefined (subscripted)"));
  }
  if (obj.is_dict() || obj.kind() == Value::Kind::kNamespace) {
    if (key.is_string()) {
      const Value* v = obj.Find(key.str());
      if (v != nullptr) return *v;
      if (obj.is_dict() && IsMethodName(obj, key.str())) return GetAttr(obj, key.str());
    }
    return Value::Undefined(key.ToStr());
  }
  if ((obj.is_list() || obj.is_string()) && IsIntLike(key)) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::Undefined(key.ToStr());
      return obj.list()[i];
    }
    std::vector<uint32_t> cps = DecodeUtf8(obj.str());
    int64_t n = static_cast<int64_t>(cps.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::Undefined(key.ToStr());
    return Value::String(EncodeUtf8(cps, i, i + 1));
  }
  if (key.is_string()) return GetAttr(obj, key.str());
  return Value::Undefined(key.ToStr());
}

Value Evaluator::Slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto as_opt = [&](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none()) return std::nullopt;
    if (!IsIntLike(v)) Fail(absl::StrCat("slice ", what, " must be an integer or None"));
    return v.as_int();
  };
  std::optional<int64_t> a = as_opt(start, "start"), b = as_opt(stop, "stop"), c = as_opt(step, "step");
  int64_t st = c.value_or(1);
  if (st == 0) Fail("slice step cannot be zero");
  std::vector<uint32_t> cps;
  int64_t n;
  if (obj.is_string()) {
    cps = DecodeUtf8(obj.str());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.list().size());
  } else {
    Fail(absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t dflt, int64_t lo, int64_t hi) {
    if (!v) return dflt;
    int64_t x = *v < 0 ? *v + n : *v;
    return std::min(std::max(x, lo), hi);
  };
  int64_t from = st > 0 ? clamp(a, 0, 0, n) : clamp(a, n - 1, -1, n - 1);
  int64_t to = st > 0 ? clamp(b, n, 0, n) : clamp(b, -1, -1, n - 1);
  std::vector<int64_t> idx;
  for (int64_t i = from; st > 0 ? i < to : i > to; i += st) idx.push_back(i);
  if (obj.is_string()) {
    std::string out;
    for (int64_t i : idx) AppendUtf8(cps[i], &out);
    return Value::String(std::move(out));
  }
  ValueList items;
  for (int64_t i : idx) items.push_back(obj.list()[i]);
  return Value::List(std::move(items), obj.is_tuple());
}

}  // namespace moe::server::chat_template
