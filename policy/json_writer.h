#pragma once

// Appending JSON text to a reused std::string: the denial replies and error messages are
// built this way so the data plane does not allocate once the string has grown.

#include <cstdint>
#include <string>
#include <string_view>

namespace mcpgate::policy {

// Appends `text` as a JSON string literal with quotes. Control characters, '"' and '\\' are
// escaped; bytes >= 0x80 are copied as they are (the input is expected to be UTF-8, and
// invalid UTF-8 is replaced by U+FFFD so the output is always valid JSON text).
void append_json_string(std::string& out, std::string_view text);

// The same without the quotes: control bytes as \u00XX, '"' and '\\' escaped, each invalid
// UTF-8 byte as \ufffd, valid UTF-8 copied. Unescaped runs are appended whole.
void append_json_string_contents(std::string& out, std::string_view text);

void append_json_int(std::string& out, int64_t value);

}  // namespace mcpgate::policy
