// Tree-walking interpreter for parsed chat templates, with the semantics of
// Jinja2 in transformers' sandboxed environment: Python values, Jinja's
// default Undefined, per-iteration loop scopes, namespaces, macros.
//
// Runaway templates are stopped by RenderLimits (work steps, size of any
// string or list built, call depth) with an error, never a hang or a crash.
//
// An Evaluator renders one template once; it is not thread-safe, but any
// number of Evaluators may share one (immutable) syntax tree.
#ifndef MOE_SERVER_CHAT_TEMPLATE_EVALUATOR_H_
#define MOE_SERVER_CHAT_TEMPLATE_EVALUATOR_H_

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "server/chat_template/ast.h"
#include "server/chat_template/value.h"

namespace moe::server::chat_template {

struct RenderLimits {
  int64_t max_steps = 2'000'000;           // expression/statement evaluations
  size_t max_output_bytes = 32u << 20;     // output, and any single string/list
  int max_call_depth = 64;                 // nested macro calls
};

// Thrown only inside the interpreter; Evaluator::Render converts it to a
// Status. `raised` marks errors from the template's raise_exception().
struct RenderError {
  std::string message;
  bool raised = false;
};

class Evaluator {
 public:
  explicit Evaluator(const RenderLimits& limits) : limits_(limits) {}

  // Renders `body` with `globals` as the template context.
  absl::StatusOr<std::string> Render(const StmtList& body, ValueDict globals);

  // Services for the builtins (filters, tests, methods).
  [[noreturn]] void Fail(const std::string& message) const;
  void CheckSize(size_t n) const;
  void Step();
  Value CallValue(const Value& callee, ValueList args, ValueDict kwargs);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Flow ExecList(const StmtList& list);
  Flow Exec(const Stmt& s);
  void ExecFor(const Stmt& s);
  void ExecSet(const Stmt& s);
  void Emit(const std::string& text);

  Value Eval(const Expr& e);
  Value EvalBinary(const Expr& e);
  Value EvalCompare(const Expr& e);
  Value GetAttr(const Value& obj, const std::string& name);
  Value GetItem(const Value& obj, const Value& key);
  Value Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
  Value Lookup(const std::string& name) const;
  Value CallMacro(const MacroNode& macro, ValueList args, ValueDict kwargs);
  void EvalArgs(const Expr& e, size_t first, ValueList* args, ValueDict* kwargs);

  RenderLimits limits_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int line_ = 0;  // line of the statement being executed, for messages
  std::string* out_ = nullptr;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
};

// Builtins (filters.cc, methods.cc).
Value ApplyFilter(Evaluator& ev, const std::string& name, const Value& v,
                  ValueList args, ValueDict kwargs);
bool ApplyTest(Evaluator& ev, const std::string& name, const Value& v,
               const ValueList& args);
bool IsMethodName(const Value& self, const std::string& name);
Value CallMethod(Evaluator& ev, const Value& self, const std::string& name,
                 ValueList args, ValueDict kwargs);
bool IsGlobalFunction(const std::string& name);
Value CallGlobal(Evaluator& ev, const std::string& name, ValueList args,
                 ValueDict kwargs);
// Python json.dumps(v, ensure_ascii=False, indent=indent) (indent < 0: None).
std::string PyJsonDumps(Evaluator& ev, const Value& v, int indent);
// Python bool(a < b) for numbers/strings/lists; error otherwise.
bool PyLess(Evaluator& ev, const Value& a, const Value& b);

}  // namespace moe::server::chat_template

#endif  // MOE_SERVER_CHAT_TEMPLATE_EVALUATOR_H_
