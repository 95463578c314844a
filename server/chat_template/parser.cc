#include "server/chat_template/parser.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/chat_template/lexer.h"

namespace moe::server::chat_template {
namespace {

// Thrown inside the parser only; ParseTemplate converts it to a Status.
struct ParseError {
  std::string message;
};

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  StmtList ParseAll() {
    std::string end_tag;
    StmtList body = ParseBody({}, &end_tag);
    if (Cur().type != TokenType::kEof) Fail(Cur(), "unexpected tag");
    return body;
  }

 private:
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t k = 1) const {
    return toks_[std::min(pos_ + k, toks_.size() - 1)];
  }
  const Token& Next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  [[noreturn]] void Fail(const Token& t, absl::string_view what) const {
    throw ParseError{absl::StrCat("template syntax error at line ", t.line, ", column ",
                                  t.column, ": ", what)};
  }
  bool IsOp(absl::string_view op) const {
    return Cur().type == TokenType::kOp && Cur().text == op;
  }
  bool IsName(absl::string_view name) const {
    return Cur().type == TokenType::kName && Cur().text == name;
  }
  void ExpectOp(absl::string_view op) {
    if (!IsOp(op)) Fail(Cur(), absl::StrCat("expected '", op, "'", Describe()));
    Next();
  }
  std::string ExpectName() {
    if (Cur().type != TokenType::kName) Fail(Cur(), absl::StrCat("expected a name", Describe()));
    return Next().text;
  }
  void ExpectBlockEnd() {
    if (Cur().type != TokenType::kBlockEnd) {
      Fail(Cur(), absl::StrCat("expected end of statement '%}'", Describe()));
    }
    Next();
  }
  std::string Describe() const {
    switch (Cur().type) {
      case TokenType::kEof: return ", got end of template";
      case TokenType::kBlockEnd: return ", got '%}'";
      case TokenType::kVarEnd: return ", got '}}'";
      case TokenType::kData: return ", got text";
      default: return absl::StrCat(", got '", Cur().text, "'");
    }
  }

  struct DepthGuard {
    explicit DepthGuard(Parser* p) : p(p) {
      if (++p->depth_ > kMaxParseDepth) p->Fail(p->Cur(), "template nested too deeply");
    }
    ~DepthGuard() { --p->depth_; }
    Parser* p;
  };

  // Parses statements until a block whose tag name is in `ends`; leaves the
  // parser just after that tag name and stores it in *end_tag.
  StmtList ParseBody(const std::set<std::string>& ends, std::string* end_tag) {
    DepthGuard guard(this);
    StmtList out;
    while (true) {
      const Token& t = Cur();
      if (t.type == TokenType::kEof) {
        if (!ends.empty()) {
          std::string expected;
          for (const std::string& e : ends) {
            absl::StrAppend(&expected, expected.empty() ? "" : " or ", "'", e, "'");
          }
          Fail(t, absl::StrCat("unexpected end of template, expected ", expected));
        }
        return out;
      }
      if (t.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->text = t.text;
        out.push_back(std::move(s));
        Next();
      } else if (t.type == TokenType::kVarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = t.line;
        s->column = t.column;
        Next();
        s->expr = ParseTupleOrExpr();
        if (Cur().type != TokenType::kVarEnd) Fail(Cur(), absl::StrCat("expected '}}'", Describe()));
        Next();
        out.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        const Token& name_tok = Peek();
        if (name_tok.type == TokenType::kName && ends.count(name_tok.text)) {
          Next();
          *end_tag = Next().text;
          return out;
        }
        Next();
        out.push_back(ParseStatement());
      } else {
        Fail(t, "unexpected token");
      }
    }
  }

