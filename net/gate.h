#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "net/http_parser.h"
#include "net/jsonrpc.h"

namespace mcpgate::net {

// What the gate sees of one HTTP request.
struct request_view {
  http_method method = http_method::other;
  std::string_view authorization;     // the Authorization header, empty when absent
  std::string_view session_id;        // Mcp-Session-Id
  std::string_view protocol_version;  // MCP-Protocol-Version
};

// A reply the gate wants sent instead of forwarding. Views stay valid until the next call.
struct gate_reply {
  int http_status = 200;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines
  std::string_view content_type;   // empty: no body
  std::string_view body;
};

// Per-exchange state a gate keeps between admit(), decide() and completed() (the identity,
// counts reserved). The proxy stores one per client connection, so a gate never allocates per
// request; a gate implementation static_asserts that its state fits.
struct gate_ticket {
  alignas(16) unsigned char bytes[256];
};

// The settings behind every shard's gate; immutable, swapped whole on reload.
struct gate_config {
  virtual ~gate_config() = default;
};

// The decision point on the request path, one per shard (not thread-safe). The proxy calls
// admit() once the request head is complete, decide() once a POST body is extracted, and
// completed() when an exchange it forwarded ends. Returning false means "answer with *reply".
class gate {
 public:
  virtual ~gate() = default;
  virtual bool admit(const request_view& request, gate_ticket& ticket, gate_reply& reply) = 0;
  virtual bool decide(const request_view& request, const jsonrpc_result& body,
                      gate_ticket& ticket, gate_reply& reply) = 0;
  // upstream_handled: false when the upstream never processed the request (refused, reset
  // before a response, 5xx), so reserved counts go back. Called once per forwarded request.
  virtual void completed(gate_ticket& ticket, int upstream_status, bool upstream_handled) = 0;
};

// Lets everything through; used when no policy is configured.
class allow_all_gate final : public gate {
 public:
  bool admit(const request_view&, gate_ticket&, gate_reply&) override { return true; }
  bool decide(const request_view&, const jsonrpc_result&, gate_ticket&, gate_reply&) override {
    return true;
  }
  void completed(gate_ticket&, int, bool) override {}
};

// Builds the gate for one shard from a configuration (see net/gate.cc).
std::unique_ptr<gate> make_gate(const std::shared_ptr<const gate_config>& config, unsigned shard);

}  // namespace mcpgate::net
