#include "tools/mcpgate/config.h"

#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <fstream>

#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "core/child_process.h"
#include "policy/load_error.h"
#include "tools/mcpgate/file_write.h"
#include "tools/mcpgate/jwks_source.h"

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

// "pins": "FILE" | "tofu:FILE" | {"file": "FILE" | "tofu:FILE", "on_change", "unpinned"}
pins_setting load_pins_setting(const reader& r, element e, const std::string& at,
                               const std::string& base_dir) {
  pins_setting p;
  p.key = at;
  std::string file;
  if (e.is_string()) {
    file = r.get_string(e, at);
  } else if (e.is_object()) {
    simdjson::dom::object o = e.get_object().value_unsafe();
    for (auto [key_view, value] : o) {
      std::string key(key_view);
      std::string path = at + "." + key;
      if (key == "file") {
        file = r.get_string(value, path);
      } else if (key == "on_change") {
        std::string v = r.get_string(value, path);
        auto a = policy::parse_pin_change_action(v);
        if (!a) r.fail(path, "expected \"hide\", \"deny\" or \"log\", got \"" + v + "\"");
        p.on_change = *a;
      } else if (key == "unpinned") {
        std::string v = r.get_string(value, path);
        auto a = policy::parse_unpinned_action(v);
        if (!a) r.fail(path, "expected \"allow\" or \"hide\", got \"" + v + "\"");
        p.unpinned = *a;
      } else {
        r.fail(path, "unknown key (known: file, on_change, unpinned)");
      }
    }
    if (file.empty()) r.fail(at + ".file", "missing: the pins object needs a file");
  } else {
    r.fail(at,
           "expected a pins file name, \"tofu:FILE\", or an object {\"file\", "
           "\"on_change\", \"unpinned\"}, got " +
               type_name(e.type()));
  }
  if (file.rfind("tofu:", 0) == 0) {
    p.tofu = true;
    file = file.substr(5);
  }
  if (file.empty())
    r.fail(at, "expected a pins file name, got \"" + std::string(p.tofu ? "tofu:" : "") + "\"");
  p.file = (std::filesystem::path(base_dir) / file).lexically_normal().string();
  return p;
}

// "credential": {"header": "Authorization", "value": "Bearer ..."} or {"header": ..., "env":
// "VAR"}: what the gateway presents to the upstream (never the client's token).
std::pair<std::string, std::string> load_credential(const reader& r, element e,
                                                    const std::string& at) {
  if (!e.is_object())
    r.fail(at, "expected an object {\"header\", \"value\"} or {\"header\", \"env\"}, got " +
                   type_name(e.type()));
  std::string header, value, env;
  bool has_value = false;
  simdjson::dom::object o = e.get_object().value_unsafe();
  for (auto [key_view, v] : o) {
    std::string key(key_view);
    std::string path = at + "." + key;
    if (key == "header") {
      header = r.get_string(v, path);
      if (header.empty() || header.find_first_of(" \t\r\n:()<>@,;\\\"/[]?={}") != std::string::npos)
        r.fail(path, "expected a header name (a token, such as \"Authorization\"), got \"" +
                         header + "\"");
    } else if (key == "value") {
      value = r.get_string(v, path);  // not echoed in errors: a secret
      has_value = true;
    } else if (key == "env") {
      env = r.get_string(v, path);
    } else {
      r.fail(path, "unknown key (known: header, value, env)");
    }
  }
  if (header.empty()) r.fail(at + ".header", "missing: the header the upstream reads");
  if (has_value == !env.empty())
    r.fail(at, "expected exactly one of \"value\" and \"env\" (the variable holding it)");
  if (!env.empty()) {
    const char* from = std::getenv(env.c_str());
    if (!from || !*from)
      r.fail(at + ".env", "the environment variable " + env + " is not set (or empty)");
    value = from;
  }
  if (value.empty() || value.find_first_of("\r\n") != std::string::npos ||
      value.find('\0') != std::string::npos)
    r.fail(at, "the credential's value is empty or holds a line break");
  return {header, value};
}

// The options every upstream takes, HTTP or stdio, in its own object or in a server's entry.
// False when `key` is not one of them.
bool load_upstream_option(const reader& r, const std::string& key, element value,
                          const std::string& path, const std::string& base_dir,
                          upstream_spec& spec) {
  upstream_overrides& o = spec.options;
  if (key == "forward_authorization") {
    o.forward_authorization = r.get_bool(value, path);
  } else if (key == "connect_timeout_ms") {
    o.connect_timeout_ms = r.get_positive(value, path);
  } else if (key == "response_timeout_ms") {
    o.response_timeout_ms = r.get_positive(value, path);
  } else if (key == "sse_idle_timeout_ms") {
    o.sse_idle_timeout_ms = r.get_positive(value, path, true);
  } else if (key == "max_idle_connections") {
    o.max_idle = static_cast<uint32_t>(r.get_positive(value, path, true));
  } else if (key == "pins") {
    spec.pins = load_pins_setting(r, value, path, base_dir);
  } else if (key == "credential") {
    o.credential = load_credential(r, value, path);
  } else {
    return false;
  }
  return true;
}

