#pragma once

// One audit line per JSON-RPC message that crosses the gateway or is answered by it. The line
// is built on the shard's request path and handed to its core::log_writer.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/observe/decision.h"

namespace mcpgate::net {

// How much of a tools/call's arguments the audit log keeps (`audit.arguments`).
enum class arguments_mode : uint8_t {
  none,  // "args":null
  keys,  // "args":{"keys":["path","mode"]}: top-level names only, unescaped
  hash,  // "args":{"keys":[...],"sha256":"<64 hex>"} of the raw argument bytes (the default)
  full,  // "args":<the arguments object as sent>
};

// The exact bytes of params.arguments as the client sent them. `size` bytes of JSON (an object,
// already validated by the extractor) followed by at least 64 readable bytes (simdjson padding),
// which is what core::byte_buffer and the extractor guarantee.
struct raw_arguments {
  const char* data = nullptr;
  size_t size = 0;
  std::string_view bytes() const { return {data, size}; }
};

// Every key of an audit line. Views must stay valid until append_audit_line() returns. An
// absent optional is written as null; strings are escaped (invalid UTF-8 becomes U+FFFD).
struct audit_record {
  int64_t realtime_ns = 0;  // CLOCK_REALTIME when the message arrived; "ts", RFC 3339 UTC, µs
  uint32_t shard = 0;
  uint64_t conn = 0;  // connection number, unique per shard
  uint64_t req = 0;   // request number on the shard
  std::optional<std::string_view> identity;
  std::optional<std::string_view> grant;
  // An identity an access token named: its issuer, written as "issuer" after "grant" (an API
  // key's lines have no such key).
  std::string_view issuer;
  std::optional<std::string_view> server;   // the upstream's name ("default" for `upstream`)
  std::optional<std::string_view> session;  // Mcp-Session-Id
  std::optional<std::string_view> method;   // absent for responses
  // The JSON-RPC id as a raw JSON token exactly as sent (7, "abc" with its quotes, null),
  // inserted verbatim: it was validated by the extractor. Absent for notifications.
  std::optional<std::string_view> id;
  std::optional<std::string_view> tool;  // tools/call's params.name, unescaped
  call_decision decision = call_decision::allowed;
  std::optional<std::string_view> rule;  // the rule or counter that decided
  // upstream_error only: what failed ("refused", "reset", "timeout", "malformed"); written as
  // "error" after "decision" when not empty. With upstream_status set, it failed mid-response.
  std::string_view error;
  // Forwarded calls only: upstream_status and upstream_us appear in the line only when set.
  bool forwarded = false;
  int upstream_status = 0;
  int64_t upstream_us = 0;
  int64_t gateway_us = 0;  // time the gateway added
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::optional<raw_arguments> arguments;  // absent: "args":null whatever the mode
  // A call held for approval (tail, after "decision"): "approval":"<id>", then who decided as
  // "approved_by" or "denied_by", and "approval_reason" when the approver gave one. Empty
  // approval_id: none of these keys.
  std::string_view approval_id;
  std::string_view approval_by;
  std::string_view approval_reason;
  bool approval_granted = false;
};

// A tool in a tools/list response whose definition differs from its pin (policy/tool_pins.h):
// a line of its own, with the head of the request that listed it (method "tools/list", the
// tool, rule "pins") and, instead of a decision, "event":"tool_changed", the server, both
// hashes and what the gateway did ("hidden", "denied": listed but its calls refused, "logged").
// The server is the head's: a pins file names a server by its upstream's name.
struct tool_change_record {
  std::string_view tool;           // unescaped
  std::string_view pinned_sha256;  // 64 hex
  std::string_view seen_sha256;    // 64 hex; empty: the definition could not be read (null)
  std::string_view action;
};
void append_tool_change_line(std::string& out, const audit_record& head,
                             const tool_change_record& change);

// The "args" value alone, as the audit line writes it in `mode` (one line: raw line breaks of
// full-mode JSON become spaces).
void append_audit_arguments(std::string& out, const std::optional<raw_arguments>& args,
                            arguments_mode mode);

// Appends one JSON object and '\n' to `out`. Allocation-free once `out` has capacity (keys mode
// and hash mode parse the arguments with a per-thread simdjson parser allocated on first use).
// If arguments that should be valid JSON do not parse, the keys are written as null, never a
// broken line.
void append_audit_line(std::string& out, const audit_record& record, arguments_mode mode);

// The line in two parts, for calls whose outcome is known only later: the head holds what is
// known when the request is decided (ts to args: identity, method, id, tool, rule, arguments),
// the tail what is known when the exchange ends (decision, upstream_status, upstream_us,
// gateway_us, bytes_in, bytes_out) and the closing "}\n". head + tail == append_audit_line.
void append_audit_head(std::string& out, const audit_record& record, arguments_mode mode);
// `,"session":"<id>"` as append_audit_head writes it, for a session learned after the head.
void append_audit_session(std::string& out, std::string_view session);
void append_audit_tail(std::string& out, const audit_record& record);

}  // namespace mcpgate::net
