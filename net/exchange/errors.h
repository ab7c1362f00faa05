#pragma once

// Every failure the gateway answers itself after a request was read, in one place: its HTTP
// status, its JSON-RPC error code, the message a client reads, and how the audit log and the
// metrics call it. The README's "What the gateway answers itself" table is this table.
// (Failures found while reading a request head, which are the transport's, are in
// net/mcp/request_rules.h.)

#include <cstdint>
#include <string_view>

#include "net/observe/decision.h"

namespace mcpgate::net {

enum class gateway_error : uint8_t {
  request_timeout,     // the head or body did not arrive in time
  session_not_found,   // unknown, altered, or another identity's session
  upstream_refused,    // the connection to the upstream could not be made
  upstream_no_socket,  // not even a socket (descriptor limit)
  upstream_reset,      // the upstream closed or reset before responding
  upstream_timeout,    // no response head within the response timeout
  upstream_malformed,  // the response could not be read as HTTP (or its session id is bad)
  audit_unwritable,    // audit.on_failure is fail_closed and the log cannot be written
  hold_timeout,        // a stage held the exchange past its deadline
  invalid_params,      // tools/call without an object params with a string name
  header_mismatch,     // Mcp-Method / Mcp-Name disagree with the body (2026-07-28)
  batch_not_allowed,   // a JSON-RPC batch under a revision after 2025-03-26
};

struct gateway_error_reply {
  int http_status;
  int code;  // JSON-RPC error code
  std::string_view message;
  call_decision decision;
  std::string_view audit_error;  // the audit line's "error" with upstream_error, else empty
};

constexpr gateway_error_reply describe(gateway_error e) {
  switch (e) {
    case gateway_error::request_timeout:
      return {408, -32600, "request head or body not received in time", call_decision::invalid, {}};
    case gateway_error::session_not_found:
      return {404, -32001, "Session not found", call_decision::invalid, {}};
    case gateway_error::upstream_refused:
      return {502, -32030, "upstream unavailable: connection refused",
              call_decision::upstream_error, "refused"};
    case gateway_error::upstream_no_socket:
      return {502, -32030, "upstream unavailable: cannot create a socket",
              call_decision::upstream_error, "refused"};
    case gateway_error::upstream_reset:
      return {502, -32030, "upstream closed the connection before responding",
              call_decision::upstream_error, "reset"};
    case gateway_error::upstream_timeout:
      return {504, -32031, "upstream timed out", call_decision::upstream_error, "timeout"};
    case gateway_error::upstream_malformed:
      return {502, -32033, "upstream sent a malformed response", call_decision::upstream_error,
              "malformed"};
    case gateway_error::audit_unwritable:
      return {503,
              -32060,
              "audit log cannot be written; calls are refused until it can (audit.on_failure is "
              "fail_closed)",
              call_decision::invalid,
              {}};
    case gateway_error::hold_timeout:
      return {
          504, -32037, "the gateway held the call past its deadline", call_decision::timed_out, {}};
    case gateway_error::invalid_params:
      return {200,
              -32602,
              "Invalid params: tools/call needs params to be an object with a string name",
              call_decision::invalid,
              {}};
    case gateway_error::header_mismatch:
      return {400,
              -32020,
              "Mcp-Method or Mcp-Name header does not match the request body",
              call_decision::invalid,
              {}};
    case gateway_error::batch_not_allowed:
      return {400,
              -32600,
              "Invalid Request: JSON-RPC batches are not allowed in protocol revision",
              call_decision::invalid,
              {}};
  }
  return {500, -32603, "internal error", call_decision::invalid, {}};
}

}  // namespace mcpgate::net
