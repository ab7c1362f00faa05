#include "policy/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <simdjson.h>

#include <algorithm>
#include <array>

#include "core/base64url.h"
#include "policy/load_error.h"

namespace mcpgate::policy {
namespace {

namespace dom = simdjson::dom;

[[noreturn]] void fail(std::string_view source, size_t index, const std::string& why) {
  throw load_error(std::string(source) + ": $.keys[" + std::to_string(index) + "]: " + why);
}

std::string member(dom::object o, std::string_view key) {
  std::string_view v;
  if (o[key].get(v) != simdjson::SUCCESS) return {};
  return std::string(v);
}

// A base64url member decoded, or an error naming it.
std::string bytes_of(dom::object o, std::string_view key, std::string_view source, size_t index) {
  std::string text = member(o, key);
  std::string out;
  if (text.empty() || !core::decode_base64url(text, out))
    fail(source, index, "\"" + std::string(key) + "\": expected base64url, got \"" + text + "\"");
  return out;
}

EVP_PKEY* from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    pkey = nullptr;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pkey;
}

EVP_PKEY* rsa_key(const std::string& n, const std::string& e) {
  BIGNUM* bn_n = BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  EVP_PKEY* pkey = nullptr;
  if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) == 1 &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
    pkey = from_params("RSA", bld);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  return pkey;
}

EVP_PKEY* p256_key(const std::string& x, const std::string& y) {
  std::string point = "\x04" + x + y;  // uncompressed
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  EVP_PKEY* pkey = nullptr;
  if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) == 1 &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) ==
          1)
    pkey = from_params("EC", bld);
  OSSL_PARAM_BLD_free(bld);
  return pkey;
}

// The top-level keys of a token's header or claims, each once: a repeated "aud" or "exp" would
// leave the gateway and the upstream reading different values.
bool unique_keys(dom::object o) {
  std::vector<std::string_view> seen;
  for (dom::key_value_pair field : o) {
    if (std::find(seen.begin(), seen.end(), field.key) != seen.end()) return false;
    seen.push_back(field.key);
  }
  return true;
}

bool verify_signature(const jwks::key& k, std::string_view signed_part, const std::string& sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  const EVP_MD* md = k.alg == "EdDSA" ? nullptr : EVP_sha256();
  std::string der;
  const unsigned char* s = reinterpret_cast<const unsigned char*>(sig.data());
  size_t s_len = sig.size();
  bool ok = true;
  if (k.alg == "ES256") {
    // JWS carries r || s, 32 bytes each; libcrypto verifies DER.
    ok = sig.size() == 64;
    ECDSA_SIG* es = ok ? ECDSA_SIG_new() : nullptr;
    BIGNUM* r = ok ? BN_bin2bn(s, 32, nullptr) : nullptr;
    BIGNUM* v = ok ? BN_bin2bn(s + 32, 32, nullptr) : nullptr;
    ok = es && r && v && ECDSA_SIG_set0(es, r, v) == 1;
    if (!ok) {
      BN_free(r);
      BN_free(v);
    }
    unsigned char* out = nullptr;
    int n = ok ? i2d_ECDSA_SIG(es, &out) : -1;
    ok = n > 0;
    if (ok) der.assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    OPENSSL_free(out);
    ECDSA_SIG_free(es);
    s = reinterpret_cast<const unsigned char*>(der.data());
    s_len = der.size();
  }
  ok = ok && EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, k.pkey) == 1 &&
       EVP_DigestVerify(ctx, s, s_len, reinterpret_cast<const unsigned char*>(signed_part.data()),
                        signed_part.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// A NumericDate claim: absent is `missing`, another type is malformed.
enum class date { ok, missing, malformed };
date numeric_date(dom::object o, std::string_view key, int64_t& out) {
  dom::element e;
  if (o[key].get(e) != simdjson::SUCCESS) return date::missing;
  double d = 0;
  if (e.get_double().get(d) != simdjson::SUCCESS) return date::malformed;
  out = static_cast<int64_t>(d);
  return date::ok;
}

}  // namespace

