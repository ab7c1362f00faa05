#include "tools/mcpgate/config.h"

#include <simdjson.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "core/child_process.h"

extern char** environ;

namespace mcpgate::tools {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string type_name(element_type t) {
  switch (t) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "something else";
}

struct reader {
  std::string file;

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw std::runtime_error(file + ": " + path + ": " + what);
  }
  std::string get_string(element e, const std::string& path) const {
    if (!e.is_string()) fail(path, "expected a string, got " + type_name(e.type()));
    return std::string(std::string_view(e.get_string().value_unsafe()));
  }
  bool get_bool(element e, const std::string& path) const {
    if (!e.is_bool()) fail(path, "expected true or false, got " + type_name(e.type()));
    return e.get_bool().value_unsafe();
  }
  int64_t get_positive(element e, const std::string& path, bool zero_ok = false) const {
    if (!e.is_int64()) fail(path, "expected a whole number, got " + type_name(e.type()));
    int64_t v = e.get_int64().value_unsafe();
    if (v < 0 || (v == 0 && !zero_ok))
      fail(path, std::string("expected a ") + (zero_ok ? "non-negative" : "positive") +
                     " number, got " + std::to_string(v));
    return v;
  }
};

void load_limits(const reader& r, element e, gateway_settings& s) {
  net::gateway_config& w = s.wire;
  net::upstream_target& up = s.upstream_defaults;
  if (!e.is_object()) r.fail("$.limits", "expected an object, got " + type_name(e.type()));
  simdjson::dom::object limits = e.get_object().value_unsafe();
  for (auto [key_view, value] : limits) {
    std::string key(key_view);
    std::string path = "$.limits." + key;
    if (key == "max_head_bytes")
      w.http.max_head = r.get_positive(value, path);
    else if (key == "max_headers")
      w.http.max_headers = r.get_positive(value, path);
    else if (key == "max_body_bytes") {
      w.http.max_body = r.get_positive(value, path);
      w.jsonrpc.max_body = w.http.max_body;
    } else if (key == "max_depth")
      w.jsonrpc.max_depth = r.get_positive(value, path);
    else if (key == "max_batch")
      w.jsonrpc.max_batch = r.get_positive(value, path);
    else if (key == "max_connections_per_shard")
      w.max_connections = r.get_positive(value, path);
    else if (key == "header_timeout_ms")
      w.header_timeout_ms = r.get_positive(value, path);
    else if (key == "idle_timeout_ms")
      w.idle_timeout_ms = r.get_positive(value, path);
    else if (key == "upstream_connect_timeout_ms")
      up.connect_timeout_ms = r.get_positive(value, path);
    else if (key == "upstream_response_timeout_ms")
      up.response_timeout_ms = r.get_positive(value, path);
    else if (key == "sse_idle_timeout_ms")
      up.sse_idle_timeout_ms = r.get_positive(value, path, true);
    else if (key == "drain_timeout_ms")
      w.drain_timeout_ms = r.get_positive(value, path, true);
    else if (key == "max_session_counters_per_identity")
      s.max_session_counters_per_identity = static_cast<size_t>(r.get_positive(value, path));
    else
      r.fail(path,
             "unknown key (known: max_head_bytes, max_headers, max_body_bytes, max_depth, "
             "max_batch, max_connections_per_shard, header_timeout_ms, idle_timeout_ms, "
             "upstream_connect_timeout_ms, upstream_response_timeout_ms, "
             "sse_idle_timeout_ms, drain_timeout_ms, max_session_counters_per_identity)");
  }
}

