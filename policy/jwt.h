#pragma once

// OAuth 2.1 access tokens as a resource server checks them: a JSON Web Token (compact JWS)
// signed with a key of the authorization server's key set (JWKS), RS256, ES256 or EdDSA
// (Ed25519), with the issuer, audience, expiry and not-before the configuration asks for.
// Verification is libcrypto's; nothing here reads a socket or a clock of its own.

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::policy {

// The verification keys of a JWKS document. Immutable once parsed; shared by every shard
// (verifying with an EVP_PKEY is safe from many threads at once).
class jwks {
 public:
  struct key {
    std::string kid;
    std::string alg;  // "RS256", "ES256" or "EdDSA"
    EVP_PKEY* pkey = nullptr;
  };

  // Keys of other types, curves or uses ("use": "enc") are skipped; a malformed key of a kind
  // it reads is an error. Throws load_error naming `source`, the key's index and what is
  // wrong.
  static std::shared_ptr<const jwks> parse(std::string_view text, std::string_view source);

  ~jwks();
  jwks(const jwks&) = delete;
  jwks& operator=(const jwks&) = delete;

  // The key a token's header names: by kid, or the only key of the algorithm when the token
  // names no kid and the set has one such key.
  const key* find(std::string_view kid, std::string_view alg) const;
  size_t size() const { return keys_.size(); }

 private:
  jwks() = default;
  std::vector<key> keys_;
};

struct token_rules {
  std::string issuer;                  // "iss" must equal it
  std::vector<std::string> audiences;  // "aud" (a string or an array) must hold one of them
  int64_t clock_skew_s = 60;           // leeway for exp and nbf
  std::string name_claim = "sub";      // the identity's name
  std::string group_claim;             // the claim grants are mapped from; empty: none
};

enum class token_error : uint8_t {
  none,
  malformed,      // not three base64url parts of JSON, or a claim of the wrong type
  algorithm,      // "alg" other than RS256, ES256, EdDSA (never "none")
  unknown_kid,    // no key of the set matches
  signature,      // the signature does not verify
  issuer,         // "iss" is not the configured issuer
  audience,       // "aud" names no configured audience
  expired,        // "exp" passed (beyond the skew), or missing
  not_yet_valid,  // "nbf" or "iat" ahead (beyond the skew)
  no_name,        // the name claim is missing or empty
};

// The audit rule ("token.expired") and the text of the 401 ("the token has expired").
std::string_view token_error_rule(token_error e);
std::string_view token_error_text(token_error e);

struct token_claims {
  std::string name;    // the name claim's value
  std::string issuer;  // "iss"
  int64_t expires_s = 0;
  std::vector<std::string> scopes;  // "scope", split on spaces
  std::vector<std::string> groups;  // the group claim: an array of strings, or one string
};

// Whether `token` has the shape of a JWT (three base64url parts), so that a bearer value that
// is not one is taken for an API key.
bool looks_like_jwt(std::string_view token);

// Verifies `token` at now_s (seconds since the epoch). On none, `out` holds its claims.
token_error verify_token(std::string_view token, const jwks& keys, const token_rules& rules,
                         int64_t now_s, token_claims& out);

}  // namespace mcpgate::policy