std::shared_ptr<const jwks> jwks::parse(std::string_view text, std::string_view source) {
  dom::parser parser;
  dom::element root;
  if (parser.parse(simdjson::padded_string(text)).get(root) != simdjson::SUCCESS)
    throw load_error(std::string(source) + ": not a JSON document (a JWKS is {\"keys\": [...]})");
  dom::array keys;
  if (root["keys"].get(keys) != simdjson::SUCCESS)
    throw load_error(std::string(source) + ": $.keys: expected an array of keys");
  std::shared_ptr<jwks> set(new jwks());
  size_t index = 0;
  for (dom::element item : keys) {
    dom::object o;
    if (item.get_object().get(o) != simdjson::SUCCESS) fail(source, index, "expected an object");
    std::string kty = member(o, "kty"), use = member(o, "use"), alg = member(o, "alg");
    key k;
    k.kid = member(o, "kid");
    if (use == "enc") {
      ++index;
      continue;
    }
    if (kty == "RSA" && (alg.empty() || alg == "RS256")) {
      k.alg = "RS256";
      k.pkey = rsa_key(bytes_of(o, "n", source, index), bytes_of(o, "e", source, index));
    } else if (kty == "EC" && member(o, "crv") == "P-256" && (alg.empty() || alg == "ES256")) {
      k.alg = "ES256";
      std::string x = bytes_of(o, "x", source, index), y = bytes_of(o, "y", source, index);
      if (x.size() != 32 || y.size() != 32)
        fail(source, index, "a P-256 key needs 32-byte x and y");
      k.pkey = p256_key(x, y);
    } else if (kty == "OKP" && member(o, "crv") == "Ed25519" && (alg.empty() || alg == "EdDSA")) {
      k.alg = "EdDSA";
      std::string x = bytes_of(o, "x", source, index);
      if (x.size() != 32) fail(source, index, "an Ed25519 key needs a 32-byte x");
      k.pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(x.data()), 32);
    } else {
      ++index;  // a kind of key this gateway does not verify with
      continue;
    }
    if (!k.pkey) fail(source, index, "libcrypto does not accept this " + k.alg + " key");
    set->keys_.push_back(std::move(k));
    ++index;
  }
  return set;
}

jwks::~jwks() {
  for (key& k : keys_) EVP_PKEY_free(k.pkey);
}

const jwks::key* jwks::find(std::string_view kid, std::string_view alg) const {
  const key* only = nullptr;
  size_t of_alg = 0;
  for (const key& k : keys_) {
    if (k.alg != alg) continue;
    if (!kid.empty() && k.kid == kid) return &k;
    ++of_alg;
    only = &k;
  }
  return kid.empty() && of_alg == 1 ? only : nullptr;
}

std::string_view token_error_rule(token_error e) {
  switch (e) {
    case token_error::none:
      return "";
    case token_error::malformed:
      return "token.malformed";
    case token_error::algorithm:
      return "token.algorithm";
    case token_error::unknown_kid:
      return "token.kid";
    case token_error::signature:
      return "token.signature";
    case token_error::issuer:
      return "token.issuer";
    case token_error::audience:
      return "token.audience";
    case token_error::expired:
      return "token.expired";
    case token_error::not_yet_valid:
      return "token.not_yet_valid";
    case token_error::no_name:
      return "token.name";
  }
  return "token.malformed";
}

std::string_view token_error_text(token_error e) {
  switch (e) {
    case token_error::none:
      return "";
    case token_error::malformed:
      return "the token is not a well-formed JWT";
    case token_error::algorithm:
      return "the token is signed with an algorithm this resource does not accept";
    case token_error::unknown_kid:
      return "the token is signed with a key the authorization server does not publish";
    case token_error::signature:
      return "the token's signature does not verify";
    case token_error::issuer:
      return "the token is from another issuer";
    case token_error::audience:
      return "the token is for another audience";
    case token_error::expired:
      return "the token has expired";
    case token_error::not_yet_valid:
      return "the token is not valid yet";
    case token_error::no_name:
      return "the token does not name its subject";
  }
  return "the token is not a well-formed JWT";
}

bool looks_like_jwt(std::string_view token) {
  size_t first = token.find('.');
  if (first == std::string_view::npos || first == 0) return false;
  size_t second = token.find('.', first + 1);
  return second != std::string_view::npos && second > first + 1 &&
         token.find('.', second + 1) == std::string_view::npos;
}

