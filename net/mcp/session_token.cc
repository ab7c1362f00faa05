#include "net/mcp/session_token.h"

#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>

#include "core/base64url.h"
#include "core/random.h"

namespace mcpgate::net {
namespace {

constexpr size_t nonce_bytes = 12;
constexpr size_t tag_bytes = 16;
constexpr unsigned char version = 1;
// The same, followed by one byte of session flags (session_sealer::flag_*), then the identity.
constexpr unsigned char version_with_flags = 2;

session_key derive(const session_key& key, std::string_view purpose) {
  std::string material(purpose);
  material.append(reinterpret_cast<const char*>(key.data()), key.size());
  session_key out{};
  SHA256(reinterpret_cast<const unsigned char*>(material.data()), material.size(), out.data());
  return out;
}

bool header_safe(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

}  // namespace

session_key random_session_key() {
  session_key key{};
  core::random_bytes(key.data(), key.size());
  return key;
}

session_sealer::session_sealer(const session_key& key)
    : ctx_(EVP_CIPHER_CTX_new()),
      enc_key_(derive(key, "mcpgate session token encryption\n")),
      nonce_key_(derive(key, "mcpgate session token nonce\n")) {
  if (!ctx_) std::abort();  // out of memory at start-up
  plain_.reserve(max_identity + 2);
  scratch_.reserve(nonce_bytes + max_identity + 2 + tag_bytes);
}

session_sealer::~session_sealer() {
  EVP_CIPHER_CTX_free(ctx_);
}

bool session_sealer::seal(std::string_view upstream_id, std::string_view identity, std::string& out,
                          uint8_t flags) {
  if (upstream_id.size() > max_upstream_id || identity.size() > max_identity ||
      !header_safe(upstream_id))
    return false;
  plain_.clear();
  if (flags == 0) {
    plain_ += static_cast<char>(version);
  } else {
    plain_ += static_cast<char>(version_with_flags);
    plain_ += static_cast<char>(flags);
  }
  plain_.append(identity);

  // nonce = HMAC(nonce key, upstream id | 0 | plaintext), first 12 bytes.
  std::string& material = scratch_;
  material.assign(upstream_id);
  material += '\0';
  material += plain_;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), nonce_key_.data(), static_cast<int>(nonce_key_.size()),
       reinterpret_cast<const unsigned char*>(material.data()), material.size(), mac, &mac_len);

  unsigned char blob[nonce_bytes + max_identity + 2 + tag_bytes];
  std::memcpy(blob, mac, nonce_bytes);
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, enc_key_.data(), blob) == 1 &&
            EVP_EncryptUpdate(ctx_, nullptr, &len,
                              reinterpret_cast<const unsigned char*>(upstream_id.data()),
                              static_cast<int>(upstream_id.size())) == 1 &&
            EVP_EncryptUpdate(ctx_, blob + nonce_bytes, &len,
                              reinterpret_cast<const unsigned char*>(plain_.data()),
                              static_cast<int>(plain_.size())) == 1;
  int tail = 0;
  ok = ok && EVP_EncryptFinal_ex(ctx_, blob + nonce_bytes + len, &tail) == 1;
  size_t cipher_len = static_cast<size_t>(len + tail);
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, tag_bytes,
                                 blob + nonce_bytes + cipher_len) == 1;
  if (!ok) return false;
  out.append(upstream_id);
  out += '.';
  core::append_base64url(out, blob, nonce_bytes + cipher_len + tag_bytes);
  return true;
}

std::optional<std::string_view> session_sealer::open(std::string_view token,
                                                     std::string_view identity, uint8_t* flags) {
  size_t dot = token.rfind('.');
  if (dot == std::string_view::npos || identity.size() > max_identity) return std::nullopt;
  std::string_view upstream_id = token.substr(0, dot);
  std::string_view sealed = token.substr(dot + 1);
  if (upstream_id.size() > max_upstream_id || !header_safe(upstream_id) ||
      sealed.size() > (nonce_bytes + max_identity + 2 + tag_bytes) * 4 / 3 + 4)
    return std::nullopt;
  std::string& blob = scratch_;
  if (!core::decode_base64url(sealed, blob) || blob.size() < nonce_bytes + 1 + tag_bytes)
    return std::nullopt;
  size_t cipher_len = blob.size() - nonce_bytes - tag_bytes;
  auto* bytes = reinterpret_cast<unsigned char*>(blob.data());
  plain_.resize(cipher_len);
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, enc_key_.data(), bytes) == 1 &&
            EVP_DecryptUpdate(ctx_, nullptr, &len,
                              reinterpret_cast<const unsigned char*>(upstream_id.data()),
                              static_cast<int>(upstream_id.size())) == 1 &&
            EVP_DecryptUpdate(ctx_, reinterpret_cast<unsigned char*>(plain_.data()), &len,
                              bytes + nonce_bytes, static_cast<int>(cipher_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, tag_bytes,
                                bytes + nonce_bytes + cipher_len) == 1;
  int tail = 0;
  // The tag is checked here: a token altered in any byte, or sealed by another key, fails.
  ok = ok &&
       EVP_DecryptFinal_ex(ctx_, reinterpret_cast<unsigned char*>(plain_.data()) + len, &tail) == 1;
  if (!ok || plain_.empty()) return std::nullopt;
  size_t at = 1;
  uint8_t found = 0;
  if (static_cast<unsigned char>(plain_[0]) == version_with_flags && plain_.size() >= 2) {
    found = static_cast<uint8_t>(plain_[1]);
    at = 2;
  } else if (static_cast<unsigned char>(plain_[0]) != version) {
    return std::nullopt;
  }
  if (std::string_view(plain_).substr(at) != identity) return std::nullopt;
  if (flags) *flags = found;
  return upstream_id;
}

}  // namespace mcpgate::net
