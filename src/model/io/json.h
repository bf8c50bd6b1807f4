// json.h: a small, strict JSON reader (RFC 8259) for config.json, safetensors headers and
// sharded-checkpoint indexes. Errors are tnl::Error with the byte offset and what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tnl::json {

class Value {
 public:
  enum class Kind { null, boolean, number, string, array, object };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_number() const { return kind_ == Kind::number; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }
  bool is_bool() const { return kind_ == Kind::boolean; }

  // Typed access; throws tnl::Error naming `what` when the kind differs.
  bool as_bool(const std::string& what) const;
  double as_number(const std::string& what) const;
  int64_t as_int(const std::string& what) const;  // a number with no fractional part
  const std::string& as_string(const std::string& what) const;
  const std::vector<Value>& as_array(const std::string& what) const;
  const std::map<std::string, Value>& as_object(const std::string& what) const;

  // Object lookup: null when absent (or when this is not an object).
  const Value* find(const std::string& key) const;

  static Value make_null() { return Value(); }
  static Value make_bool(bool b);
  static Value make_number(double d, bool integral, int64_t i);
  static Value make_string(std::string s);
  static Value make_array(std::vector<Value> a);
  static Value make_object(std::map<std::string, Value> o);

 private:
  Kind kind_ = Kind::null;
  bool bool_ = false;
  bool integral_ = false;
  int64_t int_ = 0;
  double number_ = 0;
  std::string string_;
  std::shared_ptr<std::vector<Value>> array_;
  std::shared_ptr<std::map<std::string, Value>> object_;
};

const char* kind_name(Value::Kind k);

// Parses a whole document; `source` names it in error messages (a file path, say).
Value parse(const std::string& text, const std::string& source);

}  // namespace tnl::json
