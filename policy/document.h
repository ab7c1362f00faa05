#pragma once

// The policy document: what operators write and paste from policy catalogues.
//
//   { "version": "1", "default": "allow" | "deny", "hide": ["tool", ...],
//     "all_tools": { "limits": [...] },
//     "tools": { "<name>": { "require": [...], "deny_if": [...], "approve_if": [...],
//                            "limits": [...] } } }
//
// A bare object of tool rules ({ "<name>": { ... } }) is shorthand for
// { "version": "1", "default": "allow", "tools": <it> }. Tool names are exact, case-sensitive
// and compared after JSON unescaping. Loading is control plane: every error throws load_error
// naming the file, the JSON path and the bad value; unknown keys are errors.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/condition.h"
#include "policy/limits.h"
#include "policy/load_error.h"

namespace mcpgate::policy {

struct limit_rule {
  std::string counter;
  window_unit window = window_unit::minute;
  int64_t max = 0;
  limit_scope scope = limit_scope::grant;
};

struct require_rule {
  condition check;
  std::string on_deny;  // empty: the default message
};

struct deny_rule {
  std::vector<condition> conditions;  // all must hold; empty always holds
  std::string on_deny;
};

// Who is asked to approve a held call.
enum class approval_via : uint8_t {
  operator_,  // an operator, on the admin listener (API, page, command line)
  client,     // the human at the client, by elicitation; without the capability, an operator
};
std::string_view via_name(approval_via v);  // "operator", "client"

// A call whose conditions all hold waits for a human's approval instead of running.
struct approval_rule {
  std::vector<condition> conditions;  // all must hold; empty always holds
  std::string message;                // shown to the approver; empty: a default naming the tool
  int64_t timeout_ms = 600'000;       // then the call is denied (approval_timeout)
  approval_via via = approval_via::operator_;
};

struct tool_rules {
  std::vector<require_rule> require;
  std::vector<deny_rule> deny_if;
  std::vector<approval_rule> approve_if;
  std::vector<limit_rule> limits;

  // Denied whatever the arguments: a deny_if entry without conditions.
  bool denied_unconditionally() const;
};

enum class default_verdict : uint8_t { allow, deny };

struct document {
  std::string file;  // as given to the loader, for messages
  // The first 12 hex digits of the SHA-256 of the document's text: the version an approval
  // record binds, so an approval given under one text is not taken for another's.
  std::string revision;
  default_verdict default_for_unlisted = default_verdict::allow;
  std::vector<std::string> hide;  // exact names; "*" hides every tool
  bool hide_all = false;
  std::vector<limit_rule> all_tools_limits;
  std::map<std::string, tool_rules, std::less<>> tools;

  bool hidden(std::string_view tool) const;
};

// At most this many distinct counters apply to one tool (all_tools plus its own), so a
// decision carries its reservations without allocating.
inline constexpr size_t kMaxLimitsPerTool = 8;

// Parses a policy document; `file_name` only labels errors. Throws load_error.
document parse_document(std::string_view text, std::string_view file_name);

// Reads and parses a file; the error names `path` as given, and when the file cannot be read,
// `referenced_by` (the config key that named it) and errno. Throws load_error.
document load_document(const std::filesystem::path& path,
                       const json_location* referenced_by = nullptr);

// What applies, per tool, as text for `mcpgate check`: hidden tools, the default, require
// and deny_if conditions with their messages, limits (all_tools ones included).
std::string describe(const document& doc);

}  // namespace mcpgate::policy
