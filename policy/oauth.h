#pragma once

// The gateway as an OAuth 2.1 resource server (the MCP authorization specification): which
// access tokens it takes, from which authorization server, and how a token's claims name an
// identity and its grant. API keys keep working beside tokens.

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/jwt.h"

namespace mcpgate::policy {

struct oauth_settings {
  std::shared_ptr<const jwks> keys;
  std::string jwks_source;  // the file or URL, for messages
  token_rules rules;        // issuer, audiences (empty: the resource), skew, claims
  // The resource's canonical URL (RFC 9728 "resource"); empty: http://<Host><path> of the
  // request, the host checked by the listener's Host rules.
  std::string resource;
  std::vector<std::string> scopes_supported;
  std::vector<std::string> required_scopes;  // a token lacking one gets 403 insufficient_scope
  // identities_from_claims.grant_from: a value of the group claim, and the grant it gives; the
  // first listed value the token holds decides.
  std::vector<std::pair<std::string, std::string>> group_grants;
  std::string default_grant;       // for a token holding none of them; empty: refused (403)
  size_t max_identities = 10'000;  // token identities held at once (each with its counters)
};

}  // namespace mcpgate::policy
