// Syntax tree of a parsed chat template. Built once by ParseTemplate(),
// immutable afterwards, so one tree may be rendered from many threads.
#ifndef MOE_SERVER_CHAT_TEMPLATE_AST_H_
#define MOE_SERVER_CHAT_TEMPLATE_AST_H_

#include <memory>
#include <string>
#include <vector>

#include "server/chat_template/value.h"

namespace moe::server::chat_template {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // literal
    kName,      // name
    kGetAttr,   // args[0].name
    kGetItem,   // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,      // args[0](args[1..], kwargs)
    kFilter,    // args[0] | name(args[1..], kwargs)
    kTest,      // args[0] is [not] name(args[1..])
    kUnary,     // op args[0]; op is "-", "+" or "not"
    kBinary,    // args[0] op args[1]; op in + - * / // % ** ~ and or
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...
    kCond,      // args[1] if args[0] else args[2] (args[2] may be null)
    kList,
    kTuple,
    kDict,      // args = k0, v0, k1, v1, ...
  };
  Kind kind = Kind::kLiteral;
  int line = 0;
  int column = 0;
  Value literal;
  std::string name;  // kName, kGetAttr, kFilter, kTest; operator for kUnary/kBinary
  bool negated = false;  // kTest
  std::vector<ExprPtr> args;
  std::vector<std::string> ops;  // kCompare
  std::vector<std::string> kwarg_names;
  std::vector<ExprPtr> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using StmtList = std::vector<StmtPtr>;

struct MacroNode {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // parallel to params; null = required
  StmtList body;
};

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // conds[i] -> bodies[i]; bodies.back() is else when bodies.size() > conds.size()
    kFor,       // for targets in expr [if cond] : bodies[0], else bodies[1]
    kSet,       // set targets = expr, or set targets[0].attr = expr
    kSetBlock,  // set targets[0] %} bodies[0] {% endset
    kMacro,     // macro
    kBreak,
    kContinue,
    kBody,      // a transparent block ({% generation %}): bodies[0]
  };
  Kind kind = Kind::kText;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr cond;                 // kFor filter
  std::vector<ExprPtr> conds;   // kIf
  std::vector<StmtList> bodies;
  std::vector<std::string> targets;
  std::string attr;             // kSet on a namespace attribute
  std::unique_ptr<MacroNode> macro;
};

}  // namespace moe::server::chat_template

#endif  // MOE_SERVER_CHAT_TEMPLATE_AST_H_
