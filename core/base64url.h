#pragma once

// base64url without padding (RFC 4648 section 5), as session tokens and JSON Web Tokens use it.

#include <cstddef>
#include <string>
#include <string_view>

namespace mcpgate::core {

void append_base64url(std::string& out, const unsigned char* data, size_t n);

// Sets `out` to the bytes `text` encodes; false on a character outside the alphabet, a
// length no encoding has, or non-zero leftover bits (two texts never decode alike).
bool decode_base64url(std::string_view text, std::string& out);

}  // namespace mcpgate::core
