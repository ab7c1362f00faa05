#include "policy/load_error.h"

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
    if (!known) where.key(field.key).fail("unknown key " + quote_string(field.key));
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

}  // namespace mcpgate::policy