void load_audit(const reader& r, element e, gateway_settings& s) {
  if (e.is_string()) {
    s.audit = r.get_string(e, "$.audit");
    return;
  }
  if (!e.is_object())
    r.fail("$.audit",
           "expected a path or an object {\"path\", \"arguments\", \"fsync\", "
           "\"on_failure\", \"flush_interval_ms\"}, got " +
               type_name(e.type()));
  auto& a = s.wire.audit;
  simdjson::dom::object audit = e.get_object().value_unsafe();
  for (auto [key_view, value] : audit) {
    std::string key(key_view);
    std::string path = "$.audit." + key;
    if (key == "path") {
      s.audit = r.get_string(value, path);
    } else if (key == "arguments") {
      std::string v = r.get_string(value, path);
      if (v == "none")
        a.arguments = net::arguments_mode::none;
      else if (v == "keys")
        a.arguments = net::arguments_mode::keys;
      else if (v == "hash")
        a.arguments = net::arguments_mode::hash;
      else if (v == "full")
        a.arguments = net::arguments_mode::full;
      else
        r.fail(path, "expected \"none\", \"keys\", \"hash\" or \"full\", got \"" + v + "\"");
    } else if (key == "fsync") {
      std::string v = r.get_string(value, path);
      if (v == "none")
        a.writer.fsync = core::fsync_mode::none;
      else if (v == "interval")
        a.writer.fsync = core::fsync_mode::interval;
      else if (v == "always")
        a.writer.fsync = core::fsync_mode::always;
      else
        r.fail(path, "expected \"none\", \"interval\" or \"always\", got \"" + v + "\"");
    } else if (key == "on_failure") {
      std::string v = r.get_string(value, path);
      if (v == "fail_open")
        a.writer.on_failure = core::failure_policy::fail_open;
      else if (v == "fail_closed")
        a.writer.on_failure = core::failure_policy::fail_closed;
      else
        r.fail(path, "expected \"fail_open\" or \"fail_closed\", got \"" + v + "\"");
    } else if (key == "flush_interval_ms") {
      a.writer.flush_interval_ns = r.get_positive(value, path) * 1'000'000;
    } else {
      r.fail(path, "unknown key (known: path, arguments, fsync, on_failure, flush_interval_ms)");
    }
  }
  if (s.audit.empty()) r.fail("$.audit.path", "missing: the audit object needs a path");
}

// "upstream": {"command": [...], "env": {...}, "cwd": "...", "shared": ..., ...}
void load_stdio_upstream(const reader& r, element e, gateway_settings& s) {
  auto stdio = std::make_shared<net::stdio_upstream_config>();
  std::vector<std::pair<std::string, std::string>> env;
  simdjson::dom::object upstream = e.get_object().value_unsafe();
  for (auto [key_view, value] : upstream) {
    std::string key(key_view);
    std::string path = "$.upstream." + key;
    if (key == "command") {
      if (!value.is_array())
        r.fail(path, "expected an array of strings [\"program\", \"arg\", ...], got " +
                         type_name(value.type()));
      size_t i = 0;
      simdjson::dom::array words = value.get_array().value_unsafe();
      for (element word : words)
        stdio->command.argv.push_back(r.get_string(word, path + "[" + std::to_string(i++) + "]"));
    } else if (key == "env") {
      if (!value.is_object())
        r.fail(path, "expected an object of strings, got " + type_name(value.type()));
      simdjson::dom::object vars = value.get_object().value_unsafe();
      for (auto [name, v] : vars) {
        std::string n(name);
        if (n.empty() || n.find('=') != std::string::npos)
          r.fail(path, "expected variable names without '=', got \"" + n + "\"");
        env.emplace_back(n, r.get_string(v, path + "." + n));
      }
    } else if (key == "cwd") {
      stdio->command.cwd = r.get_string(value, path);
    } else if (key == "shared") {
      stdio->shared = r.get_bool(value, path);
    } else if (key == "max_processes") {
      stdio->max_processes = static_cast<uint32_t>(r.get_positive(value, path));
    } else if (key == "max_processes_per_identity") {
      stdio->max_processes_per_identity = static_cast<uint32_t>(r.get_positive(value, path));
    } else if (key == "session_idle_timeout_ms") {
      stdio->session_idle_timeout_ms = r.get_positive(value, path, true);
    } else if (key == "end_session_on_disconnect") {
      stdio->end_session_on_disconnect = r.get_bool(value, path);
    } else if (key == "kill_grace_ms") {
      stdio->kill_grace_ms = r.get_positive(value, path);
    } else {
      r.fail(path,
             "unknown key (known for a stdio upstream: command, env, cwd, shared, max_processes, "
             "max_processes_per_identity, session_idle_timeout_ms, end_session_on_disconnect, "
             "kill_grace_ms; an HTTP upstream is {\"url\": ...})");
    }
  }
  if (stdio->command.argv.empty() || stdio->command.argv[0].empty())
    r.fail("$.upstream.command", "missing: a stdio upstream needs the program to start");
  // A relative working directory is relative to the config file, as policy paths are.
  if (!stdio->command.cwd.empty())
    stdio->command.cwd = (std::filesystem::path(s.base_dir) / stdio->command.cwd).string();
  if (!env.empty()) {
    // The child gets the gateway's environment with these set on top.
    for (char** v = environ; *v; ++v) {
      std::string_view entry(*v);
      std::string_view name = entry.substr(0, entry.find('='));
      bool overridden = false;
      for (auto& [n, value] : env) overridden = overridden || n == name;
      if (!overridden) stdio->command.env.emplace_back(entry);
    }
    for (auto& [n, value] : env) stdio->command.env.push_back(n + "=" + value);
  }
  s.stdio = std::move(stdio);
  s.upstream = describe_command(s.stdio->command.argv);
}

