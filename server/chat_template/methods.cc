// Python methods of str/dict/list that chat templates call, and the global
// functions transformers' template environment defines.
#include <algorithm>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "server/chat_template/evaluator.h"
#include "server/chat_template/utf8.h"

namespace moe::server::chat_template {
namespace {

// Jinja's sandbox refuses ranges longer than this; so do we.
constexpr int64_t kMaxRange = 100000;

const char* const kStringMethods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper",
    "lower", "replace", "title", "capitalize", "find", "rfind", "count", "join",
    "splitlines", "isdigit", "isalpha", "isspace", "isupper", "islower", "isalnum"};
const char* const kDictMethods[] = {"get", "items", "keys", "values"};
const char* const kListMethods[] = {"index", "count"};

const Value& Need(Evaluator& ev, const ValueList& args, size_t i, const std::string& method) {
  if (i >= args.size()) ev.Fail(absl::StrCat(method, "() is missing an argument"));
  return args[i];
}

std::string NeedStr(Evaluator& ev, const Value& v, const std::string& method) {
  if (!v.is_string()) {
    ev.Fail(absl::StrCat(method, "() argument must be str, not ", v.TypeName()));
  }
  return v.str();
}

std::string StripCps(const std::string& s, const Value* chars, bool left, bool right) {
  std::vector<uint32_t> cps = DecodeUtf8(s);
  bool ws = chars == nullptr || chars->is_none();
  std::vector<uint32_t> set;
  if (!ws) set = DecodeUtf8(chars->ToStr());
  auto strip = [&](uint32_t cp) {
    return ws ? IsPySpace(cp) : std::find(set.begin(), set.end(), cp) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left) while (b < e && strip(cps[b])) ++b;
  if (right) while (e > b && strip(cps[e - 1])) --e;
  return EncodeUtf8(cps, b, e);
}

Value Split(Evaluator& ev, const std::string& s, const ValueList& args, const ValueDict& kwargs,
            bool from_right) {
  const Value* sep = args.size() > 0 ? &args[0] : nullptr;
  const Value* maxsplit = args.size() > 1 ? &args[1] : nullptr;
  for (const auto& kv : kwargs) {
    if (kv.first == "sep") sep = &kv.second;
    if (kv.first == "maxsplit") maxsplit = &kv.second;
  }
  int64_t max = maxsplit && maxsplit->kind() == Value::Kind::kInt ? maxsplit->as_int() : -1;
  std::vector<std::string> parts;
  if (sep == nullptr || sep->is_none()) {
    std::vector<uint32_t> cps = DecodeUtf8(s);
    std::vector<std::pair<size_t, size_t>> words;
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && IsPySpace(cps[i])) ++i;
      if (i >= cps.size()) break;
      size_t b = i;
      while (i < cps.size() && !IsPySpace(cps[i])) ++i;
      words.emplace_back(b, i);
    }
    if (max >= 0 && static_cast<int64_t>(words.size()) > max + 1) {
      if (from_right) {
        size_t keep = words.size() - max;
        size_t b = 0;
        while (b < cps.size() && IsPySpace(cps[b])) ++b;
        std::vector<std::pair<size_t, size_t>> merged = {{b, words[keep - 1].second}};
        merged.insert(merged.end(), words.begin() + keep, words.end());
        words = merged;
      } else {
        size_t e = cps.size();
        while (e > 0 && IsPySpace(cps[e - 1])) --e;
        words.resize(max + 1);
        words.back().second = e;
      }
    }
    for (auto [b, e] : words) parts.push_back(EncodeUtf8(cps, b, e));
  } else {
    std::string d = NeedStr(ev, *sep, "split");
    if (d.empty()) ev.Fail("empty separator");
    if (!from_right) {
      size_t pos = 0;
      while (true) {
        ev.Step();
        size_t f = (max < 0 || static_cast<int64_t>(parts.size()) < max) ? s.find(d, pos) : std::string::npos;
        if (f == std::string::npos) { parts.push_back(s.substr(pos)); break; }
        parts.push_back(s.substr(pos, f - pos));
        pos = f + d.size();
      }
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (true) {
        ev.Step();
        size_t f = (max < 0 || static_cast<int64_t>(rev.size()) < max) && end >= d.size()
                       ? s.rfind(d, end - d.size()) : std::string::npos;
        if (f == std::string::npos) { rev.push_back(s.substr(0, end)); break; }
        rev.push_back(s.substr(f + d.size(), end - f - d.size()));
        end = f;
      }
      parts.assign(rev.rbegin(), rev.rend());
    }
  }
  ValueList out;
  for (auto& p : parts) out.push_back(Value::String(std::move(p)));
  return Value::List(std::move(out));
}

