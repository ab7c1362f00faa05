#pragma once

// Errors of the control plane: loading a policy document or the access part of the config.
// Every message names the file, the JSON path and what was wrong, in the form
//   "grants/ops.json: $.tools.write_file.limits[0].max: expected a positive integer, got 0"
// so an operator can fix a typo without guessing; unknown keys are errors, never ignored.

#include <simdjson.h>

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mcpgate::policy {

class load_error : public std::runtime_error {
 public:
  explicit load_error(const std::string& message) : std::runtime_error(message) {}
};

// Where a value sits: the file and the JSON path ("$.tools.write_file"). Cheap to copy; the
// loaders extend it while descending.
class json_location {
 public:
  json_location(std::string_view file, std::string_view path) : file_(file), path_(path) {}

  json_location key(std::string_view name) const;
  json_location index(size_t i) const;

  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

  // Throws load_error "<file>: <path>: <what>".
  [[noreturn]] void fail(std::string_view what) const;
  // Throws load_error "<file>: <path>: expected <expected>, got <value as JSON, shortened>".
  [[noreturn]] void fail_expected(std::string_view expected, simdjson::dom::element got) const;

 private:
  std::string file_;
  std::string path_;
};

// Checks that `object` has only `allowed` keys and none twice (a duplicate would leave the
// meaning to whichever parser reads the file); throws naming the first offender.
void check_keys(simdjson::dom::object object, const json_location& where,
                std::initializer_list<std::string_view> allowed);

// Where `text` stops being JSON and why, "line 3, column 17: expected ',' or '}'", for the
// error of a file simdjson refused; empty when this scanner finds nothing wrong (invalid
// UTF-8, which only simdjson checks). Never throws; bounded depth.
std::string json_syntax_error(std::string_view text);
// "invalid JSON: line 3, column 17: expected ',' or '}'", or simdjson's message for `error`
// when the scanner finds nothing.
std::string describe_invalid_json(std::string_view text, simdjson::error_code error);

// The value as compact JSON, cut to about 60 bytes, for error messages.
std::string quote_value(simdjson::dom::element value);
// A string as a JSON string literal (escaped and quoted), for error messages and describe().
std::string quote_string(std::string_view text);

}  // namespace mcpgate::policy
