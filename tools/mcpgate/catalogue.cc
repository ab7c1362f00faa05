#include "tools/mcpgate/catalogue.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "policy/json_writer.h"
#include "tools/mcpgate/classify.h"
#include "tools/mcpgate/config.h"
#include "tools/mcpgate/file_write.h"
#include "tools/mcpgate/mcp_client.h"
#include "tools/mcpgate/pins.h"

namespace mcpgate::tools {
namespace {

int fail(const std::string& why) {
  std::string line = why;
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::fprintf(stderr, "mcpgate catalogue: %s\n", line.c_str());
  return 1;
}

cxxopts::Options make_options() {
  cxxopts::Options o("mcpgate catalogue",
                     "Connects to an MCP server as a client, classifies each of its tools as "
                     "Read, Write, Execute, Destructive or Financial, and prints the summary, "
                     "JSON, or writes a starter policy.\n");
  o.custom_help(
      "--upstream URL [options]\n  mcpgate catalogue [options] -- COMMAND ARGS...\n  mcpgate "
      "catalogue --config FILE [options]");
  o.add_options()("upstream", "The server's Streamable HTTP endpoint, http://HOST[:PORT]/PATH",
                  cxxopts::value<std::string>())(
      "config",
      "Classify every server of a gateway config (its upstream and its upstreams and servers); "
      "--policy is then a directory that gets <server>.json each, --pin one file for all",
      cxxopts::value<std::string>())("json", "Print JSON instead of the summary")(
      "policy", "Write a starter policy to FILE", cxxopts::value<std::string>())(
      "pin", "Write the tools' pinned definitions to FILE (other servers' pins in it are kept)",
      cxxopts::value<std::string>())(
      "server", "The server's name in the pins file (its name under \"upstreams\")",
      cxxopts::value<std::string>()->default_value("default"))(
      "write-per-hour", "Limit for each Write and Execute tool, per grant per hour",
      cxxopts::value<std::int64_t>()->default_value("30"))(
      "read-per-minute", "Cap for each Read tool, per grant per minute",
      cxxopts::value<std::int64_t>()->default_value("60"))(
      "header",
      "NAME:VALUE sent with every request to an HTTP server (repeat for more), e.g. "
      "\"Authorization: Bearer KEY\" for a server behind auth",
      cxxopts::value<std::vector<std::string>>())(
      "timeout-ms", "Give up when the server has not answered everything by then",
      cxxopts::value<std::int64_t>()->default_value("15000"))("h,help", "Print this help");
  return o;
}

// One server's tools, classified.
struct classified {
  server_tools listed;
  server_catalogue catalogue;
};

// Throws what fetch_tools throws, and for an entry without a name.
classified classify_server(const std::string& url, const core::spawn_options& spawn,
                           std::int64_t timeout_ms, const std::vector<std::string>& headers) {
  classified c;
  c.listed = fetch_tools(url, spawn, timeout_ms, headers);
  std::vector<tool_info> tools;
  for (const std::string& raw : c.listed.tools) {
    std::optional<tool_info> t = parse_tool(raw);
    if (!t)
      throw std::runtime_error(c.listed.source +
                               ": tools/list holds an entry without a name: " + raw.substr(0, 80));
    tools.push_back(std::move(*t));
  }
  c.catalogue = make_catalogue(c.listed.info.name, c.listed.info.version,
                               c.listed.info.protocol_version, c.listed.source, std::move(tools));
  return c;
}

// `mcpgate catalogue --config FILE`: every server the config names, each under its name. A
// server that cannot be listed is reported and the others are still classified (exit 1).
int catalogue_config(const std::string& config_file, bool json, const std::string& policy_dir,
                     const std::string& pin_file, const starter_limits& limits,
                     std::int64_t timeout_ms, const std::vector<std::string>& headers) {
  gateway_settings settings;
  try {
    load_config_file(config_file, settings);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  std::vector<served_upstream> servers = served_upstreams(settings);
  if (!policy_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(policy_dir, ec);
    if (ec) return fail("--policy " + policy_dir + ": " + ec.message());
  }
  std::string out = json ? "{\"servers\":{" : "";
  int status = 0;
  bool first = true;
  for (const served_upstream& s : servers) {
    classified c;
    try {
      c = classify_server(s.url, s.command, timeout_ms, headers);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mcpgate catalogue: server '%s': %s\n", s.name.c_str(), e.what());
      status = 1;
      continue;
    }
    if (!pin_file.empty())
      if (auto error = write_pins(pin_file, s.name, c.listed)) return fail(*error);
    std::string policy_file;
    if (!policy_dir.empty()) {
      policy_file = (std::filesystem::path(policy_dir) / (s.name + ".json")).string();
      if (auto error =
              write_file_atomically(policy_file, format_policy(c.catalogue, limits), "--policy"))
        return fail(*error);
    }
    if (json) {
      if (!first) out += ',';
      policy::append_json_string(out, s.name);
      out += ':';
      std::string one = format_json(c.catalogue, limits);
      while (!one.empty() && one.back() == '\n') one.pop_back();
      out += one;
    } else {
      out += "== server '" + s.name + "' ==\n" + format_summary(c.catalogue, limits);
      if (!policy_file.empty()) out += "Starter policy written to " + policy_file + "\n";
      out += "\n";
    }
    first = false;
  }
  if (json) out += "}}\n";
  if (!json && !pin_file.empty()) out += "Pins of every server written to " + pin_file + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? status : 1;
}

}  // namespace

int catalogue_main(const std::vector<std::string>& args) {
  // Everything after "--" is the server's command line, untouched by option parsing.
  auto dash = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> command(dash == args.end() ? dash : dash + 1, args.end());
  std::vector<std::string> own(args.begin(), dash);

  cxxopts::Options options = make_options();
  std::string upstream, policy_file, pin_file, server, config_file;
  std::vector<std::string> headers;
  bool json = false;
  starter_limits limits;
  std::int64_t timeout_ms = 15000;
  try {
    std::vector<char*> argv;
    std::string program = "mcpgate catalogue";
    argv.push_back(program.data());
    for (std::string& a : own) argv.push_back(a.data());
    cxxopts::ParseResult parsed = options.parse(static_cast<int>(argv.size()), argv.data());
    if (parsed.count("help")) {
      std::printf("%s\n", options.help().c_str());
      return 0;
    }
    if (!parsed.unmatched().empty())
      return fail("unexpected argument '" + parsed.unmatched().front() +
                  "' (a stdio server's command goes after --)");
    if (parsed.count("upstream")) upstream = parsed["upstream"].as<std::string>();
    if (parsed.count("config")) config_file = parsed["config"].as<std::string>();
    if (parsed.count("policy")) policy_file = parsed["policy"].as<std::string>();
    if (parsed.count("pin")) pin_file = parsed["pin"].as<std::string>();
    server = parsed["server"].as<std::string>();
    if (parsed.count("header")) headers = parsed["header"].as<std::vector<std::string>>();
    json = parsed.count("json") > 0;
    limits.write_per_hour = parsed["write-per-hour"].as<std::int64_t>();
    limits.read_per_minute = parsed["read-per-minute"].as<std::int64_t>();
    timeout_ms = parsed["timeout-ms"].as<std::int64_t>();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  // The policy loader accepts max from 1 to 1,000,000; refuse here what it would refuse later.
  for (auto [flag, value] : {std::pair{"--write-per-hour", limits.write_per_hour},
                             std::pair{"--read-per-minute", limits.read_per_minute}})
    if (value < 1 || value > 1'000'000)
      return fail(std::string(flag) + ": expected 1 to 1000000, got " + std::to_string(value));
  if (timeout_ms < 1 || timeout_ms > 3'600'000)
    return fail("--timeout-ms: expected 1 to 3600000, got " + std::to_string(timeout_ms));
  // A server that exits while we write to it must be an error message, not a silent death.
  ::signal(SIGPIPE, SIG_IGN);
  if (!config_file.empty()) {
    if (!upstream.empty() || !command.empty())
      return fail("--config classifies the config's servers: no --upstream or command with it");
    return catalogue_config(config_file, json, policy_file, pin_file, limits, timeout_ms, headers);
  }
  if (upstream.empty() == command.empty())
    return fail(upstream.empty()
                    ? "name the server: --upstream URL, or -- COMMAND ARGS... for a stdio server"
                    : "give either --upstream or a stdio command after --, not both");

  server_catalogue catalogue;
  server_tools listed;
  try {
    core::spawn_options spawn;
    spawn.argv = command;
    classified c = classify_server(upstream, spawn, timeout_ms, headers);
    listed = std::move(c.listed);
    catalogue = std::move(c.catalogue);
  } catch (const std::exception& e) {
    return fail(e.what());
  }

  if (!pin_file.empty())
    if (auto error = write_pins(pin_file, server, listed)) return fail(*error);
  if (!policy_file.empty())
    if (auto error =
            write_file_atomically(policy_file, format_policy(catalogue, limits), "--policy"))
      return fail(*error);

  std::string out = json ? format_json(catalogue, limits) : format_summary(catalogue, limits);
  if (!json && !policy_file.empty())
    out += "\nStarter policy written to " + policy_file + "; check it with: mcpgate check " +
           policy_file + "\n";
  if (!json && !pin_file.empty())
    out += "\nPins of server '" + server + "' written to " + pin_file +
           "; enforce them with \"pins\": \"" + pin_file + "\" on the upstream in the config\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace mcpgate::tools
