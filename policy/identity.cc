#include "policy/identity.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace mcpgate::policy {

std::string_view bearer_token(std::string_view authorization) {
  auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  size_t i = 0;
  while (i < authorization.size() && is_space(authorization[i])) ++i;
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() - i <= kScheme.size()) return {};
  for (size_t k = 0; k < kScheme.size(); ++k) {
    char c = authorization[i + k];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[k]) return {};
  }
  i += kScheme.size();
  if (!is_space(authorization[i])) return {};
  while (i < authorization.size() && is_space(authorization[i])) ++i;
  size_t end = authorization.size();
  while (end > i && is_space(authorization[end - 1])) --end;
  std::string_view token = authorization.substr(i, end - i);
  for (char c : token) {
    if (is_space(c)) return {};  // "Bearer a b" is not a bearer token
  }
  return token;
}

std::array<unsigned char, 32> sha256(std::string_view data) {
  std::array<unsigned char, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

const identity* authenticate(const access_config& config, std::string_view authorization) {
  if (const identity* anonymous = config.anonymous()) return anonymous;
  std::string_view token = bearer_token(authorization);
  if (token.empty()) return nullptr;
  const auto digest = sha256(token);
  // Compare with every identity, without stopping at the first match, so the time taken
  // does not depend on which identity (if any) matched.
  const identity* found = nullptr;
  for (const auto& who : config.identities()) {
    bool same = CRYPTO_memcmp(digest.data(), who->key_sha256.data(), digest.size()) == 0;
    found = same ? who.get() : found;
  }
  return found;
}

}  // namespace mcpgate::policy