constexpr const char* upstream_option_keys =
    "forward_authorization, connect_timeout_ms, response_timeout_ms, sse_idle_timeout_ms, "
    "max_idle_connections, pins, credential";

// An upstream object: {"url": "http://..."} (Streamable HTTP) or {"command": [...]} (stdio),
// with the options both share (timeouts, pool, forward_authorization) and, for a named one of
// "upstreams", its "path". `at` is its JSON path ("$.upstream", "$.upstreams.python").
void load_upstream_spec(const reader& r, element e, const std::string& at,
                        const std::string& base_dir, bool named, upstream_spec& spec) {
  simdjson::dom::object upstream = e.get_object().value_unsafe();
  bool url = false, command = false;
  for (auto [key_view, value] : upstream) {
    url = url || key_view == "url";
    command = command || key_view == "command";
  }
  if (url && command)
    r.fail(at, "expected either \"url\" (Streamable HTTP) or \"command\" (stdio), got both");
  // Without a url it is a stdio upstream, which says what it lacks below.
  std::shared_ptr<net::stdio_upstream_config> stdio;
  if (!url) stdio = std::make_shared<net::stdio_upstream_config>();
  std::vector<std::pair<std::string, std::string>> env;
  for (auto [key_view, value] : upstream) {
    std::string key(key_view);
    std::string path = at + "." + key;
    if (key == "url") {
      spec.url = r.get_string(value, path);
    } else if (key == "path" && named) {
      spec.path = r.get_string(value, path);
    } else if (load_upstream_option(r, key, value, path, base_dir, spec)) {
    } else if (stdio && key == "command") {
      if (!value.is_array())
        r.fail(path, "expected an array of strings [\"program\", \"arg\", ...], got " +
                         type_name(value.type()));
      size_t i = 0;
      simdjson::dom::array words = value.get_array().value_unsafe();
      for (element word : words)
        stdio->command.argv.push_back(r.get_string(word, path + "[" + std::to_string(i++) + "]"));
    } else if (stdio && key == "env") {
      if (!value.is_object())
        r.fail(path, "expected an object of strings, got " + type_name(value.type()));
      simdjson::dom::object vars = value.get_object().value_unsafe();
      for (auto [name, v] : vars) {
        std::string n(name);
        if (n.empty() || n.find('=') != std::string::npos)
          r.fail(path, "expected variable names without '=', got \"" + n + "\"");
        env.emplace_back(n, r.get_string(v, path + "." + n));
      }
    } else if (stdio && key == "cwd") {
      stdio->command.cwd = r.get_string(value, path);
    } else if (stdio && key == "shared") {
      stdio->shared = r.get_bool(value, path);
    } else if (stdio && key == "max_processes") {
      stdio->max_processes = static_cast<uint32_t>(r.get_positive(value, path));
    } else if (stdio && key == "max_processes_per_identity") {
      stdio->max_processes_per_identity = static_cast<uint32_t>(r.get_positive(value, path));
    } else if (stdio && key == "session_idle_timeout_ms") {
      stdio->session_idle_timeout_ms = r.get_positive(value, path, true);
    } else if (stdio && key == "end_session_on_disconnect") {
      stdio->end_session_on_disconnect = r.get_bool(value, path);
    } else if (stdio && key == "kill_grace_ms") {
      stdio->kill_grace_ms = r.get_positive(value, path);
    } else {
      std::string common = std::string(named ? "path, " : "") + upstream_option_keys;
      r.fail(path, stdio ? "unknown key (known for a stdio upstream: command, env, cwd, shared, "
                           "max_processes, max_processes_per_identity, session_idle_timeout_ms, "
                           "end_session_on_disconnect, kill_grace_ms, " +
                               common + ")"
                         : "unknown key (known for an HTTP upstream: url, " + common + ")");
    }
  }
  if (!stdio) return;
  if (spec.options.credential)
    r.fail(at + ".credential",
           "applies to an HTTP upstream; give a stdio server its credentials in \"env\"");
  if (stdio->command.argv.empty() || stdio->command.argv[0].empty())
    r.fail(at + ".command",
           "missing: a stdio upstream needs the program to start (an HTTP upstream has \"url\")");
  // A relative working directory is relative to the config file, as policy paths are.
  if (!stdio->command.cwd.empty())
    stdio->command.cwd = (std::filesystem::path(base_dir) / stdio->command.cwd).string();
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
  spec.stdio = std::move(stdio);
}