bool AffixMatch(Evaluator& ev, const std::string& s, const Value& arg, bool prefix) {
  auto one = [&](const Value& a) {
    std::string x = NeedStr(ev, a, prefix ? "startswith" : "endswith");
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (arg.is_list()) {
    for (const Value& a : arg.list()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(arg);
}

Value StringMethod(Evaluator& ev, const std::string& s, const std::string& m, const ValueList& args,
                   const ValueDict& kwargs) {
  const Value* a0 = args.empty() ? nullptr : &args[0];
  if (m == "strip") return Value::String(StripCps(s, a0, true, true));
  if (m == "lstrip") return Value::String(StripCps(s, a0, true, false));
  if (m == "rstrip") return Value::String(StripCps(s, a0, false, true));
  if (m == "split") return Split(ev, s, args, kwargs, false);
  if (m == "rsplit") return Split(ev, s, args, kwargs, true);
  if (m == "startswith") return Value::Bool(AffixMatch(ev, s, Need(ev, args, 0, m), true));
  if (m == "endswith") return Value::Bool(AffixMatch(ev, s, Need(ev, args, 0, m), false));
  if (m == "upper" || m == "lower" || m == "capitalize") {
    std::vector<uint32_t> cps = DecodeUtf8(s);
    for (size_t i = 0; i < cps.size(); ++i) {
      bool up = m == "upper" || (m == "capitalize" && i == 0);
      cps[i] = up ? ToUpper(cps[i]) : ToLower(cps[i]);
    }
    return Value::String(EncodeUtf8(cps, 0, cps.size()));
  }
  if (m == "title") {
    std::vector<uint32_t> cps = DecodeUtf8(s);
    bool prev_cased = false;
    for (uint32_t& cp : cps) {
      bool cased = IsCased(cp);
      if (cased) cp = prev_cased ? ToLower(cp) : ToUpper(cp);
      prev_cased = cased;
    }
    return Value::String(EncodeUtf8(cps, 0, cps.size()));
  }
  if (m == "replace") {
    std::string from = NeedStr(ev, Need(ev, args, 0, m), m);
    std::string to = NeedStr(ev, Need(ev, args, 1, m), m);
    int64_t count = args.size() > 2 && args[2].kind() == Value::Kind::kInt ? args[2].as_int() : -1;
    std::string out;
    if (from.empty()) {
      // Python inserts `to` between every character (and at both ends).
      std::vector<uint32_t> cps = DecodeUtf8(s);
      int64_t done = 0;
      for (size_t i = 0; i <= cps.size(); ++i) {
        if (count < 0 || done < count) { out += to; ++done; }
        if (i < cps.size()) AppendUtf8(cps[i], &out);
        ev.CheckSize(out.size());
      }
      return Value::String(std::move(out));
    }
    size_t pos = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
      size_t f = s.find(from, pos);
      if (f == std::string::npos) break;
      out.append(s, pos, f - pos);
      out += to;
      ev.CheckSize(out.size());
      pos = f + from.size();
      ++done;
    }
    out.append(s, pos, std::string::npos);
    return Value::String(std::move(out));
  }
  if (m == "find" || m == "rfind" || m == "count") {
    std::string x = NeedStr(ev, Need(ev, args, 0, m), m);
    if (m == "count") {
      if (x.empty()) return Value::Int(static_cast<int64_t>(DecodeUtf8(s).size()) + 1);
      int64_t n = 0;
      for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
      return Value::Int(n);
    }
    size_t f = m == "find" ? s.find(x) : s.rfind(x);
    if (f == std::string::npos) return Value::Int(-1);
    return Value::Int(static_cast<int64_t>(DecodeUtf8(s.substr(0, f)).size()));
  }
  if (m == "join") {
    const Value& items = Need(ev, args, 0, m);
    if (!items.is_list()) ev.Fail("join() argument must be a list");
    std::string out;
    for (size_t i = 0; i < items.list().size(); ++i) {
      if (i) out += s;
      out += NeedStr(ev, items.list()[i], "join");
      ev.CheckSize(out.size());
    }
    return Value::String(std::move(out));
  }
  if (m == "splitlines") {
    ValueList out;
    size_t pos = 0;
    while (pos < s.size()) {
      size_t f = s.find_first_of("\r\n", pos);
      if (f == std::string::npos) { out.push_back(Value::String(s.substr(pos))); break; }
      out.push_back(Value::String(s.substr(pos, f - pos)));
      pos = f + ((s[f] == '\r' && f + 1 < s.size() && s[f + 1] == '\n') ? 2 : 1);
    }
    return Value::List(std::move(out));
  }
  // is* predicates
  std::vector<uint32_t> cps = DecodeUtf8(s);
  if (cps.empty()) return Value::Bool(false);
  bool all = true, any_cased = false;
  for (uint32_t cp : cps) {
    bool digit = cp >= '0' && cp <= '9';
    bool alpha = IsCased(cp) || (cp > 0x7f && !IsPySpace(cp) && !digit);
    if (m == "isdigit") all = all && digit;
    if (m == "isalpha") all = all && alpha;
    if (m == "isalnum") all = all && (alpha || digit);
    if (m == "isspace") all = all && IsPySpace(cp);
    if (IsCased(cp)) {
      any_cased = true;
      if (m == "isupper") all = all && ToUpper(cp) == cp;
      if (m == "islower") all = all && ToLower(cp) == cp;
    }
  }
  if (m == "isupper" || m == "islower") return Value::Bool(all && any_cased);
  return Value::Bool(all);
}

}  // namespace

bool IsMethodName(const Value& self, const std::string& name) {
  auto in = [&](const auto& table) {
    for (const char* m : table) {
      if (name == m) return true;
    }
    return false;
  };
  if (self.is_string()) return in(kStringMethods);
  if (self.is_dict()) return in(kDictMethods);
  if (self.is_list()) return in(kListMethods);
  return false;
}

Value CallMethod(Evaluator& ev, const Value& self, const std::string& name, ValueList args,
                 ValueDict kwargs) {
  ev.Step();
  if (self.is_string()) return StringMethod(ev, self.str(), name, args, kwargs);
  if (self.is_dict()) {
    if (name == "get") {
      const Value& key = Need(ev, args, 0, name);
      const Value* v = key.is_string() ? self.Find(key.str()) : nullptr;
      if (v != nullptr) return *v;
      return args.size() > 1 ? args[1] : Value::None();
    }
    ValueList out;
    for (const auto& [k, v] : self.dict()) {
      if (name == "items") out.push_back(Value::List({Value::String(k), v}, /*is_tuple=*/true));
      else if (name == "keys") out.push_back(Value::String(k));
      else out.push_back(v);
    }
    return Value::List(std::move(out));
  }
  if (self.is_list()) {
    const Value& x = Need(ev, args, 0, name);
    int64_t n = 0;
    for (size_t i = 0; i < self.list().size(); ++i) {
      if (!self.list()[i].Equals(x)) continue;
      if (name == "index") return Value::Int(static_cast<int64_t>(i));
      ++n;
    }
    if (name == "index") ev.Fail(absl::StrCat(x.Repr(), " is not in list"));
    return Value::Int(n);
  }
  ev.Fail(absl::StrCat("'", self.TypeName(), "' object has no attribute '", name, "'"));
}

bool IsGlobalFunction(const std::string& name) {
  return name == "raise_exception" || name == "namespace" || name == "range" ||
         name == "dict" || name == "strftime_now";
}

Value CallGlobal(Evaluator& ev, const std::string& name, ValueList args, ValueDict kwargs) {
  if (name == "raise_exception") {
    throw RenderError{args.empty() ? std::string("raise_exception() called") : args[0].ToStr(),
                      /*raised=*/true};
  }
  if (name == "namespace" || name == "dict") {
    ValueDict items;
    if (!args.empty() && args[0].is_dict()) items = args[0].dict();
    for (auto& kv : kwargs) {
      bool replaced = false;
      for (auto& existing : items) {
        if (existing.first == kv.first) { existing.second = kv.second; replaced = true; }
      }
      if (!replaced) items.push_back(std::move(kv));
    }
    return name == "dict" ? Value::Dict(std::move(items)) : Value::Namespace(std::move(items));
  }
  if (name == "range") {
    int64_t start = 0, stop = 0, step = 1;
    for (const Value& a : args) {
      if (a.kind() != Value::Kind::kInt && a.kind() != Value::Kind::kBool) {
        ev.Fail(absl::StrCat("range() argument must be an integer, not ", a.TypeName()));
      }
    }
    if (args.size() == 1) {
      stop = args[0].as_int();
    } else if (args.size() >= 2) {
      start = args[0].as_int();
      stop = args[1].as_int();
      if (args.size() > 2) step = args[2].as_int();
    } else {
      ev.Fail("range() expects at least 1 argument");
    }
    if (step == 0) ev.Fail("range() arg 3 must not be zero");
    long double count = step > 0 ? (static_cast<long double>(stop) - start) / step
                                 : (static_cast<long double>(start) - stop) / -step;
    if (count > kMaxRange) {
      ev.Fail(absl::StrCat("Range too big. The sandbox blocks ranges larger than MAX_RANGE (",
                           kMaxRange, ")."));
    }
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value::Int(i));
    return Value::List(std::move(out));
  }
  if (name == "strftime_now") {
    std::string fmt = args.empty() ? "" : args[0].ToStr();
    std::time_t now = std::time(nullptr);
    std::tm tm_now;
    localtime_r(&now, &tm_now);
    char buf[256];
    size_t n = std::strftime(buf, sizeof(buf), fmt.c_str(), &tm_now);
    return Value::String(std::string(buf, n));
  }
  ev.Fail(absl::StrCat("'", name, "' is not callable"));
}

}  // namespace moe::server::chat_template
