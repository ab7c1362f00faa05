#pragma once

// Per-grant filtering of tools/list responses: tools hidden for the grant are removed (and,
// when the config's hide_denied_tools is on, tools its policy denies whatever the arguments),
// and, for a server with pins, tools whose definition no longer matches its pin (on_change
// "hide") or that have none (unpinned "hide").
// Everything else is copied byte for byte: the kept tools are never re-serialised.

#include <simdjson.h>

#include <cstdint>

#include <string>
#include <string_view>
#include <vector>

#include "policy/access_config.h"
#include "policy/tool_pins.h"

namespace mcpgate::policy {

// Whether `tool` must not appear in tools/list for this grant.
bool hidden_from_list(const grant_policy& grant, std::string_view tool, bool hide_denied_tools);

// Whether any tool could be removed for this grant; false lets the gateway forward
// tools/list responses untouched.
bool needs_tools_list_filter(const grant_policy& grant, bool hide_denied_tools);

enum class filter_outcome : uint8_t {
  unchanged,  // no result.tools array (e.g. a JSON-RPC error) or nothing removed: send the body
  filtered,   // `out` holds the body to send
  invalid,    // not one JSON object (or batch of them), or result.tools is malformed or repeated
};

// Per-shard state: a parser and a padded copy of the body. Reuse it.
class tools_list_scratch {
 public:
  tools_list_scratch() = default;
  tools_list_scratch(const tools_list_scratch&) = delete;
  tools_list_scratch& operator=(const tools_list_scratch&) = delete;

  // One tool object of a response being filtered.
  struct tool_span {
    size_t begin;  // offset of the tool object's '{'
    size_t end;    // one past its '}'
    bool keep;
    uint32_t array;  // which result.tools array it is in (one per response of a batch)
  };

  // A listed tool whose definition differs from its pin and from what was last seen of it:
  // the audit log gets a line. Filled by the last filter_tools_list() call.
  struct pin_notice {
    std::string tool;
    pin_digest pinned{};
    pin_digest seen{};
    bool readable = true;  // false: the definition could not be read (seen is zero)
    pin_change_action action = pin_change_action::hide;
  };
  const std::vector<pin_notice>& pin_notices() const { return notices_; }

 private:
  friend filter_outcome filter_tools_list(std::string_view, const grant_policy&, bool,
                                          tools_list_scratch&, std::string&, const server_pins*);
  simdjson::ondemand::parser parser_;
  std::string padded_;
  std::vector<tool_span> spans_;
  std::string canonical_;
  std::vector<pin_notice> notices_;
};

// Filters one JSON-RPC response body to tools/list (for SSE, one event's data), or a batch of
// responses (revision 2025-03-26), whose every result.tools is filtered. Messages without
// result.tools (errors, notifications, server requests) are left as they are. A tool whose
// "name" cannot be read as one string is removed: it could not be matched against the policy.
// With `pins`, every listed tool is also compared with its pin (server_pins::check_listed).
filter_outcome filter_tools_list(std::string_view body, const grant_policy& grant,
                                 bool hide_denied_tools, tools_list_scratch& scratch,
                                 std::string& out, const server_pins* pins = nullptr);

}  // namespace mcpgate::policy
