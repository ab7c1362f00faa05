#pragma once

// The decision point: given who is calling and what, allow, deny or rate-limit, and reserve
// the counts an allowed call consumes. No sockets, no clock of its own (now_ns is passed
// in), so every rule is testable with explicit times.
//
// Order of rules for a tools/call: the grant has no policy -> denied ("grant"); the tool is
// hidden -> denied ("hide"); not listed under default deny -> denied ("default"); a require
// condition fails -> denied ("tools.<name>.require[i]"); a deny_if entry matches -> denied
// ("tools.<name>.deny_if[i]"); the arguments could not be read unambiguously (invalid JSON,
// a duplicated key on a path a condition reads) -> denied ("arguments"); an approve_if entry
// matches and the call is not yet approved -> held ("tools.<name>.approve_if[i]"; no count
// taken: a held call counts only once approved, when it is decided again with approved set);
// then every limit that applies reserves one count, all or nothing -> rate_limited (the
// counter's name).
// Other methods are allowed: only tools/call names a tool.

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "policy/access_config.h"
#include "policy/condition.h"
#include "policy/limits.h"

namespace mcpgate::policy {

// Who is calling. `who` comes from authenticate() and lives as long as its access_config.
struct subject {
  const identity* who = nullptr;
  std::string_view session_id;  // Mcp-Session-Id, empty when none
  // The upstream (server) called; its policy in the grant replaces the grant's own.
  std::string_view server = {};
};

// What is called. arguments_json is the raw bytes of params.arguments (empty when absent)
// and must be followed by at least SIMDJSON_PADDING readable bytes.
struct call {
  std::string_view method;
  std::string_view tool;  // already unescaped
  std::string_view arguments_json;
  // A human approved this call: approve_if no longer holds it.
  bool approved = false;
};

// approval_denied and approval_timeout are not decide()'s: they are how a held call ends
// when no human approved it (net/approval).
enum class verdict : uint8_t {
  allowed,
  denied,
  rate_limited,
  held,
  approval_denied,
  approval_timeout
};

// "allowed", "denied", "rate_limited", "held", "approval_denied", "approval_timeout"
std::string_view verdict_name(verdict v);

// One count taken from one counter, to give back with refund().
struct reservation {
  limit_counter* counter = nullptr;
  std::shared_ptr<limit_counter> session_owner;  // keeps a session counter alive
  limit_counter::admission taken;
};

// The outcome of decide(). The string views point into the call (tool) and into the
// access_config (rule, message): keep both alive while the decision is used.
struct decision {
  verdict outcome = verdict::allowed;
  std::string_view tool;
  std::string_view rule;                     // "hide", "default", "grant", "arguments",
                                             // "tools.<name>.deny_if[i]", ..., or the counter name
  std::string_view message;                  // the policy's on_deny; empty: use default_message()
  window_unit window = window_unit::second;  // rate_limited only
  int64_t max = 0;                           // rate_limited only
  int64_t retry_after_ms = 0;                // rate_limited only
  const approval_rule* approval = nullptr;   // held only: the entry that matched
  std::array<reservation, kMaxLimitsPerTool> reservations;
  uint8_t reservation_count = 0;

  bool allowed() const { return outcome == verdict::allowed; }
};

// Per-shard state for decide(): create one per thread, reuse for every call. Holds a JSON
// parser with room for typical arguments and a buffer for session keys, so the common case
// does not allocate.
class decide_scratch {
 public:
  decide_scratch() = default;
  decide_scratch(const decide_scratch&) = delete;
  decide_scratch& operator=(const decide_scratch&) = delete;

 private:
  friend decision decide(const subject&, const call&, int64_t, decide_scratch&);
  argument_reader args_;
  std::string session_key_;
};

// Decides one call at now_ns (steady clock in production, > 0). Thread-safe: every shard
// calls it concurrently with its own scratch. A denied or rate-limited call consumes no
// count in any counter. Never throws.
decision decide(const subject& who, const call& what, int64_t now_ns, decide_scratch& scratch);

// Gives back the counts of an allowed call the upstream never handled (connection refused,
// reset before a response, 5xx). Call at most once per decision.
void refund(const decision& allowed);

// The text after "[POLICY DENIED] ": the policy's on_deny, or a default naming the tool and
// the rule, e.g. "tool 'write_file' exceeded limit 'write_file_per_hour' (30 per hour);
// retry after 1200 ms".
std::string default_message(const decision& d);
void append_message(std::string& out, const decision& d);

}  // namespace mcpgate::policy