// "upstream": {"url": "http://...", "forward_authorization": true}
void load_http_upstream(const reader& r, element e, gateway_settings& s) {
  simdjson::dom::object upstream = e.get_object().value_unsafe();
  for (auto [key_view, value] : upstream) {
    std::string key(key_view);
    std::string path = "$.upstream." + key;
    if (key == "url")
      s.upstream = r.get_string(value, path);
    else if (key == "forward_authorization")
      s.upstream_defaults.forward_authorization = r.get_bool(value, path);
    else
      r.fail(path, "unknown key (known for an HTTP upstream: url, forward_authorization)");
  }
  s.stdio = nullptr;
}

// An upstream object names a URL (Streamable HTTP) or a command (stdio), never both.
void load_upstream_object(const reader& r, element e, gateway_settings& s) {
  simdjson::dom::object upstream = e.get_object().value_unsafe();
  bool url = false, command = false;
  for (auto [key_view, value] : upstream) {
    url = url || key_view == "url";
    command = command || key_view == "command";
  }
  if (url && command)
    r.fail("$.upstream",
           "expected either \"url\" (Streamable HTTP) or \"command\" (stdio), got both");
  if (url)
    load_http_upstream(r, e, s);
  else
    load_stdio_upstream(r, e, s);
}

// "admin": "HOST:PORT" or {"listen": "HOST:PORT", "token_sha256": "<hex>"}
void load_admin(const reader& r, element e, gateway_settings& s) {
  if (e.is_string()) {
    s.admin = r.get_string(e, "$.admin");
    return;
  }
  if (!e.is_object())
    r.fail("$.admin", "expected \"HOST:PORT\" or an object {\"listen\", \"token_sha256\"}, got " +
                          type_name(e.type()));
  simdjson::dom::object admin = e.get_object().value_unsafe();
  for (auto [key_view, value] : admin) {
    std::string key(key_view);
    std::string path = "$.admin." + key;
    if (key == "listen") {
      s.admin = r.get_string(value, path);
    } else if (key == "token_sha256") {
      std::string hex = r.get_string(value, path);
      if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        r.fail(path,
               "expected 64 hex digits (the SHA-256 of the admin token, as `mcpgate "
               "hash-key` or `sha256sum` prints it), got \"" +
                   hex + "\"");
      s.admin_token_sha256 = hex;
    } else {
      r.fail(path, "unknown key (known: listen, token_sha256)");
    }
  }
  if (s.admin.empty()) r.fail("$.admin.listen", "missing: the admin object needs a listen address");
}

std::vector<std::string> get_strings(const reader& r, element e, const std::string& path) {
  if (!e.is_array()) r.fail(path, "expected an array of strings, got " + type_name(e.type()));
  std::vector<std::string> out;
  size_t i = 0;
  simdjson::dom::array items = e.get_array().value_unsafe();
  for (element item : items)
    out.push_back(r.get_string(item, path + "[" + std::to_string(i++) + "]"));
  return out;
}

}  // namespace

std::string describe_command(const std::vector<std::string>& argv) {
  std::string out = "stdio:";
  for (const std::string& a : argv) {
    out += ' ';
    out += a;
  }
  return out;
}

void load_config_file(const std::string& file, gateway_settings& s) {
  simdjson::padded_string text;
  if (simdjson::padded_string::load(file).get(text))
    throw std::runtime_error(file + ": cannot read the config file");
  load_config_text(std::string_view(text), file,
                   std::filesystem::absolute(file).parent_path().string(), s);
  s.config_file = file;
}

extern const std::string_view embedded_default_config;
extern const std::string_view embedded_default_dir;

void load_embedded_default(gateway_settings& s) {
  load_config_text(embedded_default_config,
                   "(embedded default) " + std::string(embedded_default_dir) + "/mcpgate.json",
                   std::string(embedded_default_dir), s);
  s.embedded_default = true;
}

