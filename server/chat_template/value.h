// Runtime values of the chat-template interpreter: the small subset of Python
// objects that Hugging Face chat templates touch (None, bool, int, float, str,
// list/tuple, insertion-ordered dict, Jinja namespace, callables) plus Jinja's
// Undefined. Lists and dicts are shared immutable data (templates run in an
// immutable sandbox); a namespace is the one mutable object.
//
// Thread safety: a Value may be read from several threads only if none mutates
// a namespace reachable from it. Values are created per Render() call.
#ifndef MOE_SERVER_CHAT_TEMPLATE_VALUE_H_
#define MOE_SERVER_CHAT_TEMPLATE_VALUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::server::chat_template {

class Value;
struct MacroNode;
using ValueList = std::vector<Value>;
using ValueDict = std::vector<std::pair<std::string, Value>>;

// Something a template can call: a global function, a bound method of a
// string/dict/list, or a macro.
struct Callable {
  enum class Type { kBuiltin, kMethod, kMacro };
  Type type = Type::kBuiltin;
  std::string name;
  std::shared_ptr<Value> self;        // kMethod: the receiver.
  const MacroNode* macro = nullptr;   // kMacro: owned by the parsed template.
};

class Value {
 public:
  enum class Kind {
    kUndefined, kNone, kBool, kInt, kDouble, kString, kList, kDict,
    kNamespace, kCallable
  };

  Value() = default;  // Undefined.
  static Value Undefined(std::string name = "");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Double(double d);
  static Value String(std::string s);
  static Value List(ValueList items, bool is_tuple = false);
  static Value Dict(ValueDict items);
  static Value Namespace(ValueDict items);
  static Value Function(Callable c);

  static Value FromJson(const nlohmann::json& j);
  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const {
    return kind_ == Kind::kInt || kind_ == Kind::kDouble || kind_ == Kind::kBool;
  }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_tuple() const { return kind_ == Kind::kList && is_tuple_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }   // kInt (kBool reads 0/1 via ToInt).
  double as_double() const { return d_; }
  const std::string& str() const { return s_; }  // kString; kUndefined: name.
  const ValueList& list() const { return *list_; }
  const ValueDict& dict() const { return *dict_; }   // kDict and kNamespace.
  ValueDict& mutable_namespace() { return *dict_; }  // kNamespace only.
  const Callable& callable() const { return *fn_; }

  // Looks up a dict/namespace key; nullptr if absent.
  const Value* Find(const std::string& key) const;

  // Python truthiness (Undefined is false).
  bool Truthy() const;
  // Numeric view of bool/int/double.
  double ToDouble() const;
  // Python type name for messages ("str", "dict", ...).
  std::string TypeName() const;
  // str(value) as Jinja prints it ({{ x }}); Undefined prints "".
  std::string ToStr() const;
  // repr(value) as Python writes it inside containers.
  std::string Repr() const;
  // Python ==.
  bool Equals(const Value& other) const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool is_tuple_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<Callable> fn_;
};

// Python's repr() of a float ("1.0", "0.1", "1e+20", "inf", "nan").
std::string PyFloatRepr(double d);

}  // namespace moe::server::chat_template

#endif  // MOE_SERVER_CHAT_TEMPLATE_VALUE_H_
