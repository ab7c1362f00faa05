#pragma once

// What happened to a request or a JSON-RPC message: one vocabulary for the gate that decides,
// the audit log that records and the metrics that count. The names are the audit log's
// "decision" values and the metrics' decision label.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace mcpgate::net {

enum class call_decision : uint8_t {
  allowed,
  denied,
  rate_limited,
  unauthenticated,
  invalid,
  upstream_error,
  cancelled,         // the client left (or the gateway drained) while the exchange was held
  timed_out,         // a held exchange passed its deadline before it could go on
  approval_denied,   // held for a human's approval, and refused by one
  approval_timeout,  // held for a human's approval, and no one decided in time
};
inline constexpr size_t call_decision_count = 10;

constexpr std::string_view call_decision_name(call_decision d) {
  switch (d) {
    case call_decision::allowed:
      return "allowed";
    case call_decision::denied:
      return "denied";
    case call_decision::rate_limited:
      return "rate_limited";
    case call_decision::unauthenticated:
      return "unauthenticated";
    case call_decision::invalid:
      return "invalid";
    case call_decision::upstream_error:
      return "upstream_error";
    case call_decision::cancelled:
      return "cancelled";
    case call_decision::timed_out:
      return "timed_out";
    case call_decision::approval_denied:
      return "approval_denied";
    case call_decision::approval_timeout:
      return "approval_timeout";
  }
  return "invalid";
}

// What was concluded for one message of a request, and by which rule.
struct message_verdict {
  call_decision decision = call_decision::allowed;
  std::string_view rule;
};

}  // namespace mcpgate::net
