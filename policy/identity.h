#pragma once

// Authentication: "Authorization: Bearer <key>" against the configured identities. Keys are
// never stored, only their SHA-256; the presented key is hashed and compared with every
// configured hash in constant time, so neither the match position nor a partial match
// leaks through timing.

#include <array>
#include <string_view>

#include "policy/access_config.h"

namespace mcpgate::policy {

// The identity a request acts as, or null (answer HTTP 401 with WWW-Authenticate: Bearer).
// `authorization` is the header's value, empty when absent; the scheme is matched
// case-insensitively. With no identities configured every caller is config.anonymous(),
// whatever the header says. The result lives as long as `config`.
const identity* authenticate(const access_config& config, std::string_view authorization);

// The key in "Bearer <key>" (scheme case-insensitive, spaces around the key ignored), or
// empty when the value is not of that form.
std::string_view bearer_token(std::string_view authorization);

std::array<unsigned char, 32> sha256(std::string_view data);

}  // namespace mcpgate::policy
