#pragma once

// The gateway as an OAuth 2.1 resource server (the MCP authorization specification): which
// access tokens it takes, from which authorization server, and how a token's claims name an
// identity and its grant. API keys keep working beside tokens.

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/jwt.h"

namespace mcpgate::policy {

// The issuer's keys as they are now: read by every shard, swapped whole when a refresh finds a
// new set. A token naming a key the set lacks asks for a refresh (without waiting for it: the
// token is refused, and the client's next one finds the new key).
class key_source {
 public:
  explicit key_source(std::shared_ptr<const jwks> keys, int64_t min_refresh_s)
      : keys_(std::move(keys)), min_refresh_s_(min_refresh_s) {}
  key_source(const key_source&) = delete;
  key_source& operator=(const key_source&) = delete;

  std::shared_ptr<const jwks> current() const { return keys_.load(std::memory_order_acquire); }
  void replace(std::shared_ptr<const jwks> keys) {
    keys_.store(std::move(keys), std::memory_order_release);
  }
  // From a shard: never blocks (one atomic store, and a write to the refresher's eventfd).
  void want_refresh() {
    if (wanted_.exchange(true, std::memory_order_acq_rel)) return;
    int fd = wake_fd_.load(std::memory_order_acquire);
    uint64_t one = 1;
    if (fd >= 0) [[maybe_unused]]
      ssize_t n = ::write(fd, &one, sizeof one);
  }
  // For the refresher: whether a refresh was asked for since the last call.
  bool take_wanted() { return wanted_.exchange(false, std::memory_order_acq_rel); }
  void set_wake_fd(int fd) { wake_fd_.store(fd, std::memory_order_release); }
  int64_t min_refresh_s() const { return min_refresh_s_; }

 private:
  std::atomic<std::shared_ptr<const jwks>> keys_;
  std::atomic<bool> wanted_{false};
  std::atomic<int> wake_fd_{-1};
  int64_t min_refresh_s_;
};

struct oauth_settings {
  std::shared_ptr<key_source> keys;
  std::string jwks_source;  // the file or URL, for messages and refreshes
  std::string jwks_ca;      // an https:// key set's CA (PEM file); empty: the system's store
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