void load_config_text(std::string_view text, const std::string& file, const std::string& base_dir,
                      gateway_settings& s) {
  reader r{file};
  simdjson::dom::parser parser;
  element root;
  if (auto err = parser.parse(simdjson::padded_string(text)).get(root))
    throw std::runtime_error(file + ": not valid JSON: " + simdjson::error_message(err));
  if (!root.is_object()) r.fail("$", "expected an object, got " + type_name(root.type()));
  s.base_dir = base_dir;
  simdjson::dom::object top = root.get_object().value_unsafe();
  for (auto [key_view, value] : top) {
    std::string key(key_view);
    std::string path = "$." + key;
    if (key == "listen")
      s.listen = r.get_string(value, path);
    else if (key == "upstream" && value.is_object())
      load_upstream_object(r, value, s);
    else if (key == "upstream") {
      if (!value.is_string())
        r.fail(path, "expected a URL or an object {\"url\": ...} or {\"command\": [...]}, got " +
                         type_name(value.type()));
      s.upstream = r.get_string(value, path);
      s.stdio = nullptr;
    } else if (key == "shards")
      s.shards = static_cast<unsigned>(r.get_positive(value, path));
    else if (key == "path")
      s.path = r.get_string(value, path);
    else if (key == "policy")
      s.policy = r.get_string(value, path);
    else if (key == "audit")
      load_audit(r, value, s);
    else if (key == "admin")
      load_admin(r, value, s);
    else if (key == "deny_as") {
      s.deny_as = r.get_string(value, path);
      if (s.deny_as != "result" && s.deny_as != "error")
        r.fail(path, "expected \"result\" or \"error\", got \"" + s.deny_as + "\"");
    } else if (key == "hide_denied_tools")
      s.hide_denied_tools = r.get_bool(value, path);
    else if (key == "allowed_origins") {
      s.wire.allowed_origins = get_strings(r, value, path);
    } else if (key == "allowed_hosts") {
      s.wire.allowed_hosts = get_strings(r, value, path);
      for (size_t i = 0; i < s.wire.allowed_hosts.size(); ++i) {
        const std::string& h = s.wire.allowed_hosts[i];
        if (h.empty() || h.find_first_of(" \t/,") != std::string::npos)
          r.fail(path + "[" + std::to_string(i) + "]",
                 "expected a host name or HOST:PORT, got \"" + h + "\"");
      }
    } else if (key == "identities") {
      if (!value.is_array()) r.fail(path, "expected an array, got " + type_name(value.type()));
      s.identities_json = simdjson::minify(value);
    } else if (key == "grants") {
      if (!value.is_object()) r.fail(path, "expected an object, got " + type_name(value.type()));
      s.grants_json = simdjson::minify(value);
    } else if (key == "limits")
      load_limits(r, value, s);
    else
      r.fail(path,
             "unknown key (known: listen, upstream, shards, path, policy, audit, admin, "
             "deny_as, hide_denied_tools, allowed_origins, allowed_hosts, identities, grants, "
             "limits)");
  }
}

void apply_command_line(const command_line_overrides& cl, gateway_settings& s) {
  if (cl.listen) s.listen = *cl.listen;
  if (cl.upstream && cl.upstream_command)
    throw std::invalid_argument("--upstream and --upstream-command: give one upstream, not both");
  if (cl.upstream) {
    s.upstream = *cl.upstream;
    s.stdio = nullptr;
  }
  if (cl.upstream_command) {
    core::split_result words = core::split_command_line(*cl.upstream_command);
    if (!words.error.empty())
      throw std::invalid_argument("--upstream-command: " + words.error + " in '" +
                                  *cl.upstream_command + "'");
    if (words.words.empty())
      throw std::invalid_argument("--upstream-command: expected a command, got nothing");
    // The file's other stdio settings (max_processes, env...) stay; only the command changes.
    auto stdio = s.stdio ? std::make_shared<net::stdio_upstream_config>(*s.stdio)
                         : std::make_shared<net::stdio_upstream_config>();
    stdio->command.argv = std::move(words.words);
    s.stdio = std::move(stdio);
    s.upstream = describe_command(s.stdio->command.argv);
  }
  if (cl.path) s.path = *cl.path;
  if (cl.policy) s.policy = *cl.policy;
  if (cl.audit) s.audit = *cl.audit;
  if (cl.admin) s.admin = *cl.admin;
  if (cl.shards) s.shards = *cl.shards;
}

