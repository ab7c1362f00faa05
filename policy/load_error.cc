#include "policy/load_error.h"

#include <cctype>

#include "policy/json_writer.h"

#include <vector>

namespace mcpgate::policy {

namespace {

bool plain_key(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

json_location json_location::key(std::string_view name) const {
  // Keys that are not plain identifiers are shown in bracket form so the path stays
  // unambiguous ("$.tools[\"a.b\"]").
  if (plain_key(name)) return json_location(file_, path_ + "." + std::string(name));
  return json_location(file_, path_ + "[" + quote_string(name) + "]");
}

json_location json_location::index(size_t i) const {
  return json_location(file_, path_ + "[" + std::to_string(i) + "]");
}

void json_location::fail(std::string_view what) const {
  throw load_error(file_ + ": " + path_ + ": " + std::string(what));
}

void json_location::fail_expected(std::string_view expected, simdjson::dom::element got) const {
  fail("expected " + std::string(expected) + ", got " + quote_value(got));
}

void check_keys(simdjson::dom::object object, const json_location& where,
                std::initializer_list<std::string_view> allowed) {
  std::vector<std::string_view> seen;
  for (simdjson::dom::key_value_pair field : object) {
    bool known = false;
    for (std::string_view name : allowed) known = known || name == field.key;
    if (!known) {
      std::string names;
      for (std::string_view name : allowed) {
        if (!names.empty()) names += ", ";
        names += name;
      }
      where.key(field.key).fail("unknown key " + quote_string(field.key) + " (known: " + names +
                                ")");
    }
    for (std::string_view earlier : seen) {
      if (earlier == field.key)
        where.key(field.key).fail("duplicate key " + quote_string(field.key));
    }
    seen.push_back(field.key);
  }
}

std::string quote_value(simdjson::dom::element value) {
  std::string text = simdjson::minify(value);
  constexpr size_t kLimit = 60;
  if (text.size() > kLimit) {
    text.resize(kLimit);
    text += "...";
  }
  return text;
}

std::string quote_string(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

namespace {

// A recursive-descent reading of JSON (RFC 8259) that only looks for the first error.
class syntax_scanner {
 public:
  explicit syntax_scanner(std::string_view s) : s_(s) {}

  std::string run() {
    space();
    if (!value(0)) return where();
    space();
    if (i_ < s_.size()) {
      what_ = "unexpected data after the JSON value";
      return where();
    }
    return {};
  }

 private:
  static constexpr int max_depth = 1024;

  bool fail(const char* what) {
    what_ = what;
    return false;
  }
  bool at_end() const { return i_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[i_]; }
  void space() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }

  bool value(int depth) {
    if (depth > max_depth) return fail("nested too deep");
    if (at_end()) return fail("expected a value, got the end of the file");
    char c = s_[i_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return string();
    if (c == '-' || digit(c)) return number();
    for (std::string_view literal : {"true", "false", "null"}) {
      if (s_.substr(i_, literal.size()) == literal) {
        i_ += literal.size();
        return true;
      }
    }
    if (c == '}' || c == ']') return fail("expected a value (a trailing comma?)");
    if (c == '\'') return fail("expected a value (strings take double quotes)");
    if (c == '/') return fail("expected a value (JSON has no comments)");
    return fail("expected a value");
  }

  bool object(int depth) {
    ++i_;
    space();
    if (peek() == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      space();
      if (peek() == '}') return fail("expected a key (a trailing comma?)");
      if (peek() != '"') return fail("expected a key in double quotes");
      if (!string()) return false;
      space();
      if (peek() != ':') return fail("expected ':' after the key");
      ++i_;
      space();
      if (!value(depth + 1)) return false;
      space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == '}') {
        ++i_;
        return true;
      }
      return fail(at_end() ? "expected ',' or '}', got the end of the file"
                           : "expected ',' or '}'");
    }
  }

  bool array(int depth) {
    ++i_;
    space();
    if (peek() == ']') {
      ++i_;
      return true;
    }
    for (;;) {
      space();
      if (!value(depth + 1)) return false;
      space();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() == ']') {
        ++i_;
        return true;
      }
      return fail(at_end() ? "expected ',' or ']', got the end of the file"
                           : "expected ',' or ']'");
    }
  }

  bool string() {
    ++i_;
    while (!at_end()) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return fail("a control character (a line break?) inside a string");
      if (c == '\\') {
        ++i_;
        char e = peek();
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k) {
            char h = i_ + k < s_.size() ? s_[i_ + k] : '\0';
            if (!std::isxdigit(static_cast<unsigned char>(h)))
              return fail("expected four hex digits after \\u");
          }
          i_ += 5;
          continue;
        }
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos || at_end())
          return fail("an invalid escape in a string");
      }
      ++i_;
    }
    return fail("a string without its closing quote");
  }

  bool number() {
    if (peek() == '-') ++i_;
    if (!digit(peek())) return fail("expected a digit");
    if (peek() == '0') {
      ++i_;
      if (digit(peek())) return fail("a number with a leading zero");
    } else {
      while (digit(peek())) ++i_;
    }
    if (peek() == '.') {
      ++i_;
      if (!digit(peek())) return fail("expected a digit after the decimal point");
      while (digit(peek())) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!digit(peek())) return fail("expected a digit in the exponent");
      while (digit(peek())) ++i_;
    }
    return true;
  }

  std::string where() const {
    size_t line = 1, column = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
      if (s_[k] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + what_;
  }

  std::string_view s_;
  size_t i_ = 0;
  std::string what_;
};

}  // namespace

std::string json_syntax_error(std::string_view text) {
  return syntax_scanner(text).run();
}

std::string describe_invalid_json(std::string_view text, simdjson::error_code error) {
  std::string where = json_syntax_error(text);
  return "invalid JSON: " + (where.empty() ? std::string(simdjson::error_message(error)) : where);
}

}  // namespace mcpgate::policy
