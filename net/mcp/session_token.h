#pragma once

// Session ids as clients see them. An MCP server mints `Mcp-Session-Id` for whoever sent the
// initialize; anyone holding the id can then use, stream from or end the session. The gateway
// binds every session to the identity that created it: the id a client receives is
//
//   <upstream id>.<base64url(nonce | AES-256-GCM(identity) | tag)>
//
// (with one byte of flags before the identity when the client declared something the gateway
// acts on, such as elicitation for approvals)
//
// with the upstream's id as associated data, so the token is valid only for the identity
// sealed into it and only together with that upstream id. A request naming a session is
// answered 404 (JSON-RPC -32001, as for an unknown session) unless its token opens for the
// identity making the request; the upstream sees its own id, never the token.
//
// Sealing is deterministic (the nonce is a keyed hash of what is sealed, as in SIV modes): the
// same session and identity always give the same token, so a client that compares ids sees no
// change from one response to the next. The upstream id stays readable at the front, so logs on
// both sides of the gateway name sessions alike.

#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mcpgate::net {

using session_key = std::array<unsigned char, 32>;

// 32 bytes from the kernel's random source: a key for this process's life.
session_key random_session_key();

// One per shard (an EVP context is not thread-safe); never allocates after construction except
// to grow `out`.
class session_sealer {
 public:
  // Upstream ids longer than this are refused (the specification's ids are short; a UUID is 36).
  static constexpr size_t max_upstream_id = 256;
  static constexpr size_t max_identity = 200;

  explicit session_sealer(const session_key& key);
  ~session_sealer();
  session_sealer(const session_sealer&) = delete;
  session_sealer& operator=(const session_sealer&) = delete;

  // What the gateway learned of the session's client at initialize, sealed with it.
  static constexpr uint8_t flag_elicitation = 1;  // the client declared elicitation

  // Appends the token for `upstream_id` created by `identity` (with `flags`) to `out`. False
  // (nothing appended) when either is too long or the upstream id holds bytes a header may
  // not carry.
  bool seal(std::string_view upstream_id, std::string_view identity, std::string& out,
            uint8_t flags = 0);

  // The upstream id inside `token` when the token was sealed by this key for `identity`
  // (and its flags into *flags); nothing for any other token (forged, altered, another
  // identity's, another key's).
  std::optional<std::string_view> open(std::string_view token, std::string_view identity,
                                       uint8_t* flags = nullptr);

 private:
  EVP_CIPHER_CTX* ctx_;
  session_key enc_key_;
  session_key nonce_key_;
  std::string plain_;
  std::string scratch_;
};

}  // namespace mcpgate::net
