// Jinja filters and tests, and Python's json.dumps, as transformers' chat
// template environment provides them.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "server/chat_template/evaluator.h"
#include "server/chat_template/utf8.h"

namespace moe::server::chat_template {
namespace {

// Positional-or-keyword argument lookup.
const Value* Arg(const ValueList& args, const ValueDict& kwargs, size_t pos, const char* name) {
  if (pos < args.size()) return &args[pos];
  for (const auto& kv : kwargs) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

void JsonString(const std::string& s, std::string* out) {
  *out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          *out += static_cast<char>(c);
        }
    }
  }
  *out += '"';
}

void JsonDump(Evaluator& ev, const Value& v, int indent, int level, std::string* out) {
  ev.Step();
  ev.CheckSize(out->size());
  auto newline = [&](int lvl) {
    *out += '\n';
    out->append(static_cast<size_t>(indent) * lvl, ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kNone: *out += "null"; return;
    case Value::Kind::kBool: *out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: *out += std::to_string(v.as_int()); return;
    case Value::Kind::kDouble: {
      double d = v.as_double();
      if (std::isnan(d)) *out += "NaN";
      else if (std::isinf(d)) *out += d > 0 ? "Infinity" : "-Infinity";
      else *out += PyFloatRepr(d);
      return;
    }
    case Value::Kind::kString: JsonString(v.str(), out); return;
    case Value::Kind::kList: {
      if (v.list().empty()) { *out += "[]"; return; }
      *out += '[';
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i) *out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(level + 1);
        JsonDump(ev, v.list()[i], indent, level + 1, out);
      }
      if (indent >= 0) newline(level);
      *out += ']';
      return;
    }
    case Value::Kind::kDict: {
      if (v.dict().empty()) { *out += "{}"; return; }
      *out += '{';
      bool first = true;
      for (const auto& [k, val] : v.dict()) {
        if (!first) *out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(level + 1);
        JsonString(k, out);
        *out += ": ";
        JsonDump(ev, val, indent, level + 1, out);
      }
      if (indent >= 0) newline(level);
      *out += '}';
      return;
    }
    default:
      ev.Fail(absl::StrCat("Object of type ", v.TypeName(), " is not JSON serializable"));
  }
}

// Python str.strip family on code points; chars==nullptr strips whitespace.
std::string StripImpl(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<uint32_t> cps = DecodeUtf8(s);
  std::vector<uint32_t> set;
  bool ws = chars == nullptr || chars->is_none() || chars->is_undefined();
  if (!ws) set = DecodeUtf8(chars->ToStr());
  auto strip = [&](uint32_t cp) {
    return ws ? IsPySpace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) while (b < e && strip(cps[b])) ++b;
  if (right) while (e > b && strip(cps[e - 1])) --e;
  return EncodeUtf8(cps, b, e);
}

std::string Capitalize(const std::string& s) {
  std::vector<uint32_t> cps = DecodeUtf8(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? ToUpper(cps[i]) : ToLower(cps[i]);
  return EncodeUtf8(cps, 0, cps.size());
}

// Jinja's title filter: capitalize each piece split at runs of [-\s({\[<].
std::string JinjaTitle(const std::string& s) {
  std::vector<uint32_t> cps = DecodeUtf8(s);
  bool start = true;
  for (uint32_t& cp : cps) {
    bool sep = IsPySpace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
    if (sep) { start = true; continue; }
    cp = start ? ToUpper(cp) : ToLower(cp);
    start = false;
  }
  return EncodeUtf8(cps, 0, cps.size());
}

ValueList ToList(Evaluator& ev, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kList: return v.list();
    case Value::Kind::kDict: {
      ValueList out;
      for (const auto& kv : v.dict()) out.push_back(Value::String(kv.first));
      return out;
    }
    case Value::Kind::kString: {
      ValueList out;
      for (uint32_t cp : DecodeUtf8(v.str())) {
        std::string ch;
        AppendUtf8(cp, &ch);
        out.push_back(Value::String(std::move(ch)));
      }
      return out;
    }
    case Value::Kind::kUndefined: return {};
    default:
      ev.Fail(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
  }
}

Value Attribute(Evaluator& ev, const Value& item, const std::string& path) {
  Value cur = item;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const Value* next = cur.Find(part);
    cur = next ? *next : Value::Undefined(part);
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

}  // namespace

std::string PyJsonDumps(Evaluator& ev, const Value& v, int indent) {
  std::string out;
  JsonDump(ev, v, indent, 0, &out);
  return out;
}

bool PyLess(Evaluator& ev, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() != Value::Kind::kDouble && b.kind() != Value::Kind::kDouble) {
      return a.as_int() < b.as_int();
    }
    return a.ToDouble() < b.ToDouble();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list()) {
    const ValueList& x = a.list();
    const ValueList& y = b.list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!x[i].Equals(y[i])) return PyLess(ev, x[i], y[i]);
    }
    return x.size() < y.size();
  }
  ev.Fail(absl::StrCat("'<' not supported between instances of '", a.TypeName(), "' and '",
                       b.TypeName(), "'"));
}