std::shared_ptr<const net::gateway_config> resolve_config(
    const gateway_settings& s, const net::endpoint* bridge,
    std::shared_ptr<const net::gate_config> gate, std::shared_ptr<core::log_file> audit_file,
    uint64_t generation) {
  auto c = std::make_shared<net::gateway_config>(s.wire);
  c->generation = generation;
  std::string where = s.config_file.empty() ? "" : " (or " + s.config_file + ")";
  c->listen = net::parse_host_port(s.listen, "--listen" + where);
  net::upstream_target up = s.upstream_defaults;
  up.name = "default";
  if (s.stdio) {
    if (bridge) up.where = *bridge;
    up.host_header = "stdio";
    up.path = "/mcp";
    up.stdio = true;
  } else {
    net::http_url url = net::parse_http_url(s.upstream, "--upstream" + where);
    up.where = url.where;
    up.host_header = url.host_header;
    up.path = url.path;
  }
  std::string path = s.path.empty() ? up.path : s.path;
  if (path.empty() || path[0] != '/')
    throw std::invalid_argument("path: expected an absolute path starting with '/', got '" + path +
                                "'");
  c->serve_one(std::move(up), path);
  if (gate) c->gate = std::move(gate);
  c->audit.file = std::move(audit_file);
  return c;
}

namespace {

bool same_endpoint(const net::endpoint& a, const net::endpoint& b) {
  return a.addr_len == b.addr_len && std::memcmp(&a.addr, &b.addr, a.addr_len) == 0;
}

bool same_upstream(const net::upstream_target& a, const net::upstream_target& b) {
  return a.name == b.name && same_endpoint(a.where, b.where) && a.host_header == b.host_header &&
         a.path == b.path && a.stdio == b.stdio;
}

bool same_stdio(const net::stdio_upstream_config* a, const net::stdio_upstream_config* b) {
  if (!a || !b) return a == b;
  return a->command.argv == b->command.argv && a->command.env == b->command.env &&
         a->command.cwd == b->command.cwd && a->shared == b->shared &&
         a->max_processes == b->max_processes &&
         a->max_processes_per_identity == b->max_processes_per_identity &&
         a->session_idle_timeout_ms == b->session_idle_timeout_ms &&
         a->end_session_on_disconnect == b->end_session_on_disconnect &&
         a->kill_grace_ms == b->kill_grace_ms;
}

}  // namespace

std::vector<std::string> keep_restart_only(const net::gateway_config& running,
                                           const gateway_settings& started,
                                           const gateway_settings& fresh,
                                           net::gateway_config& next) {
  std::vector<std::string> changed;
  if (!same_endpoint(running.listen, next.listen)) {
    changed.push_back("listen");
    next.listen = running.listen;
  }
  bool upstreams_same = running.upstreams.size() == next.upstreams.size();
  for (size_t i = 0; upstreams_same && i < running.upstreams.size(); ++i)
    upstreams_same = same_upstream(running.upstreams[i], next.upstreams[i]);
  if (!upstreams_same || !same_stdio(started.stdio.get(), fresh.stdio.get())) {
    changed.push_back("upstream");
    next.upstreams = running.upstreams;
  }
  bool routes_same = running.routes.size() == next.routes.size();
  for (size_t i = 0; routes_same && i < running.routes.size(); ++i)
    routes_same = running.routes[i].path == next.routes[i].path &&
                  running.routes[i].upstream == next.routes[i].upstream;
  if (!routes_same) {
    changed.push_back("path");
    next.routes = running.routes;
  }
  if (started.shards != fresh.shards) changed.push_back("shards");
  if (started.admin != fresh.admin || started.admin_token_sha256 != fresh.admin_token_sha256)
    changed.push_back("admin");
  if (started.audit != fresh.audit || running.audit.arguments != next.audit.arguments ||
      running.audit.writer.fsync != next.audit.writer.fsync ||
      running.audit.writer.on_failure != next.audit.writer.on_failure ||
      running.audit.writer.flush_interval_ns != next.audit.writer.flush_interval_ns) {
    changed.push_back("audit");
    next.audit = running.audit;
  }
  if (running.http.max_body != next.http.max_body ||
      running.jsonrpc.max_depth != next.jsonrpc.max_depth ||
      running.jsonrpc.max_batch != next.jsonrpc.max_batch) {
    // Each shard's JSON-RPC extractor is sized for these at start.
    changed.push_back("limits.max_body_bytes/max_depth/max_batch");
    next.http.max_body = running.http.max_body;
    next.jsonrpc = running.jsonrpc;
  }
  if (started.max_session_counters_per_identity != fresh.max_session_counters_per_identity)
    changed.push_back("limits.max_session_counters_per_identity");
  next.session_seal_key = running.session_seal_key;  // sessions outlive reloads
  next.recv_buffers = running.recv_buffers;
  next.recv_buffer_size = running.recv_buffer_size;
  return changed;
}

}  // namespace mcpgate::tools