token_error verify_token(std::string_view token, const jwks& keys, const token_rules& rules,
                         int64_t now_s, token_claims& out) {
  if (!looks_like_jwt(token)) return token_error::malformed;
  size_t first = token.find('.');
  size_t second = token.find('.', first + 1);
  thread_local std::string header_json, claims_json, signature;
  if (!core::decode_base64url(token.substr(0, first), header_json) ||
      !core::decode_base64url(token.substr(first + 1, second - first - 1), claims_json) ||
      !core::decode_base64url(token.substr(second + 1), signature))
    return token_error::malformed;
  thread_local dom::parser parser;
  dom::object header;
  std::string alg, kid;
  {
    if (parser.parse(header_json).get(header) != simdjson::SUCCESS || !unique_keys(header))
      return token_error::malformed;
    alg = member(header, "alg");
    kid = member(header, "kid");
  }
  if (alg != "RS256" && alg != "ES256" && alg != "EdDSA") return token_error::algorithm;
  const jwks::key* key = keys.find(kid, alg);
  if (!key) return token_error::unknown_kid;
  if (!verify_signature(*key, token.substr(0, second), signature)) return token_error::signature;

  dom::object claims;
  if (parser.parse(claims_json).get(claims) != simdjson::SUCCESS || !unique_keys(claims))
    return token_error::malformed;
  std::string_view iss;
  if (claims["iss"].get(iss) != simdjson::SUCCESS || iss != rules.issuer)
    return token_error::issuer;
  bool audience = false;
  dom::element aud;
  if (claims["aud"].get(aud) == simdjson::SUCCESS) {
    auto matches = [&](std::string_view a) {
      return std::find(rules.audiences.begin(), rules.audiences.end(), a) != rules.audiences.end();
    };
    std::string_view one;
    dom::array many;
    if (aud.get_string().get(one) == simdjson::SUCCESS) {
      audience = matches(one);
    } else if (aud.get_array().get(many) == simdjson::SUCCESS) {
      for (dom::element a : many)
        if (a.get_string().get(one) == simdjson::SUCCESS && matches(one)) audience = true;
    }
  }
  if (!audience) return token_error::audience;
  int64_t exp = 0, nbf = 0, iat = 0;
  date e = numeric_date(claims, "exp", exp);
  if (e == date::malformed) return token_error::malformed;
  if (e == date::missing || exp + rules.clock_skew_s <= now_s) return token_error::expired;
  date n = numeric_date(claims, "nbf", nbf), i = numeric_date(claims, "iat", iat);
  if (n == date::malformed || i == date::malformed) return token_error::malformed;
  if ((n == date::ok && nbf - rules.clock_skew_s > now_s) ||
      (i == date::ok && iat - rules.clock_skew_s > now_s))
    return token_error::not_yet_valid;

  out = {};
  out.issuer.assign(iss);
  out.expires_s = exp;
  std::string_view name;
  if (claims[rules.name_claim].get(name) != simdjson::SUCCESS || name.empty())
    return token_error::no_name;
  out.name.assign(name);
  std::string_view scope;
  if (claims["scope"].get(scope) == simdjson::SUCCESS) {
    while (!scope.empty()) {
      size_t sp = scope.find(' ');
      if (sp != 0) out.scopes.emplace_back(scope.substr(0, sp));
      scope.remove_prefix(sp == std::string_view::npos ? scope.size() : sp + 1);
    }
  }
  if (!rules.group_claim.empty()) {
    dom::element groups;
    if (claims[rules.group_claim].get(groups) == simdjson::SUCCESS) {
      std::string_view one;
      dom::array many;
      if (groups.get_string().get(one) == simdjson::SUCCESS) {
        out.groups.emplace_back(one);
      } else if (groups.get_array().get(many) == simdjson::SUCCESS) {
        for (dom::element g : many)
          if (g.get_string().get(one) == simdjson::SUCCESS) out.groups.emplace_back(one);
      } else {
        return token_error::malformed;
      }
    }
  }
  return token_error::none;
}

}  // namespace mcpgate::policy
