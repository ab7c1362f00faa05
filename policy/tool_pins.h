#pragma once

// Pinned tool definitions: what each tool of a server said it was when the operator reviewed
// it, so that a server cannot change a tool behind the operator's back (the "rug pull").
//
// A tool's definition is its description, inputSchema, outputSchema, annotations and title,
// in canonical JSON (object keys sorted by their unescaped bytes, strings re-escaped the one
// way append_json_string writes them, numbers as written, no whitespace); its pin is the
// SHA-256 of that text. A pins file holds, per server, each tool's pin, its catalogue class and
// the definition itself for review:
//
//   {"mcpgate_pins": 1,
//    "servers": {"default": {"source": "http://127.0.0.1:3001/mcp",
//                            "tools": {"echo": {"class": "Read", "sha256": "<64 hex>",
//                                               "definition": {...}}}}}}
//
// Loaded on the control plane into an immutable server_pins per server; on the data plane
// the tools/list filter compares each listed tool with its pin and the policy gate refuses
// calls of tools whose last listed definition did not match.

#include <simdjson.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mcpgate::policy {

// The canonical JSON of any JSON text (one value). False when it is not one JSON value, when
// an object in it repeats a key (two readers would see two different definitions), or when it
// nests deeper than max_canonical_depth.
inline constexpr int max_canonical_depth = 128;
bool canonical_json(std::string_view json, std::string& out);

// The canonical definition of one tools/list entry: an object of those of its keys
// description, inputSchema, outputSchema, annotations and title that it has. False as
// canonical_json, or when the entry is not an object or repeats a key.
bool canonical_definition(simdjson::ondemand::object tool, std::string& out);
// The same from JSON text (control plane).
bool canonical_definition(std::string_view tool_json, std::string& out);

using pin_digest = std::array<unsigned char, 32>;
std::string digest_hex(const pin_digest& d);
std::optional<pin_digest> parse_digest_hex(std::string_view hex);

// The canonical JSON indented by two spaces, one member per line, for files and diffs.
std::string pretty_json(std::string_view canonical);

// One tool as a pins file records it.
struct pin_entry {
  std::string name;
  std::string cls;         // the catalogue's class ("Read", ...), for the reader; not checked
  std::string definition;  // canonical JSON
  pin_digest sha256{};     // of `definition`
};

// A pins file: per server name ("default" for the single upstream), its source and tools,
// sorted by name.
struct pins_file {
  struct server {
    std::string source;  // how the pins were taken (a URL, "stdio: ..."), for the reader
    std::vector<pin_entry> tools;
  };
  std::map<std::string, server> servers;
};

// Parses a pins file. Throws load_error naming `file` and the JSON path: unknown keys, a
// sha256 that is not the SHA-256 of its definition (an edited definition would otherwise
// pass unreviewed), a tool twice.
pins_file parse_pins_file(std::string_view text, const std::string& file);
// Reads and parses `path`; a missing file is a load_error naming it and errno.
pins_file load_pins_file(const std::string& path);
// The file's text: servers and tools sorted, definitions pretty-printed.
std::string format_pins_file(const pins_file& pins);

// A pins entry for one raw tools/list element; nullopt when it has no string name or its
// definition cannot be made canonical.
std::optional<pin_entry> pin_of(std::string_view tool_json, std::string cls);

// What happens to a listed tool whose definition no longer matches its pin.
enum class pin_change_action : uint8_t {
  hide,  // removed from tools/list, its calls denied (the default)
  deny,  // kept in tools/list, its calls denied
  log,   // kept and allowed; audited and counted only
};
// What happens to a tool the pins file does not name.
enum class unpinned_action : uint8_t { allow, hide };

std::optional<pin_change_action> parse_pin_change_action(std::string_view name);
std::optional<unpinned_action> parse_unpinned_action(std::string_view name);
std::string_view action_name(pin_change_action a);

// Counts of tools/list entries that did not match, per server, and what each tool was last
// listed as; they outlive reloads (see pin_counts_store) so the metrics never go backwards and
// a reload does not forget that a server changed a tool: the change stays refused until an
// operator accepts it.
struct pin_counts {
  std::atomic<uint64_t> hidden{0};    // changed, removed from the list
  std::atomic<uint64_t> denied{0};    // changed, listed, calls denied
  std::atomic<uint64_t> logged{0};    // changed, listed and allowed
  std::atomic<uint64_t> unpinned{0};  // not in the pins file, removed (unpinned: hide)
  std::atomic<uint64_t> calls_refused{0};

  // Control plane: the tool's slot for the last definition listed (see server_pins::seen_),
  // the same one for every generation of the server's pins.
  std::atomic<uint64_t>& last_seen(const std::string& tool);

 private:
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>> last_seen_;
};

// The process-lifetime home of every server's pin_counts (control plane; the map is read by
// the metrics renderer under its own lock).
class pin_counts_store {
 public:
  std::shared_ptr<pin_counts> for_server(const std::string& label);
  // "mcpgate_tool_pin_mismatches_total" and "mcpgate_tool_pin_refused_calls_total" in the
  // Prometheus text format; empty when no server has pins.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<pin_counts>> by_server_;
};

// A listed tool compared with its pin.
struct pin_check {
  bool keep = true;         // stays in tools/list
  bool first_seen = false;  // changed, and this definition was not the last one seen: audit it
  const pin_entry* pin = nullptr;
  pin_digest seen{};  // the listed definition's SHA-256 (zero when it was unreadable)
  bool readable = true;
};

// One server's pins as the gateway enforces them. Immutable but for what the shards learn
// from tools/list (the last definition seen of each pinned tool, relaxed atomics written only
// when a listed tool differs from what was last seen), so every shard refuses a changed tool
// once any shard has listed it.
class server_pins {
 public:
  server_pins(std::string server, std::string label, std::string file, pins_file::server pins,
              pin_change_action on_change, unpinned_action unpinned,
              std::shared_ptr<pin_counts> counts);

  const std::string& server() const { return server_; }  // the route's server ("" for one)
  const std::string& label() const { return label_; }    // its name in the pins file
  const std::string& file() const { return file_; }
  pin_change_action on_change() const { return on_change_; }
  unpinned_action unpinned() const { return unpinned_; }
  pin_counts& counts() const { return *counts_; }
  size_t size() const { return tools_.size(); }

  const pin_entry* find(std::string_view name) const;

  // Data plane: compares a tools/list entry (its name already read) with its pin, records what
  // was seen and counts it. `tool` is reset and read again.
  pin_check check_listed(std::string_view name, simdjson::ondemand::object tool,
                         std::string& scratch) const;
  // Data plane: whether a tools/call of `name` must be refused (rule "pins").
  bool refuses_call(std::string_view name) const;

 private:
  std::string server_;
  std::string label_;
  std::string file_;
  std::vector<pin_entry> tools_;  // sorted by name
  // Per tool (slots in counts_, kept across reloads): the first 8 bytes of the last definition
  // listed, with bit 0 set; 2 after an unreadable one; 0 before any since the process started.
  std::vector<std::atomic<uint64_t>*> seen_;
  pin_change_action on_change_;
  unpinned_action unpinned_;
  std::shared_ptr<pin_counts> counts_;
};

}  // namespace mcpgate::policy
