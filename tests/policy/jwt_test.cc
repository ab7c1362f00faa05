// Access tokens checked as a resource server must: signatures made here with an Ed25519 key
// (the RS256 and ES256 paths are covered end to end with node:crypto's keys), and the claims a
// token could use to slip past a check: a repeated claim, an audience array, a missing expiry,
// the clock skew.

#include "policy/jwt.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>

#include "core/base64url.h"
#include "policy/load_error.h"

namespace mcpgate::policy {
namespace {

std::string b64(std::string_view s) {
  std::string out;
  core::append_base64url(out, reinterpret_cast<const unsigned char*>(s.data()), s.size());
  return out;
}

struct signer {
  signer() : key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")) {
    unsigned char x[32];
    size_t n = sizeof x;
    EVP_PKEY_get_raw_public_key(key, x, &n);
    std::string raw(reinterpret_cast<const char*>(x), n);
    keys = jwks::parse(R"({"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":")" + b64(raw) +
                           R"("},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]})",
                       "test.jwks");
  }
  ~signer() { EVP_PKEY_free(key); }

  std::string token(std::string_view header, std::string_view claims) {
    std::string input = b64(header) + "." + b64(claims);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char sig[64];
    size_t n = sizeof sig;
    EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key);
    EVP_DigestSign(ctx, sig, &n, reinterpret_cast<const unsigned char*>(input.data()),
                   input.size());
    EVP_MD_CTX_free(ctx);
    return input + "." + b64(std::string_view(reinterpret_cast<const char*>(sig), n));
  }
  token_error check(std::string_view header, std::string_view claims, int64_t now = 1000) {
    token_rules rules;
    rules.issuer = "https://as";
    rules.audiences = {"https://gw/mcp"};
    rules.clock_skew_s = 60;
    rules.group_claim = "groups";
    return verify_token(token(header, claims), *keys, rules, now, out);
  }

  EVP_PKEY* key;
  std::shared_ptr<const jwks> keys;
  token_claims out;
};

constexpr std::string_view header = R"({"alg":"EdDSA","kid":"k1"})";

TEST(Jwt, AcceptsAGoodTokenAndReadsItsClaims) {
  signer s;
  EXPECT_EQ(s.keys->size(), 1u) << "the encryption key is skipped";
  EXPECT_EQ(s.check(header, R"({"iss":"https://as","aud":["x","https://gw/mcp"],"exp":2000,)"
                            R"("sub":"alice","scope":"a  mcp:tools","groups":"ops"})"),
            token_error::none);
  EXPECT_EQ(s.out.name, "alice");
  EXPECT_EQ(s.out.issuer, "https://as");
  EXPECT_EQ(s.out.expires_s, 2000);
  EXPECT_EQ(s.out.scopes, (std::vector<std::string>{"a", "mcp:tools"}));
  EXPECT_EQ(s.out.groups, (std::vector<std::string>{"ops"}));
  // No kid: the one key of its algorithm.
  EXPECT_EQ(s.check(R"({"alg":"EdDSA"})",
                    R"({"iss":"https://as","aud":"https://gw/mcp","exp":2000,"sub":"a"})"),
            token_error::none);
}

TEST(Jwt, RefusesWhatASignedTokenCouldStillSlipPast) {
  signer s;
  std::string ok = R"("iss":"https://as","aud":"https://gw/mcp","exp":2000,"sub":"a")";
  EXPECT_EQ(s.check(header, "{" + ok + R"(,"aud":"https://other"})"), token_error::malformed)
      << "a repeated claim: the gateway and the upstream could read different values";
  EXPECT_EQ(s.check(R"({"alg":"EdDSA","kid":"k1","alg":"none"})", "{" + ok + "}"),
            token_error::malformed);
  EXPECT_EQ(s.check(header, R"({"iss":"https://as","aud":"https://gw/mcp","sub":"a"})"),
            token_error::expired)
      << "no exp: never valid";
  EXPECT_EQ(
      s.check(header, R"({"iss":"https://as","aud":"https://gw/mcp","exp":"2000","sub":"a"})"),
      token_error::malformed);
  EXPECT_EQ(s.check(header, "{" + ok + "}", 2059), token_error::none) << "within the skew";
  EXPECT_EQ(s.check(header, "{" + ok + "}", 2060), token_error::expired);
  EXPECT_EQ(s.check(header, "{" + ok + R"(,"nbf":1100})", 1000), token_error::not_yet_valid);
  EXPECT_EQ(s.check(header, "{" + ok + R"(,"nbf":1050})", 1000), token_error::none);
  EXPECT_EQ(s.check(header, R"({"iss":"https://as","aud":["https://gw"],"exp":2000,"sub":"a"})"),
            token_error::audience);
  EXPECT_EQ(s.check(header, R"({"iss":"https://as/","aud":"https://gw/mcp","exp":2000,"sub":"a"})"),
            token_error::issuer);
  EXPECT_EQ(s.check(header, R"({"iss":"https://as","aud":"https://gw/mcp","exp":2000})"),
            token_error::no_name);
  EXPECT_EQ(s.check(header, "{" + ok + R"(,"groups":{"a":1}})"), token_error::malformed);
  EXPECT_EQ(s.check(R"({"alg":"EdDSA","kid":"k2"})", "{" + ok + "}"), token_error::unknown_kid);
  EXPECT_EQ(s.check(R"({"alg":"HS256","kid":"k1"})", "{" + ok + "}"), token_error::algorithm);
  // The signature covers the header too.
  std::string t = s.token(header, "{" + ok + "}");
  std::string swapped = b64(R"({"alg":"EdDSA","kid":"k1","x":1})") + t.substr(t.find('.'));
  token_rules rules;
  rules.issuer = "https://as";
  rules.audiences = {"https://gw/mcp"};
  EXPECT_EQ(verify_token(swapped, *s.keys, rules, 1000, s.out), token_error::signature);
  EXPECT_EQ(verify_token(t + "=", *s.keys, rules, 1000, s.out), token_error::malformed);
  EXPECT_FALSE(looks_like_jwt("an-api-key"));
  EXPECT_FALSE(looks_like_jwt("a.b"));
  EXPECT_FALSE(looks_like_jwt("a.b.c.d"));
  EXPECT_FALSE(looks_like_jwt(".b.c"));
}

TEST(Jwt, AKeySetThatCannotBeReadSaysWhereAndWhy) {
  auto error_of = [](std::string_view text) {
    try {
      jwks::parse(text, "as.jwks");
    } catch (const load_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("nope"), "as.jwks: not a JSON document (a JWKS is {\"keys\": [...]})");
  EXPECT_EQ(error_of("{}"), "as.jwks: $.keys: expected an array of keys");
  EXPECT_EQ(error_of(R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]})"),
            "as.jwks: $.keys[0]: an Ed25519 key needs a 32-byte x");
  EXPECT_EQ(error_of(R"({"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]})"),
            "as.jwks: $.keys[0]: \"n\": expected base64url, got \"!!\"");
  EXPECT_EQ(error_of(R"({"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]})"),
            "as.jwks: $.keys[0]: a P-256 key needs 32-byte x and y");
}

}  // namespace
}  // namespace mcpgate::policy
