#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/http/parser.h"
#include "net/mcp/jsonrpc.h"
#include "net/observe/audit_record.h"
#include "net/observe/metrics.h"

namespace mcpgate::net {

// What the gate sees of one HTTP request.
struct request_view {
  http_method method = http_method::other;
  std::string_view authorization;     // the Authorization header, empty when absent
  std::string_view session_id;        // Mcp-Session-Id
  std::string_view protocol_version;  // MCP-Protocol-Version
  std::string_view server;            // the upstream the route chose (its policy applies)
  // admit(): the JSON-RPC id (raw token) of a single request whose body came with the head,
  // for the 401 to answer; empty otherwise.
  std::string_view request_id;
  // decide(): a human approved this request's call; approve_if rules no longer hold it.
  bool approved = false;
  // admit(): where the request came (Host and endpoint path), for an access token's audience
  // and the resource's metadata URL when they are not configured.
  std::string_view host = {};
  std::string_view path = {};
};

// RFC 9728's well-known prefix of a protected resource's metadata.
inline constexpr std::string_view metadata_prefix = "/.well-known/oauth-protected-resource";

// A tools/call that an approve_if rule holds for a human (set by decide(), which then returns
// true without reserving any count). Views are valid until the next call into the gate.
struct approval_ask {
  bool needed = false;
  bool via_client = false;  // ask the human at the client (elicitation) when it can
  int64_t timeout_ms = 0;
  std::string_view tool;
  std::string_view arguments;        // raw params.arguments, empty when absent
  std::string_view rule;             // "tools.<name>.approve_if[i]"
  std::string_view message;          // the rule's message; empty: none
  std::string_view policy_revision;  // the policy document's (policy/document.h)
};

// A reply the gate wants sent instead of forwarding. Views stay valid until the next call into
// the same gate.
struct gate_reply {
  int http_status = 200;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines
  std::string_view content_type;   // empty: no body
  std::string_view body;
  std::string_view rule = {};  // for the audit log: what refused (admit: "token.expired", ...)
};

// What a gate remembers about the exchange on one client connection, between admit(),
// decide() and the end of the exchange (who is calling, the counts reserved). Created by the
// gate once per connection and reused for every request on it, so the request path does not
// allocate. It keeps alive whatever its decisions point into, so a reload that replaces the
// gate mid-exchange leaves it valid.
class gate_ticket {
 public:
  virtual ~gate_ticket() = default;
  // The exchange ended. upstream_handled is false when the upstream never processed the
  // request (refused, reset before a response, 5xx): the counts it reserved go back.
  // Called at most once per forwarded request.
  virtual void completed(int upstream_status, bool upstream_handled) = 0;
  // The response must pass through filter_response() (e.g. a tools/list for a grant that hides
  // tools); set by decide().
  bool filter_response = false;
  // admit() authenticated the request with its Authorization header: the credential was for
  // the gateway and is not forwarded.
  bool consumed_credential = false;
  // For the audit log: who is calling (set by admit(); empty when unauthenticated or unknown),
  // and what decide() concluded for each message of the body, in order (empty: all allowed).
  // The views stay valid as long as the ticket.
  std::string_view identity;
  std::string_view grant;
  std::string_view issuer;  // an access token's "iss"; empty for an API key
  using verdict = message_verdict;
  std::vector<verdict> verdicts;
  approval_ask approval;
};

enum class filter_result : uint8_t { unchanged, replaced, invalid };

// The settings behind every shard's gate; immutable, swapped whole on reload.
struct gate_config {
  virtual ~gate_config() = default;
  // Metric label ids for tool and grant names (bounded tables; see net/metrics.h). Null: the
  // metrics count every tool and grant as "other".
  std::shared_ptr<const metric_labels> labels;
};

// The decision point on the request path, one per shard (not thread-safe). The proxy calls
// admit() once the request head is complete, decide() once a POST body is extracted.
// Returning false means "answer with *reply instead of forwarding".
class gate {
 public:
  virtual ~gate() = default;
  virtual std::unique_ptr<gate_ticket> new_ticket() = 0;
  // Whether `ticket` was made by this gate (after a reload, older tickets are replaced at the
  // next request).
  virtual bool owns(const gate_ticket& ticket) const = 0;
  virtual bool admit(const request_view& request, gate_ticket& ticket, gate_reply& reply) = 0;
  virtual bool decide(const request_view& request, const jsonrpc_result& body, gate_ticket& ticket,
                      gate_reply& reply) = 0;
  // One complete JSON-RPC message from the response of an exchange with filter_response set;
  // on replaced, `out` holds the bytes to send instead.
  virtual filter_result filter_response(gate_ticket& ticket, std::string_view message,
                                        std::string& out) = 0;
  // The protected resource metadata (RFC 9728) of the endpoint `request` names, when the gate
  // takes access tokens; false otherwise (the path is then unknown).
  virtual bool resource_metadata(const request_view& /*request*/, gate_reply& /*reply*/) {
    return false;
  }
  // The reply to a held call no human approved (outcome approval_denied or approval_timeout):
  // a policy denial in the configured style, naming the tool, the rule and `message`. Views
  // stay valid until the next call into the gate.
  virtual void refuse_held(std::string_view /*id_token*/, std::string_view /*tool*/,
                           std::string_view /*rule*/, call_decision /*outcome*/,
                           std::string_view /*message*/, gate_reply& /*reply*/) {}
  // Listed tools whose definition changed since they were pinned, found by the last
  // filter_response() call: each gets an audit line. Valid until the next call into the gate.
  virtual std::span<const tool_change_record> tool_changes() const { return {}; }
};

// Lets everything through; used when no policy is configured.
class allow_all_gate final : public gate {
 public:
  std::unique_ptr<gate_ticket> new_ticket() override;
  bool owns(const gate_ticket& ticket) const override;
  bool admit(const request_view&, gate_ticket&, gate_reply&) override { return true; }
  bool decide(const request_view&, const jsonrpc_result&, gate_ticket&, gate_reply&) override {
    return true;
  }
  filter_result filter_response(gate_ticket&, std::string_view, std::string&) override {
    return filter_result::unchanged;
  }
};

// Builds the gate for one shard from a configuration (an empty gate_config: allow all).
std::unique_ptr<gate> make_gate(const std::shared_ptr<const gate_config>& config, unsigned shard);

}  // namespace mcpgate::net
