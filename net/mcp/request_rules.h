#pragma once

// The transport rules every request head must pass before anyone asks who is calling: where
// the request is addressed (Host and Origin, against DNS rebinding), what it is (path, method,
// media types), and that no field the gateway or the upstream acts on can be read two ways
// (repeated, or spelled with underscores that CGI-style servers fold into the same name).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.h"
#include "net/http/parser.h"

namespace mcpgate::net {

// Which Host (and Origin) values a listener accepts. Built at load, immutable.
class host_allowlist {
 public:
  // `configured` is the config's allowed_hosts ("host" or "host:port", compared
  // case-insensitively; an entry without a port matches the listener's port or none). Without
  // it, a listener on a loopback address accepts only localhost, 127.0.0.1 and [::1], and any
  // other listener every Host.
  static host_allowlist for_listener(const endpoint& listen,
                                     const std::vector<std::string>& configured);

  // Whether a Host header value (or the authority of an Origin) may reach this listener.
  bool allows(std::string_view authority) const;
  bool allows_any() const { return any_; }

 private:
  bool any_ = false;
  uint16_t port_ = 0;
  std::vector<std::string> entries_;  // lower case
};

struct head_rules {
  std::vector<std::string> paths;            // the endpoints; other paths get 404
  std::vector<std::string> allowed_origins;  // empty: Origin checked against the host allowlist
  host_allowlist hosts;
};

// Why a head is answered by the gateway instead of going on.
struct head_rejection {
  int status = 400;
  int code = -32600;  // JSON-RPC error code of the reply body
  std::string message;
  std::string_view extra_headers;  // complete header lines, e.g. Allow for 405
  std::string_view rule;           // for the audit line: "host", "origin", "headers", ...
  bool close = false;              // the connection must close after the reply
};

// Header names a client may not send: the gateway sets them on requests to its own upstreams.
inline constexpr std::string_view identity_header = "mcp-gateway-identity";
// The stdio bridge's mark on a reply made without passing the request to a child (so the
// gateway may give the call's count back); never relayed to a client.
inline constexpr std::string_view not_run_header = "mcp-gateway-not-run";
// The federation hub's mark on a reply it made itself, naming the audit decision for it
// ("allowed", "invalid", "upstream_error"); a reply without it is a server's, relayed, and
// audited by that server's route. Never relayed to a client.
inline constexpr std::string_view federation_answer_header = "mcp-gateway-federation";

// Checks a complete, well-formed request head. Nothing when the request may go on; then
// `expect_continue` says the client waits for 100 Continue before sending its body.
std::optional<head_rejection> check_request_head(const request_head& head, std::string_view path,
                                                 const head_rules& rules, bool& expect_continue);

}  // namespace mcpgate::net
