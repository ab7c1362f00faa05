#pragma once

// Risk classification of an MCP server's tools, for `mcpgate catalogue`, and the three things
// written from it: the operator's summary, the machine-readable JSON and a starter policy in
// mcpgate's policy format. Pure functions: no I/O, so every rule is testable on literals.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::tools {

// Ordered from least to most dangerous; the summary lists the classes in reverse.
enum class risk_class : std::uint8_t { read, write, execute, destructive, financial };

// "Read", "Write", "Execute", "Destructive", "Financial".
std::string_view class_name(risk_class c);

// The MCP tool annotations (2025-03-26 and later) that bear on risk; absent stays nullopt,
// which is not the same as false (the spec's defaults apply then).
struct tool_annotations {
  std::optional<bool> read_only;    // readOnlyHint
  std::optional<bool> destructive;  // destructiveHint
  std::optional<bool> idempotent;   // idempotentHint
  std::optional<bool> open_world;   // openWorldHint
};

// One entry of a tools/list result, as much of it as classification reads.
struct tool_info {
  std::string name;
  std::string description;
  std::string input_schema_json;  // minified JSON text; "{}" when the tool published none
  tool_annotations annotations;
};

// Parses one element of tools/list's `tools` array. Returns nullopt when it is not an object
// with a string `name` (the caller reports the server as broken).
std::optional<tool_info> parse_tool(std::string_view tool_json);

struct classification {
  risk_class cls = risk_class::write;
  // Which evidence decided, e.g. `annotations: readOnlyHint true` or `name verb "clear"`.
  std::string reason;
  // True when the annotations decided the class.
  bool from_annotations = false;
  // Set when the annotations and the name/description/schema point to different classes; the
  // annotations win, and this says what the text suggested.
  std::string disagreement;
  // Set when the name or description says the tool reveals secrets or the environment
  // (get-env, print_env, "returns the API key"): why. The starter policy denies such a tool
  // whatever its class.
  std::string sensitive;
  // Argument checks the input schema makes obvious, as deny_if entries of the starter policy:
  // a path argument containing "..", an amount over 100.
  struct argument_check {
    std::string argument;  // the property
    std::string op;        // "contains", "gt"
    std::string value;     // JSON text
    std::string message;
  };
  std::vector<argument_check> argument_checks;
};

// Classifies a tool. Annotations decide when they state a hint: readOnlyHint true is Read;
// a tool that is not read-only is Destructive unless destructiveHint is false (the spec's
// default for destructiveHint is true), and Write when it is false, refined to Execute or
// Financial when the text says so (annotations cannot express either). Without hints the
// name decides (its leading verb, then any verb in it, most dangerous first), then the
// description (its first word, then any verb in its first sentence), then the input schema's
// property names (code, command: Execute; amount, currency: Financial); with no evidence at
// all the tool is assumed to change state (Write).
classification classify_tool(const tool_info& tool);

struct catalogued_tool {
  tool_info tool;
  classification result;
};

struct server_catalogue {
  std::string server_name;
  std::string server_version;
  std::string protocol_version;
  std::string source;  // how it was reached: the URL, or the stdio command line
  std::vector<catalogued_tool> tools;
};

// Classifies every tool, keeping the server's order.
server_catalogue make_catalogue(std::string server_name, std::string server_version,
                                std::string protocol_version, std::string source,
                                std::vector<tool_info> tools);

struct class_counts {
  std::size_t read = 0, write = 0, execute = 0, destructive = 0, financial = 0;
  std::size_t total() const { return read + write + execute + destructive + financial; }
  // Tools that can modify or destroy data: everything but Read.
  std::size_t modifying() const { return write + execute + destructive + financial; }
};

class_counts count_classes(const server_catalogue& c);

enum class risk_level : std::uint8_t { low, medium, high, critical };

// The rule, as printed: MCP gives a server no way to declare limits of its own, so every
// destructive or financial tool is one "with no built-in limits".
//   Critical: at least one Destructive or Financial tool.
//   High:     otherwise, at least one Execute tool.
//   Medium:   otherwise, at least one Write tool.
//   Low:      every tool is Read (or there are none).
risk_level assess_risk(const class_counts& counts);
std::string_view risk_level_name(risk_level level);  // "Low" ... "Critical"
// Why this level applies, as a clause without a final full stop.
std::string risk_rule(risk_level level);

// The starter policy's limits (the catalogue's defaults).
struct starter_limits {
  std::int64_t write_per_hour = 30;   // Write and Execute tools, per grant per hour
  std::int64_t read_per_minute = 60;  // Read tools, per grant per minute
};

// The text an operator reads: the headline ("10 tools. 5 can modify or destroy data. ..."),
// the risk level and its rule, the tools of each class with the reason, disagreements, and
// what the starter policy does per class.
std::string format_summary(const server_catalogue& c, const starter_limits& limits);

// The same as one JSON object (see README, "mcpgate catalogue").
std::string format_json(const server_catalogue& c, const starter_limits& limits);

// A policy document in mcpgate's format (README, "Policy reference") with `default: deny`,
// so a tool the catalogue did not see stays denied until it is classified: Destructive and
// Financial tools denied with "Blocked by default. Requires approval.", Write and Execute
// tools limited by "<tool>_per_hour", Read tools by "<tool>_per_minute", all per grant.
std::string format_policy(const server_catalogue& c, const starter_limits& limits);

}  // namespace mcpgate::tools