bool ApplyTest(Evaluator& ev, const std::string& name, const Value& v, const ValueList& args) {
  using K = Value::Kind;
  auto arg0 = [&]() -> const Value& {
    if (args.empty()) ev.Fail(absl::StrCat("test '", name, "' needs an argument"));
    return args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind() == K::kInt;
  if (name == "float") return v.kind() == K::kDouble;
  if (name == "boolean") return v.kind() == K::kBool;
  if (name == "true") return v.kind() == K::kBool && v.as_bool();
  if (name == "false") return v.kind() == K::kBool && !v.as_bool();
  if (name == "callable") return v.kind() == K::kCallable;
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    bool any = false;
    for (uint32_t cp : DecodeUtf8(v.str())) {
      if (!IsCased(cp)) continue;
      any = true;
      if ((name == "lower" ? ToLower(cp) : ToUpper(cp)) != cp) return false;
    }
    return any;
  }
  if (name == "eq" || name == "equalto" || name == "==") return v.Equals(arg0());
  if (name == "ne" || name == "!=") return !v.Equals(arg0());
  if (name == "lt" || name == "lessthan" || name == "<") return PyLess(ev, v, arg0());
  if (name == "gt" || name == "greaterthan" || name == ">") return PyLess(ev, arg0(), v);
  if (name == "le" || name == "<=") return !PyLess(ev, arg0(), v);
  if (name == "ge" || name == ">=") return !PyLess(ev, v, arg0());
  if (name == "sameas") return v.Equals(arg0()) && v.kind() == arg0().kind();
  if (name == "in") {
    for (const Value& item : ToList(ev, arg0())) {
      if (item.Equals(v)) return true;
    }
    return arg0().is_string() && v.is_string() && arg0().str().find(v.str()) != std::string::npos;
  }
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (v.kind() != K::kInt) ev.Fail(absl::StrCat("test '", name, "' needs an integer"));
    int64_t m = name == "divisibleby" ? (arg0().kind() == K::kInt ? arg0().as_int() : 0) : 2;
    if (m == 0) ev.Fail("divisibleby needs a non-zero integer");
    bool divisible = v.as_int() % m == 0;
    return name == "odd" ? !divisible : divisible;
  }
  ev.Fail(absl::StrCat("no test named '", name, "'"));
}

