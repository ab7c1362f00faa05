#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/approval/registry.h"
#include "net/exchange/gateway_config.h"
#include "net/upstream/stdio/bridge.h"
#include "policy/oauth.h"
#include "policy/tool_pins.h"

namespace mcpgate::tools {

// What the command line said, kept apart so a reload can re-apply it over a re-read file.
struct command_line_overrides {
  std::optional<std::string> listen, upstream, upstream_command, path, policy, audit, admin;
  std::optional<unsigned> shards;
};

// What an upstream object sets for itself over the defaults (limits.*, top-level keys).
struct upstream_overrides {
  std::optional<bool> forward_authorization;
  std::optional<int64_t> connect_timeout_ms, response_timeout_ms, sse_idle_timeout_ms;
  std::optional<uint32_t> max_idle;
  std::optional<std::pair<std::string, std::string>> credential;  // header, value
  // `defaults` with these applied.
  net::upstream_target over(net::upstream_target defaults) const {
    if (forward_authorization) defaults.forward_authorization = *forward_authorization;
    if (connect_timeout_ms) defaults.connect_timeout_ms = *connect_timeout_ms;
    if (response_timeout_ms) defaults.response_timeout_ms = *response_timeout_ms;
    if (sse_idle_timeout_ms) defaults.sse_idle_timeout_ms = *sse_idle_timeout_ms;
    if (max_idle) defaults.max_idle = *max_idle;
    if (credential) {
      defaults.credential_header = credential->first;
      defaults.credential_value = credential->second;
    }
    return defaults;
  }
};

// An upstream's "pins": "FILE", "tofu:FILE" or {"file", "on_change", "unpinned"}.
struct pins_setting {
  std::string file;   // resolved against the config file's folder
  bool tofu = false;  // a missing file (or server in it) is taken from the server at load
  policy::pin_change_action on_change = policy::pin_change_action::hide;
  policy::unpinned_action unpinned = policy::unpinned_action::allow;
  std::string key;  // "$.upstream.pins", "$.upstreams.python.pins": for messages
};

// One of the config's "upstreams": a Streamable HTTP URL or a stdio command, at a path.
struct upstream_spec {
  std::string name;
  std::string key;  // the config key it came from: "upstreams.python", "servers.python"
  std::string url;  // empty for a stdio upstream
  std::shared_ptr<net::stdio_upstream_config> stdio;
  std::string path;  // where clients reach it
  upstream_overrides options;
  std::optional<pins_setting> pins;
};

// "federation": the endpoint serving every server of "servers" at once (net/federation/hub.h).
// On by default when there are servers; "federation": false turns it off.
struct federation_setting {
  bool enabled = true;
  std::string path = "/mcp";
  std::string separator = "__";  // between a server's name and its tool's
  uint32_t max_sessions = 4096;
  uint32_t max_sessions_per_identity = 256;
  int64_t session_idle_timeout_ms = 1'800'000;
};

// Everything the gateway runs with, after the config file and the command line are merged.
struct gateway_settings {
  std::string listen = "127.0.0.1:8080";
  std::string upstream = "http://127.0.0.1:3001/mcp";
  // The upstream as a command speaking stdio, bridged by the gateway; null when `upstream` is a
  // URL. `upstream` then describes it ("stdio: prog args") for messages.
  std::shared_ptr<net::stdio_upstream_config> stdio;
  unsigned shards = 0;  // 0: one per online CPU
  std::string path;     // empty: the upstream URL's path
  std::string policy;
  std::string audit;  // the audit log path; "-" is stdout
  std::string admin;
  std::string admin_token_sha256;  // hex; empty: no token (the admin address must be loopback)
  // "tracing": spans to an OTLP/HTTP collector (net/observe/trace.h); empty URL: off.
  std::string tracing_url;
  std::string tracing_service = "mcpgate";
  std::string config_file;        // where the settings came from, for messages
  bool embedded_default = false;  // they came from load_embedded_default()
  std::string base_dir;           // policy paths resolve relative to the config file
  std::string identities_json;    // raw JSON of the config's "identities", for the policy loader
  std::string grants_json;        // raw JSON of the config's "grants"
  std::string deny_as = "result";
  bool hide_denied_tools = true;
  size_t max_session_counters_per_identity = 256;
  net::approval_limits approvals;  // "approvals": bounds of calls held for a human
  // "oauth" with "identities_from_claims": access tokens, their key set read; null: none.
  std::shared_ptr<const policy::oauth_settings> oauth;
  // Wire settings: limits, timeouts, Host rules, the audit log's options, the session key.
  net::gateway_config wire;
  // Defaults of every upstream (limits.upstream_*_timeout_ms).
  net::upstream_target upstream_defaults;
  upstream_overrides default_options;        // the "upstream" object's own
  std::optional<pins_setting> default_pins;  // the "upstream" object's "pins"
  std::vector<upstream_spec> upstreams;      // the config's "upstreams", in file order
  federation_setting federation;
  bool upstream_given = false;  // "upstream" or a flag named the single upstream
  command_line_overrides command_line;
};

// Every top-level key a config file may have.
extern const std::array<std::string_view, 21> config_keys;

// Reads a JSON config file into `into`. Throws std::runtime_error naming the file, the key path,
// what was expected and what was found; unknown keys are errors.
void load_config_file(const std::string& file, gateway_settings& into);

// The same for a config held in memory (the embedded default): `name` stands for the file in
// messages, relative paths resolve against `base_dir`.
void load_config_text(std::string_view text, const std::string& name, const std::string& base_dir,
                      gateway_settings& into);

// The configuration the gateway serves when started without --config, --upstream or
// --upstream-command: examples/python-interpreter/mcpgate.json, compiled in.
void load_embedded_default(gateway_settings& into);

// "stdio: prog arg ..." for messages.
std::string describe_command(const std::vector<std::string>& argv);

// Flags override the config file.
void apply_command_line(const command_line_overrides& cl, gateway_settings& into);

// Every upstream the settings serve, in order: the single one ("default", when served) and then
// the named ones, each with how to reach it directly (a URL, or the stdio command) and its pins.
struct served_upstream {
  std::string name;
  std::string url;              // empty for stdio
  core::spawn_options command;  // argv empty for HTTP
  const pins_setting* pins;     // null: not pinned
};
std::vector<served_upstream> served_upstreams(const gateway_settings& s);

// The servers the federated endpoint serves ("servers", in file order); empty when it is off.
std::vector<const upstream_spec*> federated_servers(const gateway_settings& s);
// The name the federated endpoint's hub has among the upstreams (and in bridges, its socket).
inline constexpr std::string_view federation_name = "federation";

// The configuration generation the settings describe: addresses resolved, the upstream (a
// stdio one reached through the bridge's socket, `bridge`) and its route, the gate and the
// audit file. Throws std::invalid_argument naming the flag or key.
std::shared_ptr<const net::gateway_config> resolve_config(
    const gateway_settings& s, const std::map<std::string, net::endpoint>& bridges,
    std::shared_ptr<const net::gate_config> gate, std::shared_ptr<core::log_file> audit_file,
    uint64_t generation, std::shared_ptr<net::trace_exporter> tracing = nullptr);

// The exporter the settings' "tracing" asks for (its thread starts now), or null. Throws
// naming the key.
std::shared_ptr<net::trace_exporter> start_tracing(const gateway_settings& s);

// Whether the single-upstream shorthand ("upstream", --upstream, --upstream-command, or the
// default when no "upstreams" are named) serves an upstream named "default".
bool serves_default_upstream(const gateway_settings& s);

// A reload cannot move the listener, the upstreams, the admin listener, the audit file or the
// shards' buffers: where `next` (built from `fresh`) differs from the running generation in
// those, it takes the running value back. Returns the config keys that changed so.
std::vector<std::string> keep_restart_only(const net::gateway_config& running,
                                           const gateway_settings& started,
                                           const gateway_settings& fresh,
                                           net::gateway_config& next);

}  // namespace mcpgate::tools
