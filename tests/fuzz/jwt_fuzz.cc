// Access tokens and key sets on arbitrary bytes: verify_token never accepts a token whose
// signature was not made by a published key (the fuzzer holds no private key, so every
// verdict must be a refusal), and a JWKS document either parses or throws load_error.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/jwt.h"
#include "policy/load_error.h"

namespace {

// One RSA, one P-256 and one Ed25519 public key, made once with node:crypto.
constexpr std::string_view keys_json =
    R"j({"keys":[{"kty":"RSA","n":"2QAn3LlPnTSaTRuarN1F3dDWfGE17VSsO9Blall9R66BZVPQafjSmYdaKX2I0mbTWh0G669cqd0L71WXT9KQeplk_fxNWtmDXGWp4d6h6oOO6t_OeJcGI4efxzwbavrXWmE_MZiZrkHMqxCzomJ6KyAcldzoKa9avM3CiHSTGAypbMbqQz0yGilfFGpCmAQ65w66JY3waCzTFXHrxokI7p8MIBFwZqfi0Q8JSQCYfC4Qs120AOAZ2_v9h76ewgZXUdDMdH5F4-_Dc4x3eYRfeUe2mJlmFbyL3QMP4rM0qcc4JAitUSSUWKEQX2i5HVFpIrvKTYS8O4ktPZiimf-ySQ","e":"AQAB","kid":"rs-1","alg":"RS256"},{"kty":"EC","x":"d5l1LndDftPi4XY5Bbf1In_-mU0ZUfNPAdmnMNynCu0","y":"8e5ORqPVCocB5IbAxZzsH0GDrMabH8BPQc9s9MUF-oE","crv":"P-256","kid":"es-1","alg":"ES256"},{"crv":"Ed25519","x":"fLfpVw1DO3WMxHaBaeBkJV-7NFeneMnrwVdmj83GPcU","kty":"OKP","kid":"ed-1","alg":"EdDSA"}]})j";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mcpgate::policy;
  static const std::shared_ptr<const jwks> keys = jwks::parse(keys_json, "fuzz");
  std::string_view text(reinterpret_cast<const char*>(data), size);
  token_rules rules;
  rules.issuer = "http://as.example";
  rules.audiences = {"http://gw.example/mcp"};
  rules.group_claim = "groups";
  token_claims claims;
  if (verify_token(text, *keys, rules, 1'800'000'000, claims) == token_error::none) std::abort();
  try {
    std::shared_ptr<const jwks> parsed = jwks::parse(text, "input");
    if (!parsed) std::abort();
  } catch (const load_error&) {
  }
  return 0;
}