Value ApplyFilter(Evaluator& ev, const std::string& name, const Value& v, ValueList args,
                  ValueDict kwargs) {
  auto need_string = [&]() -> std::string {
    if (v.is_undefined()) return "";
    return v.ToStr();
  };
  if (name == "trim") return Value::String(StripImpl(need_string(), Arg(args, kwargs, 0, "chars"), true, true));
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value::Int(static_cast<int64_t>(DecodeUtf8(v.str()).size()));
    if (v.is_list()) return Value::Int(static_cast<int64_t>(v.list().size()));
    if (v.is_dict() || v.kind() == Value::Kind::kNamespace) return Value::Int(static_cast<int64_t>(v.dict().size()));
    if (v.is_undefined()) return Value::Int(0);
    ev.Fail(absl::StrCat("object of type '", v.TypeName(), "' has no len()"));
  }
  if (name == "tojson") {
    const Value* indent = Arg(args, kwargs, 0, "indent");
    int n = -1;
    if (indent != nullptr && !indent->is_none()) {
      if (indent->kind() != Value::Kind::kInt || indent->as_int() < 0 || indent->as_int() > 64) {
        ev.Fail("tojson indent must be a small non-negative integer");
      }
      n = static_cast<int>(indent->as_int());
    }
    return Value::String(PyJsonDumps(ev, v, n));
  }
  if (name == "upper" || name == "lower") {
    std::vector<uint32_t> cps = DecodeUtf8(need_string());
    for (uint32_t& cp : cps) cp = name == "upper" ? ToUpper(cp) : ToLower(cp);
    return Value::String(EncodeUtf8(cps, 0, cps.size()));
  }
  if (name == "capitalize") return Value::String(Capitalize(need_string()));
  if (name == "title") return Value::String(JinjaTitle(need_string()));
  if (name == "default" || name == "d") {
    const Value* dflt = Arg(args, kwargs, 0, "default_value");
    const Value* boolean = Arg(args, kwargs, 1, "boolean");
    bool use = v.is_undefined() || (boolean != nullptr && boolean->Truthy() && !v.Truthy());
    if (use) return dflt ? *dflt : Value::String("");
    return v;
  }
  if (name == "string") return Value::String(v.ToStr());
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return v;
    std::string out;
    for (char c : v.ToStr()) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value::String(out);
  }
  if (name == "list") return Value::List(ToList(ev, v));
  if (name == "first" || name == "last") {
    ValueList items = ToList(ev, v);
    if (items.empty()) return Value::Undefined("first");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<uint32_t> cps = DecodeUtf8(v.str());
      std::reverse(cps.begin(), cps.end());
      return Value::String(EncodeUtf8(cps, 0, cps.size()));
    }
    ValueList items = ToList(ev, v);
    std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "join") {
    const Value* sep = Arg(args, kwargs, 0, "d");
    const Value* attr = Arg(args, kwargs, 1, "attribute");
    std::string s = sep ? sep->ToStr() : "";
    std::string out;
    bool first = true;
    for (const Value& item : ToList(ev, v)) {
      if (!first) out += s;
      first = false;
      out += (attr ? Attribute(ev, item, attr->ToStr()) : item).ToStr();
      ev.CheckSize(out.size());
    }
    return Value::String(std::move(out));
  }
  if (name == "int" || name == "float") {
    const Value* dflt = Arg(args, kwargs, 0, "default");
    Value fallback = dflt ? *dflt : (name == "int" ? Value::Int(0) : Value::Double(0));
    double d;
    if (v.is_number()) {
      d = v.ToDouble();
      if (name == "int" && v.kind() != Value::Kind::kDouble) return Value::Int(v.as_int());
    } else if (v.is_string()) {
      std::string s = StripImpl(v.str(), nullptr, true, true);
      char* end = nullptr;
      d = std::strtod(s.c_str(), &end);
      if (s.empty() || end != s.c_str() + s.size()) return fallback;
    } else {
      return fallback;
    }
    if (name == "float") return Value::Double(d);
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return Value::Int(static_cast<int64_t>(std::trunc(d)));
  }
  if (name == "abs") {
    if (v.kind() == Value::Kind::kDouble) return Value::Double(std::fabs(v.as_double()));
    if (v.is_number()) return Value::Int(v.as_int() < 0 ? -v.as_int() : v.as_int());
    ev.Fail(absl::StrCat("bad operand type for abs(): '", v.TypeName(), "'"));
  }
  if (name == "replace") {
    const Value* old_v = Arg(args, kwargs, 0, "old");
    const Value* new_v = Arg(args, kwargs, 1, "new");
    const Value* count = Arg(args, kwargs, 2, "count");
    if (!old_v || !new_v) ev.Fail("replace needs two arguments");
    ValueList margs = {*old_v, *new_v};
    if (count) margs.push_back(*count);
    return CallMethod(ev, Value::String(need_string()), "replace", std::move(margs), {});
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::List({});
    return CallMethod(ev, v, "items", {}, {});
  }
  if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject" ||
      name == "map") {
    ValueList out;
    bool by_attr = name == "selectattr" || name == "rejectattr";
    bool keep_if = name == "selectattr" || name == "select";
    for (const Value& item : ToList(ev, v)) {
      ev.Step();
      if (name == "map") {
        const Value* attr = Arg({}, kwargs, 0, "attribute");
        if (attr) {
          Value got = Attribute(ev, item, attr->ToStr());
          const Value* dflt = Arg({}, kwargs, 0, "default");
          out.push_back(got.is_undefined() && dflt ? *dflt : got);
        } else if (!args.empty()) {
          out.push_back(ApplyFilter(ev, args[0].ToStr(), item,
                                    ValueList(args.begin() + 1, args.end()), {}));
        } else {
          out.push_back(item);
        }
        continue;
      }
      size_t test_pos = by_attr ? 1 : 0;
      Value subject = by_attr ? Attribute(ev, item, args.empty() ? "" : args[0].ToStr()) : item;
      bool pass;
      if (args.size() > test_pos) {
        pass = ApplyTest(ev, args[test_pos].ToStr(), subject,
                         ValueList(args.begin() + test_pos + 1, args.end()));
      } else {
        pass = subject.Truthy();
      }
      if (pass == keep_if) out.push_back(item);
    }
    return Value::List(std::move(out));
  }
  if (name == "unique") {
    ValueList out;
    for (const Value& item : ToList(ev, v)) {
      bool seen = false;
      for (const Value& o : out) seen = seen || o.Equals(item);
      if (!seen) out.push_back(item);
    }
    return Value::List(std::move(out));
  }
  if (name == "sort" || name == "dictsort") {
    const Value* reverse = Arg(args, kwargs, 0, "reverse");
    const Value* attr = Arg(args, kwargs, 2, "attribute");
    ValueList items = name == "dictsort" ? CallMethod(ev, v, "items", {}, {}).list() : ToList(ev, v);
    auto key = [&](const Value& x) {
      if (name == "dictsort") return x.list()[0];
      return attr ? Attribute(ev, x, attr->ToStr()) : x;
    };
    std::stable_sort(items.begin(), items.end(),
                     [&](const Value& a, const Value& b) { return PyLess(ev, key(a), key(b)); });
    if (reverse && reverse->Truthy()) std::reverse(items.begin(), items.end());
    return Value::List(std::move(items));
  }
  if (name == "sum" || name == "min" || name == "max") {
    ValueList items = ToList(ev, v);
    if (name == "sum") {
      bool is_double = false;
      int64_t acc = 0;
      double dacc = 0;
      for (const Value& x : items) {
        if (!x.is_number()) ev.Fail("sum of non-numbers");
        if (x.kind() == Value::Kind::kDouble) is_double = true;
        acc += x.as_int();
        dacc += x.ToDouble();
      }
      return is_double ? Value::Double(dacc) : Value::Int(acc);
    }
    if (items.empty()) return Value::Undefined(name);
    Value best = items[0];
    for (const Value& x : items) {
      if (name == "min" ? PyLess(ev, x, best) : PyLess(ev, best, x)) best = x;
    }
    return best;
  }
  if (name == "round") {
    const Value* prec = Arg(args, kwargs, 0, "precision");
    double scale = std::pow(10.0, prec ? prec->ToDouble() : 0);
    return Value::Double(std::nearbyint(v.ToDouble() * scale) / scale);
  }
  if (name == "indent") {
    const Value* width = Arg(args, kwargs, 0, "width");
    const Value* first = Arg(args, kwargs, 1, "first");
    const Value* blank = Arg(args, kwargs, 2, "blank");
    std::string pad = width && width->is_string() ? width->str()
                                                  : std::string(width ? std::min<int64_t>(width->as_int(), 256) : 4, ' ');
    std::string s = need_string();
    std::string out;
    size_t pos = 0;
    bool first_line = true;
    while (true) {
      size_t nl = s.find('\n', pos);
      std::string line = s.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      bool indent_it = first_line ? (first && first->Truthy()) : (!line.empty() || (blank && blank->Truthy()));
      if (indent_it) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += '\n';
      pos = nl + 1;
      first_line = false;
      ev.CheckSize(out.size());
    }
    return Value::String(std::move(out));
  }
  ev.Fail(absl::StrCat("no filter named '", name, "'"));
}

}  // namespace moe::server::chat_template
