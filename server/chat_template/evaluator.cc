#include "server/chat_template/evaluator.h"

#include <cmath>
#include <algorithm>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "server/chat_template/utf8.h"

namespace moe::server::chat_template {
namespace {

// Python floor division / modulo on integers.
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

bool IsIntLike(const Value& v) {
  return v.kind() == Value::Kind::kInt || v.kind() == Value::Kind::kBool;
}

}  // namespace

void Evaluator::Fail(const std::string& message) const {
  throw RenderError{line_ > 0 ? absl::StrCat("template error at line ", line_, ": ", message)
                              : message};
}

void Evaluator::CheckSize(size_t n) const {
  if (n > limits_.max_output_bytes) {
    Fail(absl::StrCat("template output exceeds the limit of ", limits_.max_output_bytes,
                      " bytes"));
  }
}

void Evaluator::Step() {
  if (++steps_ > limits_.max_steps) {
    Fail(absl::StrCat("template exceeded the limit of ", limits_.max_steps,
                      " evaluation steps (runaway loop?)"));
  }
}

absl::StatusOr<std::string> Evaluator::Render(const StmtList& body, ValueDict globals) {
  std::string out;
  out_ = &out;
  scopes_.clear();
  scopes_.emplace_back();
  for (auto& [k, v] : globals) scopes_[0][k] = std::move(v);
  try {
    ExecList(body);
  } catch (const RenderError& e) {
    if (e.raised) return absl::InvalidArgumentError(e.message);
    return absl::InvalidArgumentError(e.message);
  }
  return out;
}

void Evaluator::Emit(const std::string& text) {
  CheckSize(out_->size() + text.size());
  out_->append(text);
}

Evaluator::Flow Evaluator::ExecList(const StmtList& list) {
  for (const auto& s : list) {
    Flow f = Exec(*s);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Evaluator::Flow Evaluator::Exec(const Stmt& s) {
  Step();
  if (s.line > 0) line_ = s.line;
  switch (s.kind) {
    case Stmt::Kind::kText:
      Emit(s.text);
      return Flow::kNormal;
    case Stmt::Kind::kOutput:
      Emit(Eval(*s.expr).ToStr());
      return Flow::kNormal;
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < s.conds.size(); ++i) {
        if (Eval(*s.conds[i]).Truthy()) return ExecList(s.bodies[i]);
      }
      if (s.bodies.size() > s.conds.size()) return ExecList(s.bodies.back());
      return Flow::kNormal;
    case Stmt::Kind::kFor:
      ExecFor(s);
      return Flow::kNormal;
    case Stmt::Kind::kSet:
      ExecSet(s);
      return Flow::kNormal;
    case Stmt::Kind::kSetBlock: {
      std::string buf;
      std::string* saved = out_;
      out_ = &buf;
      ExecList(s.bodies[0]);
      out_ = saved;
      scopes_.back()[s.targets[0]] = Value::String(std::move(buf));
      return Flow::kNormal;
    }
    case Stmt::Kind::kMacro: {
      Callable c;
      c.type = Callable::Type::kMacro;
      c.name = s.macro->name;
      c.macro = s.macro.get();
      scopes_.back()[s.macro->name] = Value::Function(std::move(c));
      return Flow::kNormal;
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kBody:
      return ExecList(s.bodies[0]);
  }
  return Flow::kNormal;
}

void Evaluator::ExecFor(const Stmt& s) {
  Value iterable = Eval(*s.expr);
  ValueList items;
  switch (iterable.kind()) {
    case Value::Kind::kList:
      items = iterable.list();
      break;
    case Value::Kind::kDict:
      for (const auto& kv : iterable.dict()) items.push_back(Value::String(kv.first));
      break;
    case Value::Kind::kString: {
      std::vector<uint32_t> cps = DecodeUtf8(iterable.str());
      for (uint32_t cp : cps) {
        std::string ch;
        AppendUtf8(cp, &ch);
        items.push_back(Value::String(std::move(ch)));
      }
      break;
    }
    case Value::Kind::kUndefined:
      break;  // Jinja's Undefined iterates as empty
    default:
      Fail(absl::StrCat("'", iterable.TypeName(), "' object is not iterable"));
  }
  auto bind = [&](const Value& item) {
    auto& scope = scopes_.back();
    if (s.targets.size() == 1) {
      scope[s.targets[0]] = item;
      return;
    }
    if (!item.is_list() || item.list().size() != s.targets.size()) {
      Fail(absl::StrCat("cannot unpack ", item.TypeName(), " into ", s.targets.size(),
                        " loop variables"));
    }
    for (size_t i = 0; i < s.targets.size(); ++i) scope[s.targets[i]] = item.list()[i];
  };
  if (s.cond) {
    ValueList kept;
    for (const Value& item : items) {
      Step();
      scopes_.emplace_back();
      bind(item);
      bool keep = Eval(*s.cond).Truthy();
      scopes_.pop_back();
      if (keep) kept.push_back(item);
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    if (s.bodies.size() > 1) ExecList(s.bodies[1]);
    return;
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    Step();
    scopes_.emplace_back();
    bind(items[i]);
    ValueDict loop = {
        {"index", Value::Int(i + 1)},      {"index0", Value::Int(i)},
        {"revindex", Value::Int(n - i)},   {"revindex0", Value::Int(n - i - 1)},
        {"first", Value::Bool(i == 0)},    {"last", Value::Bool(i == n - 1)},
        {"length", Value::Int(n)},         {"depth", Value::Int(1)},
        {"depth0", Value::Int(0)},
    };
    if (i > 0) loop.emplace_back("previtem", items[i - 1]);
    if (i + 1 < n) loop.emplace_back("nextitem", items[i + 1]);
    scopes_.back()["loop"] = Value::Dict(std::move(loop));
    Flow f = ExecList(s.bodies[0]);
    scopes_.pop_back();
    if (f == Flow::kBreak) break;
  }
}

void Evaluator::ExecSet(const Stmt& s) {
  Value v = Eval(*s.expr);
  if (!s.attr.empty()) {
    Value ns = Lookup(s.targets[0]);
    if (ns.kind() != Value::Kind::kNamespace) {
      Fail(absl::StrCat("cannot assign attribute on non-namespace object '", s.targets[0], "'"));
    }
    for (auto& kv : ns.mutable_namespace()) {
      if (kv.first == s.attr) {
        kv.second = std::move(v);
        return;
      }
    }
    ns.mutable_namespace().emplace_back(s.attr, std::move(v));
    return;
  }
  if (s.targets.size() == 1) {
    scopes_.back()[s.targets[0]] = std::move(v);
    return;
  }
  if (!v.is_list() || v.list().size() != s.targets.size()) {
    Fail(absl::StrCat("cannot unpack ", v.TypeName(), " into ", s.targets.size(), " names"));
  }
  for (size_t i = 0; i < s.targets.size(); ++i) scopes_.back()[s.targets[i]] = v.list()[i];
}

Value Evaluator::Lookup(const std::string& name) const {
  for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
    auto f = it->find(name);
    if (f != it->end()) return f->second;
  }
  if (IsGlobalFunction(name)) {
    Callable c;
    c.type = Callable::Type::kBuiltin;
    c.name = name;
    return Value::Function(std::move(c));
  }
  return Value::Undefined(name);
}

void Evaluator::EvalArgs(const Expr& e, size_t first, ValueList* args, ValueDict* kwargs) {
  for (size_t i = first; i < e.args.size(); ++i) args->push_back(Eval(*e.args[i]));
  for (size_t i = 0; i < e.kwargs.size(); ++i) {
    kwargs->emplace_back(e.kwarg_names[i], Eval(*e.kwargs[i]));
  }
}

Value Evaluator::Eval(const Expr& e) {
  Step();
  switch (e.kind) {
    case Expr::Kind::kLiteral:
      return e.literal;
    case Expr::Kind::kName:
      return Lookup(e.name);
    case Expr::Kind::kGetAttr:
      return GetAttr(Eval(*e.args[0]), e.name);
    case Expr::Kind::kGetItem: {
      Value obj = Eval(*e.args[0]);
      return GetItem(obj, Eval(*e.args[1]));
    }
    case Expr::Kind::kSlice: {
      Value obj = Eval(*e.args[0]);
      Value parts[3];
      for (int i = 0; i < 3; ++i) parts[i] = e.args[i + 1] ? Eval(*e.args[i + 1]) : Value::None();
      return Slice(obj, parts[0], parts[1], parts[2]);
    }
    case Expr::Kind::kCall: {
      Value callee = Eval(*e.args[0]);
      ValueList args;
      ValueDict kwargs;
      EvalArgs(e, 1, &args, &kwargs);
      return CallValue(callee, std::move(args), std::move(kwargs));
    }
    case Expr::Kind::kFilter: {
      Value v = Eval(*e.args[0]);
      ValueList args;
      ValueDict kwargs;
      EvalArgs(e, 1, &args, &kwargs);
      return ApplyFilter(*this, e.name, v, std::move(args), std::move(kwargs));
    }
    case Expr::Kind::kTest: {
      Value v = Eval(*e.args[0]);
      ValueList args;
      ValueDict kwargs;
      EvalArgs(e, 1, &args, &kwargs);
      bool r = ApplyTest(*this, e.name, v, args);
      return Value::Bool(e.negated ? !r : r);
    }
    case Expr::Kind::kUnary: {
      Value v = Eval(*e.args[0]);
      if (e.name == "not") return Value::Bool(!v.Truthy());
      if (v.is_undefined()) Fail(absl::StrCat("'", v.str(), "' is undefined"));
      if (!v.is_number()) Fail(absl::StrCat("bad operand type for unary ", e.name, ": '", v.TypeName(), "'"));
      if (e.name == "+") return IsIntLike(v) ? Value::Int(v.as_int()) : v;
      if (IsIntLike(v)) {
        if (v.as_int() == std::numeric_limits<int64_t>::min()) Fail("integer overflow");
        return Value::Int(-v.as_int());
      }
      return Value::Double(-v.as_double());
    }
    case Expr::Kind::kBinary:
      return EvalBinary(e);
    case Expr::Kind::kCompare:
      return EvalCompare(e);
    case Expr::Kind::kCond:
      if (Eval(*e.args[0]).Truthy()) return Eval(*e.args[1]);
      return e.args[2] ? Eval(*e.args[2]) : Value::Undefined();
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      ValueList items;
      for (const auto& a : e.args) items.push_back(Eval(*a));
      return Value::List(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      ValueDict items;
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = Eval(*e.args[i]);
        Value v = Eval(*e.args[i + 1]);
        std::string key = k.ToStr();
        bool replaced = false;
        for (auto& kv : items) {
          if (kv.first == key) {
            kv.second = v;
            replaced = true;
          }
        }
        if (!replaced) items.emplace_back(std::move(key), std::move(v));
      }
      return Value::Dict(std::move(items));
    }
  }
  return Value::Undefined();
}

Value Evaluator::EvalBinary(const Expr& e) {
  const std::string& op = e.name;
  if (op == "and") {
    Value l = Eval(*e.args[0]);
    return l.Truthy() ? Eval(*e.args[1]) : l;
  }
  if (op == "or") {
    Value l = Eval(*e.args[0]);
    return l.Truthy() ? l : Eval(*e.args[1]);
  }
  Value l = Eval(*e.args[0]);
  Value r = Eval(*e.args[1]);
  if (op == "~") {
    std::string s = l.ToStr();
    std::string rs = r.ToStr();
    CheckSize(s.size() + rs.size());
    return Value::String(s + rs);
  }
  if (l.is_undefined()) Fail(absl::StrCat("'", l.str(), "' is undefined"));
  if (r.is_undefined()) Fail(absl::StrCat("'", r.str(), "' is undefined"));
  auto unsupported = [&]() {
    Fail(absl::StrCat("unsupported operand type(s) for ", op, ": '", l.TypeName(), "' and '",
                      r.TypeName(), "'"));
  };
  if (l.is_number() && r.is_number()) {
    bool ints = IsIntLike(l) && IsIntLike(r);
    int64_t a = l.as_int(), b = r.as_int();
    double x = l.ToDouble(), y = r.ToDouble();
    int64_t res = 0;
    if (op == "+") {
      if (!ints) return Value::Double(x + y);
      if (__builtin_add_overflow(a, b, &res)) Fail("integer overflow");
      return Value::Int(res);
    }
    if (op == "-") {
      if (!ints) return Value::Double(x - y);
      if (__builtin_sub_overflow(a, b, &res)) Fail("integer overflow");
      return Value::Int(res);
    }
    if (op == "*") {
      if (!ints) return Value::Double(x * y);
      if (__builtin_mul_overflow(a, b, &res)) Fail("integer overflow");
      return Value::Int(res);
    }
    if (op == "/") {
      if (y == 0) Fail("division by zero");
      return Value::Double(x / y);
    }
    if (op == "//" || op == "%") {
      if (y == 0) Fail(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
      if (ints) {
        if (a == std::numeric_limits<int64_t>::min() && b == -1) Fail("integer overflow");
        int64_t q = FloorDiv(a, b);
        return op == "//" ? Value::Int(q) : Value::Int(a - q * b);
      }
      double q = std::floor(x / y);
      if (op == "//") return Value::Double(q);
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::Double(m);
    }
    if (op == "**") {
      if (ints && b >= 0) {
        int64_t acc = 1;
        for (int64_t i = 0; i < b; ++i) {
          Step();
          if (__builtin_mul_overflow(acc, a, &acc)) Fail("integer overflow");
          if (acc == 0 || acc == 1) break;
        }
        return Value::Int(acc);
      }
      return Value::Double(std::pow(x, y));
    }
    unsupported();
  }
  if (op == "+") {
    if (l.is_string() && r.is_string()) {
      CheckSize(l.str().size() + r.str().size());
      return Value::String(l.str() + r.str());
    }
    if (l.is_list() && r.is_list()) {
      CheckSize(l.list().size() + r.list().size());
      ValueList items = l.list();
      items.insert(items.end(), r.list().begin(), r.list().end());
      return Value::List(std::move(items), l.is_tuple());
    }
    unsupported();
  }
  if (op == "*") {
    const Value* seq = IsIntLike(r) ? &l : &r;
    const Value* count = IsIntLike(r) ? &r : &l;
    if (!IsIntLike(*count) || !(seq->is_string() || seq->is_list())) unsupported();
    int64_t times = std::max<int64_t>(0, count->as_int());
    size_t unit = seq->is_string() ? seq->str().size() : seq->list().size();
    if (unit > 0 && static_cast<uint64_t>(times) > limits_.max_output_bytes / unit) CheckSize(limits_.max_output_bytes + 1);
    if (seq->is_string()) {
      std::string out;
      for (int64_t i = 0; i < times; ++i) out += seq->str();
      return Value::String(std::move(out));
    }
    ValueList items;
    for (int64_t i = 0; i < times; ++i) items.insert(items.end(), seq->list().begin(), seq->list().end());
    return Value::List(std::move(items), seq->is_tuple());
  }
  unsupported();
  return Value::Undefined();  // not reached
}

Value Evaluator::EvalCompare(const Expr& e) {
  Value left = Eval(*e.args[0]);
  for (size_t i = 0; i < e.ops.size(); ++i) {
    Value right = Eval(*e.args[i + 1]);
    const std::string& op = e.ops[i];
    bool r;
    if (op == "==") r = left.Equals(right);
    else if (op == "!=") r = !left.Equals(right);
    else if (op == "<") r = PyLess(*this, left, right);
    else if (op == ">") r = PyLess(*this, right, left);
    else if (op == "<=") r = !PyLess(*this, right, left);
    else if (op == ">=") r = !PyLess(*this, left, right);
    else {
      bool found = false;
      if (right.is_string()) {
        if (!left.is_string()) {
          Fail(absl::StrCat("'in <string>' requires string as left operand, not ", left.TypeName()));
        }
        found = right.str().find(left.str()) != std::string::npos;
      } else if (right.is_list()) {
        for (const Value& item : right.list()) {
          if (item.Equals(left)) { found = true; break; }
        }
      } else if (right.is_dict()) {
        found = left.is_string() && right.Find(left.str()) != nullptr;
      } else if (!right.is_undefined()) {
        Fail(absl::StrCat("argument of type '", right.TypeName(), "' is not iterable"));
      }
      r = op == "in" ? found : !found;
    }
    if (!r) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

Value Evaluator::CallValue(const Value& callee, ValueList args, ValueDict kwargs) {
  if (callee.kind() != Value::Kind::kCallable) {
    if (callee.is_undefined()) Fail(absl::StrCat("'", callee.str(), "' is undefined"));
    Fail(absl::StrCat("'", callee.TypeName(), "' object is not callable"));
  }
  const Callable& c = callee.callable();
  switch (c.type) {
    case Callable::Type::kBuiltin:
      return CallGlobal(*this, c.name, std::move(args), std::move(kwargs));
    case Callable::Type::kMethod:
      return CallMethod(*this, *c.self, c.name, std::move(args), std::move(kwargs));
    case Callable::Type::kMacro:
      return CallMacro(*c.macro, std::move(args), std::move(kwargs));
  }
  return Value::Undefined();
}

Value Evaluator::CallMacro(const MacroNode& macro, ValueList args, ValueDict kwargs) {
  if (call_depth_ >= limits_.max_call_depth) {
    Fail(absl::StrCat("macro calls nested deeper than ", limits_.max_call_depth));
  }
  if (args.size() > macro.params.size()) {
    Fail(absl::StrCat("macro '", macro.name, "' takes not more than ", macro.params.size(),
                      " argument(s)"));
  }
  std::unordered_map<std::string, Value> frame;
  for (size_t i = 0; i < macro.params.size(); ++i) {
    const std::string& p = macro.params[i];
    if (i < args.size()) {
      frame[p] = args[i];
      continue;
    }
    bool found = false;
    for (auto& kv : kwargs) {
      if (kv.first == p) { frame[p] = kv.second; found = true; }
    }
    if (!found) frame[p] = macro.defaults[i] ? Eval(*macro.defaults[i]) : Value::Undefined(p);
  }
  std::vector<std::unordered_map<std::string, Value>> saved;
  saved.swap(scopes_);
  scopes_.push_back(saved.front());
  scopes_.push_back(std::move(frame));
  std::string buf;
  std::string* saved_out = out_;
  out_ = &buf;
  ++call_depth_;
  struct Restore {
    Evaluator* ev;
    std::vector<std::unordered_map<std::string, Value>>* saved;
    std::string* out;
    ~Restore() {
      --ev->call_depth_;
      (*saved)[0] = std::move(ev->scopes_.front());
      ev->scopes_.swap(*saved);
      ev->out_ = out;
    }
  } restore{this, &saved, saved_out};
  ExecList(macro.body);
  return Value::String(std::move(buf));
}

}  // namespace moe::server::chat_template