// A named upstream's name, path and uniqueness, then it joins the list. `at` is its JSON path.
void add_named_upstream(const reader& r, const std::string& at, upstream_spec spec,
                        gateway_settings& s) {
  if (spec.path.empty()) spec.path = "/mcp/" + spec.name;
  if (spec.path[0] != '/')
    r.fail(at + ".path", "expected an absolute path starting with '/', got \"" + spec.path + "\"");
  for (const upstream_spec& other : s.upstreams) {
    if (other.name == spec.name)
      r.fail(at, "\"" + spec.name + "\" is also " + other.key + "; a name is one upstream's");
    if (other.path == spec.path)
      r.fail(at + ".path",
             "\"" + spec.path + "\" is also the path of upstream \"" + other.name + "\"");
  }
  s.upstreams.push_back(std::move(spec));
}

// The name of a named upstream or server: lowercase letters, digits, '-'; "default" is taken.
void check_upstream_name(const reader& r, const std::string& at, const std::string& name) {
  if (name.empty() ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
    r.fail(at, "expected a name of lowercase letters, digits and '-', got \"" + name + "\"");
  if (name == "default") r.fail(at, "\"default\" is the name of the \"upstream\" key's upstream");
  if (name == federation_name)
    r.fail(at, "\"federation\" is the name of the federated endpoint (\"federation\" key)");
}

// The entries of "upstreams" or "servers" (`section`): each a name and an object that
// `load_entry(at, object, spec)` reads into the spec, which then joins the upstreams.
template <typename LoadEntry>
void load_named_entries(const reader& r, element e, const std::string& section,
                        std::string_view expected_entry, gateway_settings& s,
                        LoadEntry load_entry) {
  if (!e.is_object())
    r.fail("$." + section,
           "expected an object of named " + section + ", got " + type_name(e.type()));
  simdjson::dom::object named = e.get_object().value_unsafe();
  for (auto [key_view, value] : named) {
    std::string name(key_view);
    std::string at = "$." + section + "." + name;
    check_upstream_name(r, at, name);
    if (!value.is_object())
      r.fail(at, "expected an object " + std::string(expected_entry) + ", got " +
                     type_name(value.type()));
    upstream_spec spec;
    spec.name = name;
    spec.key = section + "." + name;
    load_entry(at, value, spec);
    add_named_upstream(r, at, std::move(spec), s);
  }
}

// "upstreams": {"<name>": {upstream object, "path": "/mcp/<name>"}, ...}
void load_named_upstreams(const reader& r, element e, gateway_settings& s) {
  load_named_entries(r, e, "upstreams", "{\"url\": ...} or {\"command\": [...]}", s,
                     [&](const std::string& at, element value, upstream_spec& spec) {
                       load_upstream_spec(r, value, at, s.base_dir, true, spec);
                     });
}

// "servers": {"<name>": {"upstream": "http://..." | {upstream object}, "path": ..., options}}:
// the same named upstreams in the shape of issue 15, the server's options beside its upstream.
void load_servers(const reader& r, element e, gateway_settings& s) {
  load_named_entries(
      r, e, "servers", "{\"upstream\": \"http://...\" or {\"command\": [...]}}", s,
      [&](const std::string& at, element value, upstream_spec& spec) {
        bool has_upstream = false;
        simdjson::dom::object server = value.get_object().value_unsafe();
        for (auto [k, v] : server) {
          std::string key(k);
          std::string path = at + "." + key;
          if (key == "upstream") {
            has_upstream = true;
            if (v.is_string()) {
              spec.url = r.get_string(v, path);
            } else if (v.is_object()) {
              load_upstream_spec(r, v, path, s.base_dir, false, spec);
            } else {
              r.fail(path,
                     "expected a URL or an object {\"url\": ...} or {\"command\": [...]}, got " +
                         type_name(v.type()));
            }
          } else if (key == "path") {
            spec.path = r.get_string(v, path);
          } else if (!load_upstream_option(r, key, v, path, s.base_dir, spec)) {
            r.fail(path, std::string("unknown key (known for a server: upstream, path, ") +
                             upstream_option_keys + ")");
          }
        }
        if (!has_upstream)
          r.fail(at + ".upstream",
                 "missing: a server needs its upstream, a URL or {\"command\": [...]} for stdio");
      });
}

// "federation": false | {"path": "/mcp", "separator": "__", "max_sessions": N,
//                        "max_sessions_per_identity": N, "session_idle_timeout_ms": N}
void load_federation(const reader& r, element e, gateway_settings& s) {
  if (e.is_bool()) {
    s.federation.enabled = e.get_bool().value_unsafe();
    return;
  }
  if (!e.is_object())
    r.fail("$.federation",
           "expected false or an object {\"path\", \"separator\", "
           "\"max_sessions\", \"max_sessions_per_identity\"}, got " +
               type_name(e.type()));
  simdjson::dom::object federation = e.get_object().value_unsafe();
  for (auto [key_view, value] : federation) {
    std::string key(key_view);
    std::string path = "$.federation." + key;
    if (key == "path") {
      s.federation.path = r.get_string(value, path);
      if (s.federation.path.empty() || s.federation.path[0] != '/')
        r.fail(path,
               "expected an absolute path starting with '/', got \"" + s.federation.path + "\"");
    } else if (key == "separator") {
      std::string sep = r.get_string(value, path);
      // A server's name is lowercase letters, digits and '-': a separator with another
      // character splits "<server><separator><tool>" in one place only, so no two servers'
      // tools can take the same prefixed name.
      if (sep.empty() || sep.size() > 8 ||
          sep.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos)
        r.fail(path,
               "expected 1 to 8 characters with one that a server's name cannot have (not a "
               "lowercase letter, digit or '-'), such as \"__\" or \".\", got \"" +
                   sep + "\"");
      if (sep.find_first_of(" \t\r\n\"\\/") != std::string::npos)
        r.fail(path, "expected no whitespace, quote, backslash or '/', got \"" + sep + "\"");
      s.federation.separator = sep;
    } else if (key == "max_sessions") {
      s.federation.max_sessions = static_cast<uint32_t>(r.get_positive(value, path));
    } else if (key == "max_sessions_per_identity") {
      s.federation.max_sessions_per_identity = static_cast<uint32_t>(r.get_positive(value, path));
    } else if (key == "session_idle_timeout_ms") {
      s.federation.session_idle_timeout_ms = r.get_positive(value, path);
    } else {
      r.fail(path,
             "unknown key (known: path, separator, max_sessions, max_sessions_per_identity, "
             "session_idle_timeout_ms)");
    }
  }
}

// "approvals": {"max_pending": N, "max_pending_per_identity": N, "max_standing": N,
//               "max_standing_ms": N}: the bounds of calls held for a human (approve_if).
void load_approvals(const reader& r, element e, gateway_settings& s) {
  if (!e.is_object())
    r.fail("$.approvals",
           "expected an object {\"max_pending\", \"max_pending_per_identity\", "
           "\"max_standing\", \"max_standing_ms\"}, got " +
               type_name(e.type()));
  simdjson::dom::object approvals = e.get_object().value_unsafe();
  for (auto [key_view, value] : approvals) {
    std::string key(key_view);
    std::string path = "$.approvals." + key;
    if (key == "max_pending")
      s.approvals.max_pending = static_cast<size_t>(r.get_positive(value, path));
    else if (key == "max_pending_per_identity")
      s.approvals.max_pending_per_identity = static_cast<size_t>(r.get_positive(value, path));
    else if (key == "max_standing")
      s.approvals.max_standing = static_cast<size_t>(r.get_positive(value, path));
    else if (key == "max_standing_ms")
      s.approvals.max_standing_ms = r.get_positive(value, path);
    else
      r.fail(path,
             "unknown key (known: max_pending, max_pending_per_identity, max_standing, "
             "max_standing_ms)");
  }
}

// "tracing": {"otlp_http": "http://HOST:PORT/v1/traces", "service_name": "...",
//              "flush_interval_ms": 200}
void load_tracing(const reader& r, element e, gateway_settings& s) {
  if (!e.is_object())
    r.fail("$.tracing",
           "expected an object {\"otlp_http\": \"http://...\"}, got " + type_name(e.type()));
  simdjson::dom::object tracing = e.get_object().value_unsafe();
  for (auto [key_view, value] : tracing) {
    std::string key(key_view);
    std::string path = "$.tracing." + key;
    if (key == "otlp_http") {
      s.tracing_url = r.get_string(value, path);
      try {
        net::parse_http_url(s.tracing_url, path);
      } catch (const std::exception& ex) {
        throw std::runtime_error(r.file + ": " + ex.what());
      }
    } else if (key == "service_name") {
      s.tracing_service = r.get_string(value, path);
    } else if (key == "flush_interval_ms") {
      s.wire.trace_flush_ns = r.get_positive(value, path) * 1'000'000;
    } else {
      r.fail(path, "unknown key (known: otlp_http, service_name, flush_interval_ms)");
    }
  }
  if (s.tracing_url.empty())
    r.fail("$.tracing.otlp_http", "missing: the collector's URL, http://HOST:PORT/v1/traces");
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

// "oauth": {"issuer", "jwks": FILE or http://URL, "audience": ... , "resource", "scopes_supported",
//           "required_scopes", "clock_skew_s", "max_identities"}
// "identities_from_claims": {"name": "sub", "grant_from": {"claim": "groups",
//                            "map": {"<value>": "<grant>"}, "default": "<grant>"}}
void load_oauth(const reader& r, simdjson::dom::object top, gateway_settings& s) {
  element oauth_value, claims_value;
  bool has_oauth = top["oauth"].get(oauth_value) == simdjson::SUCCESS;
  bool has_claims = top["identities_from_claims"].get(claims_value) == simdjson::SUCCESS;
  if (!has_oauth) {
    if (has_claims)
      r.fail("$.identities_from_claims", "applies to access tokens: configure \"oauth\" too");
    s.oauth = nullptr;
    return;
  }
  if (!oauth_value.is_object())
    r.fail("$.oauth",
           "expected an object {\"issuer\", \"jwks\", ...}, got " + type_name(oauth_value.type()));
  auto o = std::make_shared<policy::oauth_settings>();
  std::string jwks;
  int64_t min_refresh_s = 30;
  simdjson::dom::object oauth = oauth_value.get_object().value_unsafe();
  for (auto [key_view, value] : oauth) {
    std::string key(key_view);
    std::string path = "$.oauth." + key;
    if (key == "issuer") {
      o->rules.issuer = r.get_string(value, path);
    } else if (key == "jwks") {
      jwks = r.get_string(value, path);
    } else if (key == "audience") {
      o->rules.audiences = value.is_string() ? std::vector<std::string>{r.get_string(value, path)}
                                             : get_strings(r, value, path);
    } else if (key == "resource") {
      o->resource = r.get_string(value, path);
      if (o->resource.rfind("http://", 0) != 0 && o->resource.rfind("https://", 0) != 0)
        r.fail(path,
               "expected the endpoint's URL, http://HOST[:PORT]/PATH, got \"" + o->resource + "\"");
    } else if (key == "scopes_supported") {
      o->scopes_supported = get_strings(r, value, path);
    } else if (key == "required_scopes") {
      o->required_scopes = get_strings(r, value, path);
    } else if (key == "clock_skew_s") {
      o->rules.clock_skew_s = r.get_positive(value, path, true);
      if (o->rules.clock_skew_s > 600) r.fail(path, "expected at most 600 (ten minutes)");
    } else if (key == "max_identities") {
      o->max_identities = static_cast<size_t>(r.get_positive(value, path));
    } else if (key == "jwks_ca") {
      std::filesystem::path ca = r.get_string(value, path);
      if (ca.is_relative() && !s.base_dir.empty()) ca = std::filesystem::path(s.base_dir) / ca;
      if (!std::filesystem::exists(ca))
        r.fail(path, "no such file: " + ca.string() + " (a PEM file of CA certificates)");
      o->jwks_ca = ca.string();
    } else if (key == "jwks_min_refresh_s") {
      min_refresh_s = r.get_positive(value, path, true);
      if (min_refresh_s > 86'400) r.fail(path, "expected at most 86400 (a day)");
    } else {
      r.fail(path,
             "unknown key (known: issuer, jwks, audience, resource, scopes_supported, "
             "required_scopes, clock_skew_s, max_identities, jwks_ca, jwks_min_refresh_s)");
    }
  }
  if (o->rules.issuer.empty())
    r.fail("$.oauth.issuer", "missing: the authorization server's issuer URL");
  if (jwks.empty())
    r.fail("$.oauth.jwks", "missing: the issuer's key set, a file or an http:// URL");
  if (o->rules.audiences.empty() && !o->resource.empty()) o->rules.audiences.push_back(o->resource);

  if (!has_claims)
    r.fail("$.identities_from_claims",
           "missing: with \"oauth\", say how a token names its identity and grant, "
           "{\"name\": \"sub\", \"grant_from\": {\"claim\": \"groups\", \"map\": {...}}}");
  if (!claims_value.is_object())
    r.fail("$.identities_from_claims",
           "expected an object {\"name\", \"grant_from\"}, got " + type_name(claims_value.type()));
  simdjson::dom::object claims = claims_value.get_object().value_unsafe();
  for (auto [key_view, value] : claims) {
    std::string key(key_view);
    std::string path = "$.identities_from_claims." + key;
    if (key == "name") {
      o->rules.name_claim = r.get_string(value, path);
    } else if (key == "grant_from") {
      if (!value.is_object())
        r.fail(path, "expected an object {\"claim\", \"map\", \"default\"}, got " +
                         type_name(value.type()));
      simdjson::dom::object from = value.get_object().value_unsafe();
      for (auto [k_view, v] : from) {
        std::string k(k_view);
        std::string p = path + "." + k;
        if (k == "claim") {
          o->rules.group_claim = r.get_string(v, p);
        } else if (k == "default") {
          o->default_grant = r.get_string(v, p);
        } else if (k == "map") {
          if (!v.is_object()) r.fail(p, "expected an object {\"<claim value>\": \"<grant>\"}");
          simdjson::dom::object map = v.get_object().value_unsafe();
          for (auto [value_view, grant] : map)
            o->group_grants.emplace_back(std::string(value_view),
                                         r.get_string(grant, p + "." + std::string(value_view)));
        } else {
          r.fail(p, "unknown key (known: claim, map, default)");
        }
      }
    } else {
      r.fail(path, "unknown key (known: name, grant_from)");
    }
  }
  if (o->group_grants.empty() && o->default_grant.empty())
    r.fail("$.identities_from_claims.grant_from",
           "missing: a \"map\" from claim values to grants, or a \"default\" grant");
  if (!o->group_grants.empty() && o->rules.group_claim.empty())
    r.fail("$.identities_from_claims.grant_from.claim", "missing: the claim \"map\" reads");

  // The key set: a file (relative to the config) or an http:// URL, read now.
  std::shared_ptr<const policy::jwks> keys;
  try {
    keys = policy::jwks::parse(read_key_set(jwks, s.base_dir, o->jwks_ca), jwks);
  } catch (const std::exception& e) {
    r.fail("$.oauth.jwks", e.what());
  }
  if (keys->size() == 0)
    r.fail("$.oauth.jwks", jwks + " holds no RS256, ES256 or EdDSA key to verify with");
  o->keys = std::make_shared<policy::key_source>(std::move(keys), min_refresh_s);
  o->jwks_source = jwks;
  s.oauth = std::move(o);
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
extern const std::string_view embedded_default_policy;
extern const std::string_view embedded_default_server;

namespace {

// Where the embedded default's files live: $XDG_RUNTIME_DIR/mcpgate-default, else
// /tmp/mcpgate-default-<uid>; a directory of this user's only (0700), refused when it is
// anything else (a symlink or another user's directory planted in /tmp).
std::string embedded_default_home() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  std::string dir = runtime && *runtime ? std::string(runtime) + "/mcpgate-default"
                                        : "/tmp/mcpgate-default-" + std::to_string(::getuid());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("(embedded default): cannot create " + dir + ": " +
                             std::strerror(errno));
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::getuid() ||
      (st.st_mode & 077) != 0)
    throw std::runtime_error("(embedded default): " + dir +
                             " is not a directory of this user's alone (mode 0700); remove it");
  return dir;
}

}  // namespace

void load_embedded_default(gateway_settings& s) {
  std::string dir = embedded_default_home();
  for (auto [name, text] : {std::pair{"/policy.json", embedded_default_policy},
                            std::pair{"/python_interpreter_server.py", embedded_default_server}})
    if (auto error = write_file_atomically(dir + name, std::string(text), "(embedded default)"))
      throw std::runtime_error(*error);
  load_config_text(embedded_default_config, "(embedded default) " + dir + "/mcpgate.json", dir, s);
  s.embedded_default = true;
}

const std::array<std::string_view, 21> config_keys = {"listen",
                                                      "upstream",
                                                      "shards",
                                                      "path",
                                                      "policy",
                                                      "audit",
                                                      "admin",
                                                      "deny_as",
                                                      "hide_denied_tools",
                                                      "allowed_origins",
                                                      "allowed_hosts",
                                                      "identities",
                                                      "grants",
                                                      "limits",
                                                      "upstreams",
                                                      "servers",
                                                      "federation",
                                                      "tracing",
                                                      "approvals",
                                                      "oauth",
                                                      "identities_from_claims"};

std::shared_ptr<net::trace_exporter> start_tracing(const gateway_settings& s) {
  if (s.tracing_url.empty()) return nullptr;
  net::http_url url = net::parse_http_url(s.tracing_url, "$.tracing.otlp_http");
  net::trace_export_settings t;
  t.collector = url.where;
  t.host_header = url.host_header;
  t.path = url.path;
  t.service_name = s.tracing_service;
  return std::make_shared<net::trace_exporter>(std::move(t));
}

void load_config_text(std::string_view text, const std::string& file, const std::string& base_dir,
                      gateway_settings& s) {
  reader r{file};
  simdjson::dom::parser parser;
  element root;
  if (auto err = parser.parse(simdjson::padded_string(text)).get(root))
    throw std::runtime_error(file + ": " + policy::describe_invalid_json(text, err));
  if (!root.is_object()) r.fail("$", "expected an object, got " + type_name(root.type()));
  s.base_dir = base_dir;
  simdjson::dom::object top = root.get_object().value_unsafe();
  for (auto [key_view, value] : top) {
    std::string key(key_view);
    std::string path = "$." + key;
    if (key == "listen")
      s.listen = r.get_string(value, path);
    else if (key == "upstream" && value.is_object()) {
      s.upstream_given = true;
      upstream_spec spec;
      load_upstream_spec(r, value, "$.upstream", s.base_dir, false, spec);
      s.stdio = spec.stdio;
      s.upstream = s.stdio ? describe_command(s.stdio->command.argv) : spec.url;
      s.default_options = spec.options;
      s.default_pins = spec.pins;
    } else if (key == "upstreams")
      load_named_upstreams(r, value, s);
    else if (key == "servers")
      load_servers(r, value, s);
    else if (key == "federation")
      load_federation(r, value, s);
    else if (key == "approvals")
      load_approvals(r, value, s);
    else if (key == "upstream") {
      if (!value.is_string())
        r.fail(path, "expected a URL or an object {\"url\": ...} or {\"command\": [...]}, got " +
                         type_name(value.type()));
      s.upstream = r.get_string(value, path);
      s.stdio = nullptr;
      s.upstream_given = true;
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
    else if (key == "tracing")
      load_tracing(r, value, s);
    else if (key == "oauth" || key == "identities_from_claims")
      continue;  // read together below, once both are known
    else {
      std::string known;
      for (std::string_view k : config_keys) known += (known.empty() ? "" : ", ") + std::string(k);
      r.fail(path, "unknown key (known: " + known + ")");
    }
  }
  load_oauth(r, top, s);
}

void apply_command_line(const command_line_overrides& cl, gateway_settings& s) {
  if (cl.listen) s.listen = *cl.listen;
  if (cl.upstream && cl.upstream_command)
    throw std::invalid_argument("--upstream and --upstream-command: give one upstream, not both");
  if (cl.upstream) {
    s.upstream = *cl.upstream;
    s.stdio = nullptr;
    s.upstream_given = true;
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
    s.upstream_given = true;
  }
  if (cl.path) s.path = *cl.path;
  if (cl.policy) s.policy = *cl.policy;
  if (cl.audit) s.audit = *cl.audit;
  if (cl.admin) s.admin = *cl.admin;
  if (cl.shards) s.shards = *cl.shards;
}

bool serves_default_upstream(const gateway_settings& s) {
  return s.upstream_given || s.upstreams.empty();
}

std::vector<served_upstream> served_upstreams(const gateway_settings& s) {
  std::vector<served_upstream> out;
  auto add = [&](const std::string& name, const std::string& url,
                 const net::stdio_upstream_config* stdio, const std::optional<pins_setting>& pins) {
    served_upstream u{name, stdio ? std::string() : url, {}, pins ? &*pins : nullptr};
    if (stdio) u.command = stdio->command;
    out.push_back(std::move(u));
  };
  if (serves_default_upstream(s)) add("default", s.upstream, s.stdio.get(), s.default_pins);
  for (const upstream_spec& spec : s.upstreams)
    add(spec.name, spec.url, spec.stdio.get(), spec.pins);
  return out;
}

std::vector<const upstream_spec*> federated_servers(const gateway_settings& s) {
  std::vector<const upstream_spec*> out;
  if (!s.federation.enabled) return out;
  for (const upstream_spec& spec : s.upstreams)
    if (spec.key.rfind("servers.", 0) == 0) out.push_back(&spec);
  return out;
}

std::shared_ptr<const net::gateway_config> resolve_config(
    const gateway_settings& s, const std::map<std::string, net::endpoint>& bridges,
    std::shared_ptr<const net::gate_config> gate, std::shared_ptr<core::log_file> audit_file,
    uint64_t generation, std::shared_ptr<net::trace_exporter> tracing) {
  auto c = std::make_shared<net::gateway_config>(s.wire);
  c->generation = generation;
  c->tracing = std::move(tracing);
  std::string where = s.config_file.empty() ? "" : " (or " + s.config_file + ")";
  c->listen = net::parse_host_port(s.listen, "--listen" + where);
  c->upstreams.clear();
  c->routes.clear();
  // A stdio upstream is its bridge's Unix socket to the shards.
  auto add = [&](const std::string& name, const std::string& url, bool stdio,
                 const upstream_overrides& options, const std::string& client_path,
                 const std::string& what) {
    net::upstream_target up = options.over(s.upstream_defaults);
    up.name = name;
    if (stdio) {
      if (auto it = bridges.find(name); it != bridges.end()) up.where = it->second;
      up.host_header = "stdio";
      up.path = "/mcp";
      up.stdio = true;
    } else {
      net::http_url parsed = net::parse_http_url(url, what);
      up.where = parsed.where;
      up.host_header = parsed.host_header;
      up.path = parsed.path;
    }
    std::string path = client_path.empty() ? up.path : client_path;
    if (path.empty() || path[0] != '/')
      throw std::invalid_argument("path: expected an absolute path starting with '/', got '" +
                                  path + "'");
    for (const net::route& r : c->routes)
      if (r.path == path)
        throw std::invalid_argument(what + ": the path " + path + " is also upstream " +
                                    c->upstreams[r.upstream].name + "'s");
    // The single upstream takes the grant's own policy; a named one its grants' policy for it.
    c->routes.push_back({path, static_cast<uint32_t>(c->upstreams.size()),
                         name == "default" ? std::string() : name});
    up.index = static_cast<uint16_t>(c->upstreams.size());
    c->upstreams.push_back(std::move(up));
  };
  if (serves_default_upstream(s))
    add("default", s.upstream, s.stdio != nullptr, s.default_options, s.path, "--upstream" + where);
  for (const upstream_spec& spec : s.upstreams)
    add(spec.name, spec.url, spec.stdio != nullptr, spec.options, spec.path,
        "$." + spec.key + where);
  if (!federated_servers(s).empty()) {
    // The federated endpoint: its hub, on a socket of its own, as one more upstream.
    net::upstream_target hub = s.default_options.over(s.upstream_defaults);
    hub.name = federation_name;
    if (auto it = bridges.find(std::string(federation_name)); it != bridges.end())
      hub.where = it->second;
    hub.host_header = federation_name;
    hub.path = s.federation.path;
    hub.federation = true;
    hub.forward_authorization = true;  // presented again to each server's route, never further
    hub.max_idle = 16;  // each of the hub's connections is a thread there (at most 512)
    for (const net::route& r : c->routes)
      if (r.path == s.federation.path)
        throw std::invalid_argument("$.federation.path" + where + ": " + s.federation.path +
                                    " is the federated endpoint's path and also upstream " +
                                    c->upstreams[r.upstream].name +
                                    "'s (give one of them another path)");
    c->routes.push_back({s.federation.path, static_cast<uint32_t>(c->upstreams.size()), {}, true});
    hub.index = static_cast<uint16_t>(c->upstreams.size());
    c->upstreams.push_back(std::move(hub));
  }
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
  // Upstreams and their routes: the pools, bridges and children run as started.
  auto stdio_of = [](const gateway_settings& s,
                     const std::string& name) -> const net::stdio_upstream_config* {
    if (name == "default") return s.stdio.get();
    for (const upstream_spec& spec : s.upstreams)
      if (spec.name == name) return spec.stdio.get();
    return nullptr;
  };
  auto key_of = [](const gateway_settings& s, const std::string& name) {
    for (const upstream_spec& spec : s.upstreams)
      if (spec.name == name) return spec.key;
    return name == "default" ? std::string("upstream") : "upstreams." + name;
  };
  bool moved = running.upstreams.size() != next.upstreams.size() ||
               running.routes.size() != next.routes.size();
  for (size_t i = 0; i < running.upstreams.size(); ++i) {
    const std::string& name = running.upstreams[i].name;
    std::string key = key_of(started, name);
    const net::upstream_target* now = nullptr;
    for (const net::upstream_target& t : next.upstreams)
      if (t.name == name) now = &t;
    if (!now) {
      changed.push_back(key + " (removed)");
      moved = true;
      continue;
    }
    if (!same_upstream(running.upstreams[i], *now) ||
        !same_stdio(stdio_of(started, name), stdio_of(fresh, name)))
      changed.push_back(key);
    for (size_t r = 0; r < running.routes.size(); ++r) {
      if (running.routes[r].upstream != i) continue;
      bool same_path = false;
      for (const net::route& nr : next.routes)
        same_path = same_path ||
                    (nr.path == running.routes[r].path && next.upstreams[nr.upstream].name == name);
      if (!same_path) {
        changed.push_back(key + (name == "default" ? " path" : ".path"));
        moved = true;
      }
    }
  }
  for (const net::upstream_target& t : next.upstreams) {
    bool known = false;
    for (const net::upstream_target& r : running.upstreams) known = known || r.name == t.name;
    if (!known) changed.push_back(key_of(fresh, t.name) + " (added)");
  }
  if (moved || !changed.empty()) {
    // Timeouts and pool sizes of an upstream that stays may change live; the set, addresses
    // and paths may not.
    std::vector<net::upstream_target> kept = running.upstreams;
    for (net::upstream_target& k : kept)
      for (const net::upstream_target& t : next.upstreams)
        if (t.name == k.name && same_upstream(k, t)) {
          net::endpoint where = k.where;
          k = t;
          k.where = where;
        }
    next.upstreams = std::move(kept);
    next.routes = running.routes;
  }
  if (started.shards != fresh.shards) changed.push_back("shards");
  if (started.tracing_url != fresh.tracing_url || started.tracing_service != fresh.tracing_service)
    changed.push_back("tracing");
  next.tracing = running.tracing;
  if (started.admin != fresh.admin || started.admin_token_sha256 != fresh.admin_token_sha256)
    changed.push_back("admin");
  const net::approval_limits &was = started.approvals, &now = fresh.approvals;
  if (was.max_pending != now.max_pending ||
      was.max_pending_per_identity != now.max_pending_per_identity ||
      was.max_standing != now.max_standing || was.max_standing_ms != now.max_standing_ms)
    changed.push_back("approvals");
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