  StmtPtr ParseStatement() {
    const Token& t = Cur();
    if (t.type != TokenType::kName) Fail(t, "expected a statement name");
    std::string tag = t.text;
    auto s = std::make_unique<Stmt>();
    s->line = t.line;
    s->column = t.column;
    Next();
    std::string end;
    if (tag == "if") {
      s->kind = Stmt::Kind::kIf;
      s->conds.push_back(ParseTupleOrExpr());
      ExpectBlockEnd();
      while (true) {
        s->bodies.push_back(ParseBody({"elif", "else", "endif"}, &end));
        if (end == "elif") {
          s->conds.push_back(ParseTupleOrExpr());
          ExpectBlockEnd();
        } else if (end == "else") {
          ExpectBlockEnd();
          s->bodies.push_back(ParseBody({"endif"}, &end));
          ExpectBlockEnd();
          break;
        } else {
          ExpectBlockEnd();
          break;
        }
      }
    } else if (tag == "for") {
      s->kind = Stmt::Kind::kFor;
      s->targets.push_back(ExpectName());
      while (IsOp(",")) {
        Next();
        s->targets.push_back(ExpectName());
      }
      if (!IsName("in")) Fail(Cur(), absl::StrCat("expected 'in'", Describe()));
      Next();
      s->expr = ParseTupleOrExpr(/*with_condexpr=*/false);
      if (IsName("if")) {
        Next();
        s->cond = ParseExpression();
      }
      if (IsName("recursive")) Fail(Cur(), "recursive loops are not supported");
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"else", "endfor"}, &end));
      ExpectBlockEnd();
      if (end == "else") {
        s->bodies.push_back(ParseBody({"endfor"}, &end));
        ExpectBlockEnd();
      }
    } else if (tag == "set") {
      s->targets.push_back(ExpectName());
      if (IsOp(".")) {
        Next();
        s->attr = ExpectName();
      } else {
        while (IsOp(",")) {
          Next();
          s->targets.push_back(ExpectName());
        }
      }
      if (Cur().type == TokenType::kBlockEnd && s->attr.empty() && s->targets.size() == 1) {
        s->kind = Stmt::Kind::kSetBlock;
        Next();
        s->bodies.push_back(ParseBody({"endset"}, &end));
        ExpectBlockEnd();
      } else {
        s->kind = Stmt::Kind::kSet;
        ExpectOp("=");
        s->expr = ParseTupleOrExpr();
        ExpectBlockEnd();
      }
    } else if (tag == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->macro = std::make_unique<MacroNode>();
      s->macro->name = ExpectName();
      ExpectOp("(");
      while (!IsOp(")")) {
        if (!s->macro->params.empty()) ExpectOp(",");
        s->macro->params.push_back(ExpectName());
        if (IsOp("=")) {
          Next();
          s->macro->defaults.push_back(ParseExpression());
        } else {
          s->macro->defaults.push_back(nullptr);
        }
      }
      Next();
      ExpectBlockEnd();
      s->macro->body = ParseBody({"endmacro"}, &end);
      if (Cur().type == TokenType::kName) Next();  // {% endmacro name %}
      ExpectBlockEnd();
    } else if (tag == "break" || tag == "continue") {
      s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      ExpectBlockEnd();
    } else if (tag == "generation") {
      s->kind = Stmt::Kind::kBody;
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"endgeneration"}, &end));
      ExpectBlockEnd();
    } else {
      Fail(t, absl::StrCat("unknown tag '", tag, "'"));
    }
    return s;
  }

  ExprPtr MakeExpr(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  // An expression, or a bare tuple "a, b" (Jinja allows both at tag level).
  ExprPtr ParseTupleOrExpr(bool with_condexpr = true) {
    const Token& start = Cur();
    ExprPtr first = with_condexpr ? ParseExpression() : ParseOr();
    if (!IsOp(",")) return first;
    auto tuple = MakeExpr(Expr::Kind::kTuple, start);
    tuple->args.push_back(std::move(first));
    while (IsOp(",")) {
      Next();
      if (Cur().type == TokenType::kBlockEnd || Cur().type == TokenType::kVarEnd) break;
      tuple->args.push_back(with_condexpr ? ParseExpression() : ParseOr());
    }
    return tuple;
  }

  ExprPtr ParseExpression() {
    DepthGuard guard(this);
    const Token& start = Cur();
    ExprPtr expr = ParseOr();
    while (IsName("if")) {
      Next();
      auto cond = MakeExpr(Expr::Kind::kCond, start);
      cond->args.push_back(ParseOr());
      cond->args.push_back(std::move(expr));
      if (IsName("else")) {
        Next();
        cond->args.push_back(ParseExpression());
      } else {
        cond->args.push_back(nullptr);
      }
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr Binary(const Token& at, std::string op, ExprPtr l, ExprPtr r) {
    auto e = MakeExpr(Expr::Kind::kBinary, at);
    e->name = std::move(op);
    e->args.push_back(std::move(l));
    e->args.push_back(std::move(r));
    return e;
  }

  // Left-associative binary levels, loosest first; level 2 is "not" and the
  // comparisons, handled by ParseNot.
  ExprPtr ParseOr() { return ParseLevel(0); }
  ExprPtr ParseLevel(int level) {
    static const std::vector<std::vector<std::string>> kLevels = {
        {"or"}, {"and"}, {}, {"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
    auto operand = [&]() { return level == 1 ? ParseNot() : level == 6 ? ParseUnary(true)
                                                                       : ParseLevel(level + 1); };
    ExprPtr l = operand();
    while (true) {
      const Token& t = Cur();
      bool match = false;
      for (const std::string& op : kLevels[level]) {
        match = match || ((t.type == TokenType::kOp || t.type == TokenType::kName) && t.text == op);
      }
      if (!match) return l;
      Next();
      l = Binary(t, t.text, std::move(l), operand());
    }
  }
  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(this);
      const Token& at = Next();
      auto e = MakeExpr(Expr::Kind::kUnary, at);
      e->name = "not";
      e->args.push_back(ParseNot());
      return e;
    }
    return ParseCompare();
  }
  ExprPtr ParseCompare() {
    const Token& start = Cur();
    ExprPtr first = ParseLevel(3);
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == TokenType::kOp &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" ||
           Cur().text == ">" || Cur().text == "<=" || Cur().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && Peek().type == TokenType::kName && Peek().text == "in") {
        Next();
        Next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = MakeExpr(Expr::Kind::kCompare, start);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(ParseLevel(3));
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      const Token& at = Next();
      node = MakeExpr(Expr::Kind::kUnary, at);
      node->name = at.text;
      node->args.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr Literal(const Token& at, Value v) {
    auto e = MakeExpr(Expr::Kind::kLiteral, at);
    e->literal = std::move(v);
    return e;
  }

  ExprPtr ParsePrimary() {
    const Token& t = Cur();
    switch (t.type) {
      case TokenType::kName: {
        Next();
        if (t.text == "true" || t.text == "True") return Literal(t, Value::Bool(true));
        if (t.text == "false" || t.text == "False") return Literal(t, Value::Bool(false));
        if (t.text == "none" || t.text == "None") return Literal(t, Value::None());
        auto e = MakeExpr(Expr::Kind::kName, t);
        e->name = t.text;
        return e;
      }
      case TokenType::kString: {
        std::string s = Next().text;
        while (Cur().type == TokenType::kString) s += Next().text;
        return Literal(t, Value::String(std::move(s)));
      }
      case TokenType::kInt:
        Next();
        return Literal(t, Value::Int(t.int_value));
      case TokenType::kFloat:
        Next();
        return Literal(t, Value::Double(t.float_value));
      case TokenType::kOp:
        if (t.text == "(") {
          Next();
          if (IsOp(")")) {
            Next();
            return MakeExpr(Expr::Kind::kTuple, t);
          }
          ExprPtr inner = ParseExpression();
          if (IsOp(",")) {
            auto tuple = MakeExpr(Expr::Kind::kTuple, t);
            tuple->args.push_back(std::move(inner));
            while (IsOp(",")) {
              Next();
              if (IsOp(")")) break;
              tuple->args.push_back(ParseExpression());
            }
            inner = std::move(tuple);
          }
          ExpectOp(")");
          return inner;
        }
        if (t.text == "[") {
          Next();
          auto list = MakeExpr(Expr::Kind::kList, t);
          while (!IsOp("]")) {
            if (!list->args.empty()) {
              ExpectOp(",");
              if (IsOp("]")) break;
            }
            list->args.push_back(ParseExpression());
          }
          Next();
          return list;
        }
        if (t.text == "{") {
          Next();
          auto dict = MakeExpr(Expr::Kind::kDict, t);
          while (!IsOp("}")) {
            if (!dict->args.empty()) {
              ExpectOp(",");
              if (IsOp("}")) break;
            }
            dict->args.push_back(ParseExpression());
            ExpectOp(":");
            dict->args.push_back(ParseExpression());
          }
          Next();
          return dict;
        }
        break;
      default:
        break;
    }
    Fail(t, absl::StrCat("unexpected ", t.type == TokenType::kEof ? "end of template"
                                        : t.type == TokenType::kBlockEnd ? "'%}'"
                                        : t.type == TokenType::kVarEnd ? "'}}'"
                                        : absl::StrCat("'", t.text, "'")));
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      const Token& t = Cur();
      if (IsOp(".")) {
        Next();
        auto e = MakeExpr(Expr::Kind::kGetAttr, t);
        if (Cur().type == TokenType::kInt) {
          e->kind = Expr::Kind::kGetItem;
          e->args.push_back(std::move(node));
          e->args.push_back(Literal(Cur(), Value::Int(Cur().int_value)));
          Next();
        } else {
          e->name = ExpectName();
          e->args.push_back(std::move(node));
        }
        node = std::move(e);
      } else if (IsOp("[")) {
        Next();
        node = ParseSubscript(t, std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(const Token& at, ExprPtr obj) {
    ExprPtr parts[3];
    bool is_slice = false;
    if (!IsOp(":")) parts[0] = ParseExpression();
    if (IsOp(":")) {
      is_slice = true;
      Next();
      if (!IsOp("]") && !IsOp(":")) parts[1] = ParseExpression();
      if (IsOp(":")) {
        Next();
        if (!IsOp("]")) parts[2] = ParseExpression();
      }
    }
    ExpectOp("]");
    auto e = MakeExpr(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, at);
    e->args.push_back(std::move(obj));
    if (is_slice) {
      for (auto& p : parts) e->args.push_back(std::move(p));
    } else {
      e->args.push_back(std::move(parts[0]));
    }
    return e;
  }

  // Parses "(args, kw=val)" into e->args (after any existing) and e->kwargs.
  void ParseArgs(Expr* e) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) {
        ExpectOp(",");
        if (IsOp(")")) break;
      }
      first = false;
      if (Cur().type == TokenType::kName && Peek().type == TokenType::kOp && Peek().text == "=") {
        e->kwarg_names.push_back(Next().text);
        Next();
        e->kwargs.push_back(ParseExpression());
      } else {
        if (!e->kwargs.empty()) Fail(Cur(), "positional argument after keyword argument");
        e->args.push_back(ParseExpression());
      }
    }
    Next();
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto e = MakeExpr(Expr::Kind::kCall, Cur());
    e->args.push_back(std::move(callee));
    ParseArgs(e.get());
    return e;
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        Next();
        const Token& nt = Cur();
        auto e = MakeExpr(Expr::Kind::kFilter, nt);
        e->name = ExpectName();
        while (IsOp(".")) {
          Next();
          e->name += "." + ExpectName();
        }
        e->args.push_back(std::move(node));
        if (IsOp("(")) ParseArgs(e.get());
        node = std::move(e);
      } else if (IsName("is")) {
        Next();
        auto e = MakeExpr(Expr::Kind::kTest, Cur());
        if (IsName("not")) {
          Next();
          e->negated = true;
        }
        e->name = ExpectName();
        e->args.push_back(std::move(node));
        if (IsOp("(")) {
          ParseArgs(e.get());
        } else if ((Cur().type == TokenType::kName && Cur().text != "else" &&
                    Cur().text != "or" && Cur().text != "and" && Cur().text != "if" &&
                    Cur().text != "is" && Cur().text != "not" && Cur().text != "in") ||
                   Cur().type == TokenType::kString || Cur().type == TokenType::kInt ||
                   Cur().type == TokenType::kFloat || IsOp("[") || IsOp("{")) {
          e->args.push_back(ParsePostfix(ParsePrimary()));
        }
        node = std::move(e);
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<StmtList> ParseTemplate(absl::string_view source) {
  auto tokens = Lex(source);
  if (!tokens.ok()) return tokens.status();
  try {
    Parser parser(std::move(*tokens));
    return parser.ParseAll();
  } catch (const ParseError& e) {
    return absl::InvalidArgumentError(e.message);
  }
}

}  // namespace moe::server::chat_template
