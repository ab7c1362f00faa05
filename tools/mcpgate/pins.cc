#include "tools/mcpgate/pins.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>

#include "core/stderr_log.h"
#include "policy/load_error.h"
#include "tools/mcpgate/classify.h"
#include "tools/mcpgate/file_write.h"

namespace mcpgate::tools {

policy::pins_file::server pins_of(const server_tools& listed) {
  policy::pins_file::server server;
  server.source = listed.source;
  for (const std::string& raw : listed.tools) {
    std::optional<tool_info> info = parse_tool(raw);
    std::string cls = info ? std::string(class_name(classify_tool(*info).cls)) : "";
    std::optional<policy::pin_entry> pin = policy::pin_of(raw, cls);
    if (!pin)
      throw mcp_client_error(listed.source + ": a tool's definition cannot be pinned (a key " +
                             "repeated, or nested too deep): " + raw.substr(0, 80));
    server.tools.push_back(std::move(*pin));
  }
  std::sort(server.tools.begin(), server.tools.end(),
            [](const policy::pin_entry& a, const policy::pin_entry& b) { return a.name < b.name; });
  return server;
}

namespace {

// The pins file at `path`, or an empty one when there is none yet.
policy::pins_file read_or_empty(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return {};
  return policy::load_pins_file(path);
}

}  // namespace

std::optional<std::string> write_pins(const std::string& path, const std::string& server,
                                      const server_tools& listed) {
  policy::pins_file file;
  try {
    file = read_or_empty(path);
    file.servers[server] = pins_of(listed);
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
  return write_file_atomically(path, policy::format_pins_file(file), "pins");
}

// ---------------------------------------------------------------------------------------------
// Diff

namespace {

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

// A line diff by longest common subsequence: definitions are a few hundred lines at most.
void append_line_diff(std::string& out, std::string_view before, std::string_view after) {
  std::vector<std::string_view> a = lines_of(before), b = lines_of(after);
  size_t n = a.size(), m = b.size();
  std::vector<std::vector<uint32_t>> lcs(n + 1, std::vector<uint32_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  size_t i = 0, j = 0;
  auto line = [&](char mark, std::string_view text) {
    out += "    ";
    out += mark;
    out += ' ';
    out.append(text);
    out += '\n';
  };
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      line(' ', a[i]);
      ++i;
      ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      line('-', a[i++]);
    } else {
      line('+', b[j++]);
    }
  }
}

}  // namespace

std::string diff_pins(const policy::pins_file::server& pinned, const policy::pins_file::server& now,
                      size_t* changes) {
  std::string out;
  size_t count = 0;
  auto find = [](const policy::pins_file::server& s,
                 const std::string& name) -> const policy::pin_entry* {
    for (const policy::pin_entry& t : s.tools)
      if (t.name == name) return &t;
    return nullptr;
  };
  for (const policy::pin_entry& t : now.tools) {
    const policy::pin_entry* old = find(pinned, t.name);
    if (old && old->sha256 == t.sha256) continue;
    ++count;
    if (!old) {
      out += "added: " + t.name + " (" + t.cls + "), not pinned, sha256 " +
             policy::digest_hex(t.sha256) + "\n";
      append_line_diff(out, "", policy::pretty_json(t.definition));
      continue;
    }
    out += "changed: " + t.name + " (" + t.cls + ")\n  pinned sha256 " +
           policy::digest_hex(old->sha256) + "\n  listed sha256 " + policy::digest_hex(t.sha256) +
           "\n";
    append_line_diff(out, policy::pretty_json(old->definition), policy::pretty_json(t.definition));
  }
  for (const policy::pin_entry& t : pinned.tools) {
    if (find(now, t.name)) continue;
    ++count;
    out += "removed: " + t.name + " (" + t.cls + "), pinned but no longer listed\n";
  }
  *changes = count;
  return out;
}

// ---------------------------------------------------------------------------------------------
// At load

std::vector<std::shared_ptr<const policy::server_pins>> load_pins(const gateway_settings& s,
                                                                  policy::pin_counts_store& counts,
                                                                  bool take_missing) {
  std::vector<std::shared_ptr<const policy::server_pins>> out;
  for (const served_upstream& up : served_upstreams(s)) {
    if (!up.pins) continue;
    const pins_setting& p = *up.pins;
    std::string where = s.config_file.empty() ? std::string("config") : s.config_file;
    where += ": " + p.key;
    policy::pins_file file;
    try {
      std::error_code ec;
      bool exists = std::filesystem::exists(p.file, ec);
      if (!exists && !p.tofu)
        throw std::runtime_error(p.file + ": cannot read the pins file: " + std::strerror(ENOENT) +
                                 " (write it with `mcpgate catalogue --pin " + p.file +
                                 "`, or use \"tofu:" + p.file + "\")");
      if (exists) file = policy::load_pins_file(p.file);
      if (!file.servers.count(up.name)) {
        if (!p.tofu)
          throw std::runtime_error(p.file + ": $.servers: no pins for server \"" + up.name +
                                   "\" (add them with `mcpgate pins accept " + p.file +
                                   " --server " + up.name + " ...`)");
        if (take_missing) {
          // Trust on first use: what the server lists now is what later lists must match.
          server_tools listed = fetch_tools(up.url, up.command, 30'000);
          file.servers[up.name] = pins_of(listed);
          if (auto error = write_file_atomically(p.file, policy::format_pins_file(file), "pins"))
            throw std::runtime_error(*error);
          core::logf(core::log_level::info,
                     "mcpgate: pins: took %zu tool definitions of server '%s' from %s into %s "
                     "(trust on first use)",
                     file.servers[up.name].tools.size(), up.name.c_str(), listed.source.c_str(),
                     p.file.c_str());
        }
      }
    } catch (const std::exception& e) {
      throw std::runtime_error(where + ": " + e.what());
    }
    out.push_back(std::make_shared<const policy::server_pins>(
        up.name == "default" ? std::string() : up.name, up.name, p.file,
        std::move(file.servers[up.name]), p.on_change, p.unpinned, counts.for_server(up.name)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// mcpgate pins diff|accept

namespace {

int fail(const std::string& why) {
  std::string line = why;
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::fprintf(stderr, "mcpgate pins: %s\n", line.c_str());
  return 2;
}

constexpr const char* pins_usage =
    "usage: mcpgate pins diff FILE [--server NAME] (--upstream URL | -- COMMAND ARGS...)\n"
    "       mcpgate pins accept FILE [--server NAME] (--upstream URL | -- COMMAND ARGS...)\n"
    "\n"
    "diff prints what the server lists now against the pins in FILE (exit 0: the same, 1: "
    "changed, 2: error).\n"
    "accept writes what it lists now into FILE for that server; send the gateway SIGHUP to "
    "enforce it.\n";

}  // namespace

int pins_main(const std::vector<std::string>& args) {
  auto dash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> command(dash == args.end() ? dash : dash + 1, args.end());
  std::vector<std::string> own(args.begin(), dash);
  if (own.empty() || own[0] == "-h" || own[0] == "--help") {
    std::fputs(pins_usage, own.empty() ? stderr : stdout);
    return own.empty() ? 2 : 0;
  }
  std::string verb = own[0];
  if (verb != "diff" && verb != "accept")
    return fail("unknown command '" + verb + "' (known: diff, accept)");

  cxxopts::Options options("mcpgate pins " + verb);
  options.add_options()("upstream", "", cxxopts::value<std::string>())(
      "server", "", cxxopts::value<std::string>()->default_value("default"))(
      "timeout-ms", "", cxxopts::value<std::int64_t>()->default_value("15000"))(
      "file", "", cxxopts::value<std::string>());
  options.parse_positional({"file"});
  std::string file, upstream, server;
  std::int64_t timeout_ms = 15000;
  try {
    std::vector<char*> argv;
    std::string program = "mcpgate pins";
    argv.push_back(program.data());
    for (size_t i = 1; i < own.size(); ++i) argv.push_back(own[i].data());
    cxxopts::ParseResult parsed = options.parse(static_cast<int>(argv.size()), argv.data());
    if (!parsed.unmatched().empty())
      return fail("unexpected argument '" + parsed.unmatched().front() +
                  "' (a stdio server's command goes after --)");
    if (!parsed.count("file")) return fail("name the pins file: mcpgate pins " + verb + " FILE");
    file = parsed["file"].as<std::string>();
    if (parsed.count("upstream")) upstream = parsed["upstream"].as<std::string>();
    server = parsed["server"].as<std::string>();
    timeout_ms = parsed["timeout-ms"].as<std::int64_t>();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  if (upstream.empty() == command.empty())
    return fail(upstream.empty()
                    ? "name the server: --upstream URL, or -- COMMAND ARGS... for a stdio server"
                    : "give either --upstream or a stdio command after --, not both");
  if (timeout_ms < 1 || timeout_ms > 3'600'000)
    return fail("--timeout-ms: expected 1 to 3600000, got " + std::to_string(timeout_ms));
  ::signal(SIGPIPE, SIG_IGN);

  policy::pins_file pinned;
  server_tools listed;
  try {
    pinned = verb == "diff" ? policy::load_pins_file(file) : read_or_empty(file);
    if (verb == "diff" && !pinned.servers.count(server))
      return fail(file + ": $.servers: no pins for server \"" + server + "\" (see --server)");
    core::spawn_options spawn;
    spawn.argv = command;
    listed = fetch_tools(upstream, spawn, timeout_ms);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  policy::pins_file::server now;
  try {
    now = pins_of(listed);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  size_t changes = 0;
  std::string text = diff_pins(pinned.servers[server], now, &changes);
  if (verb == "diff") {
    std::printf("pins of server '%s' in %s against %s:\n%s%zu tool%s changed\n", server.c_str(),
                file.c_str(), listed.source.c_str(), text.c_str(), changes,
                changes == 1 ? "" : "s");
    return changes == 0 ? 0 : 1;
  }
  pinned.servers[server] = std::move(now);
  if (auto error = write_file_atomically(file, policy::format_pins_file(pinned), "pins"))
    return fail(*error);
  std::printf(
      "%s%zu tool%s changed; pins of server '%s' written to %s (send the gateway SIGHUP "
      "to enforce them)\n",
      text.c_str(), changes, changes == 1 ? "" : "s", server.c_str(), file.c_str());
  return 0;
}

}  // namespace mcpgate::tools
