// json.cpp: recursive-descent JSON parser (see json.h). Depth-limited, so hostile input cannot
// overflow the stack.
#include "model/io/json.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "tnl/error.h"

namespace tnl::json {

const char* kind_name(Value::Kind k) {
  switch (k) {
    case Value::Kind::null: return "null";
    case Value::Kind::boolean: return "boolean";
    case Value::Kind::number: return "number";
    case Value::Kind::string: return "string";
    case Value::Kind::array: return "array";
    case Value::Kind::object: return "object";
  }
  return "?";
}

namespace {

[[noreturn]] void kind_error(const std::string& what, const char* expected, Value::Kind got) {
  throw Error(detail::cat(what, ": expected a ", expected, ", got a ", kind_name(got)));
}

class Parser {
 public:
  Parser(const std::string& text, const std::string& source) : s_(text), source_(source) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("expected the end of the document");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 128;
  const std::string& s_;
  const std::string& source_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(detail::cat(source_, ": invalid JSON at byte ", pos_, ": ", what));
  }
  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool consume(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!consume(c)) fail(detail::cat("expected '", c, "'"));
  }
  bool literal(const char* word) {
    size_t n = 0;
    while (word[n]) ++n;
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 128 levels");
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end of input, expected a value");
    const char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value::make_string(string());
    if (literal("true")) return Value::make_bool(true);
    if (literal("false")) return Value::make_bool(false);
    if (literal("null")) return Value::make_null();
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(detail::cat("unexpected character '", c, "'"));
  }

  Value object(int depth) {
    expect('{');
    std::map<std::string, Value> out;
    if (consume('}')) return Value::make_object(std::move(out));
    do {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
      std::string key = string();
      expect(':');
      if (out.count(key)) fail(detail::cat("duplicate key \"", key, "\""));
      out.emplace(std::move(key), value(depth + 1));
    } while (consume(','));
    expect('}');
    return Value::make_object(std::move(out));
  }

  Value array(int depth) {
    expect('[');
    std::vector<Value> out;
    if (consume(']')) return Value::make_array(std::move(out));
    do {
      out.push_back(value(depth + 1));
    } while (consume(','));
    expect(']');
    return Value::make_array(std::move(out));
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
      else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += (char)cp;
    } else if (cp < 0x800) {
      out += (char)(0xc0 | (cp >> 6));
      out += (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += (char)(0xe0 | (cp >> 12));
      out += (char)(0x80 | ((cp >> 6) & 0x3f));
      out += (char)(0x80 | (cp & 0x3f));
    } else {
      out += (char)(0xf0 | (cp >> 18));
      out += (char)(0x80 | ((cp >> 12) & 0x3f));
      out += (char)(0x80 | ((cp >> 6) & 0x3f));
      out += (char)(0x80 | (cp & 0x3f));
    }
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return out;
      if ((unsigned char)c < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xd800 && cp < 0xdc00) {  // surrogate pair
            if (!(literal("\\u"))) fail("lone high surrogate");
            const unsigned lo = hex4();
            if (lo < 0xdc00 || lo >= 0xe000) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp < 0xe000) {
            fail("lone low surrogate");
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(detail::cat("bad escape '\\", e, "'"));
      }
    }
  }

  Value number() {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t d0 = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - d0;
    };
    if (pos_ < s_.size() && s_[pos_] == '0') ++pos_;
    else if (digits() == 0) fail("expected digits");
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) fail("expected digits after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("expected exponent digits");
    }
    const std::string text = s_.substr(start, pos_ - start);
    const double d = std::strtod(text.c_str(), nullptr);
    int64_t i = 0;
    if (integral) {
      errno = 0;
      const long long ll = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) integral = false;
      i = ll;
    }
    return Value::make_number(d, integral, i);
  }
};

}  // namespace

Value Value::make_bool(bool b) {
  Value v;
  v.kind_ = Kind::boolean;
  v.bool_ = b;
  return v;
}
Value Value::make_number(double d, bool integral, int64_t i) {
  Value v;
  v.kind_ = Kind::number;
  v.number_ = d;
  v.integral_ = integral;
  v.int_ = i;
  return v;
}
Value Value::make_string(std::string s) {
  Value v;
  v.kind_ = Kind::string;
  v.string_ = std::move(s);
  return v;
}
Value Value::make_array(std::vector<Value> a) {
  Value v;
  v.kind_ = Kind::array;
  v.array_ = std::make_shared<std::vector<Value>>(std::move(a));
  return v;
}
Value Value::make_object(std::map<std::string, Value> o) {
  Value v;
  v.kind_ = Kind::object;
  v.object_ = std::make_shared<std::map<std::string, Value>>(std::move(o));
  return v;
}

bool Value::as_bool(const std::string& what) const {
  if (kind_ != Kind::boolean) kind_error(what, "boolean", kind_);
  return bool_;
}
double Value::as_number(const std::string& what) const {
  if (kind_ != Kind::number) kind_error(what, "number", kind_);
  return number_;
}
int64_t Value::as_int(const std::string& what) const {
  if (kind_ != Kind::number) kind_error(what, "integer", kind_);
  if (!integral_) {
    if (std::floor(number_) == number_ && std::fabs(number_) < 9.0e15) return (int64_t)number_;
    throw Error(detail::cat(what, ": expected an integer, got ", number_));
  }
  return int_;
}
const std::string& Value::as_string(const std::string& what) const {
  if (kind_ != Kind::string) kind_error(what, "string", kind_);
  return string_;
}
const std::vector<Value>& Value::as_array(const std::string& what) const {
  if (kind_ != Kind::array) kind_error(what, "array", kind_);
  return *array_;
}
const std::map<std::string, Value>& Value::as_object(const std::string& what) const {
  if (kind_ != Kind::object) kind_error(what, "object", kind_);
  return *object_;
}
const Value* Value::find(const std::string& key) const {
  if (kind_ != Kind::object) return nullptr;
  auto it = object_->find(key);
  return it == object_->end() ? nullptr : &it->second;
}

Value parse(const std::string& text, const std::string& source) {
  return Parser(text, source).document();
}

}  // namespace tnl::json
