// mcpbench: a load generator for MCP Streamable HTTP servers and gateways. See
// bench/mcpbench/load_generator.h for what a run does and load_schedule.h for how latency is
// counted in open and closed loop.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include <cxxopts.hpp>

#include "bench/mcpbench/load_generator.h"
#include "bench/mcpbench/result_json.h"

namespace {

using namespace mcpgate::bench;

// http://HOST:PORT/PATH with an IPv4 literal host.
bool parse_url(const std::string& url, load_config& config) {
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) return false;
  std::string rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  config.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = authority.rfind(':');
  if (colon == std::string::npos) return false;
  config.host = authority.substr(0, colon);
  try {
    unsigned long port = std::stoul(authority.substr(colon + 1));
    if (port == 0 || port > 65535) return false;
    config.port = static_cast<std::uint16_t>(port);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("mcpbench", "Load generator for MCP Streamable HTTP servers");
  options.add_options()("u,url", "endpoint, http://IPV4:PORT/PATH", cxxopts::value<std::string>())(
      "c,connections", "concurrent connections (sessions)",
      cxxopts::value<unsigned>()->default_value("64"))(
      "t,threads", "load threads, each with its own io_uring",
      cxxopts::value<unsigned>()->default_value("1"))(
      "d,duration", "measured seconds", cxxopts::value<double>()->default_value("10"))(
      "warmup", "seconds before measuring", cxxopts::value<double>()->default_value("0"))(
      "rate", "open loop: requests per second in total (0: closed loop)",
      cxxopts::value<double>()->default_value("0"))(
      "tools", "comma-separated tools called by allowed requests",
      cxxopts::value<std::string>()->default_value("read_file"))(
      "deny-tool", "tool the policy denies",
      cxxopts::value<std::string>()->default_value("clear_session"))(
      "deny-share", "share of requests (0-1) calling --deny-tool",
      cxxopts::value<double>()->default_value("0"))(
      "arg-bytes", "filler bytes in each call's arguments",
      cxxopts::value<std::size_t>()->default_value("0"))(
      "key", "API key sent as Authorization: Bearer",
      cxxopts::value<std::string>()->default_value(""))(
      "protocol-version", "MCP-Protocol-Version",
      cxxopts::value<std::string>()->default_value("2025-06-18"))(
      "no-session", "skip initialize and notifications/initialized")(
      "no-check-id", "accept replies whatever their id (canned replies)")(
      "grace-ms", "after the run, wait this long for replies in flight",
      cxxopts::value<unsigned>()->default_value("2000"))(
      "label", "name of the run in the JSON result",
      cxxopts::value<std::string>()->default_value(""))(
      "json", "write the result as JSON to this file (- for stdout)",
      cxxopts::value<std::string>())("progress", "print a live line every second on stderr")(
      "h,help", "this help");
  load_config config;
  std::string json_path, label;
  bool progress_wanted = false;
  try {
    auto args = options.parse(argc, argv);
    if (args.count("help")) {
      std::cout << options.help() << "\n";
      return 0;
    }
    if (!args.count("url") || !parse_url(args["url"].as<std::string>(), config)) {
      std::cerr << "mcpbench: --url http://IPV4:PORT/PATH is required\n";
      return 2;
    }
    config.connections = args["connections"].as<unsigned>();
    config.threads = args["threads"].as<unsigned>();
    config.duration =
        std::chrono::milliseconds(static_cast<std::int64_t>(args["duration"].as<double>() * 1000));
    config.warmup =
        std::chrono::milliseconds(static_cast<std::int64_t>(args["warmup"].as<double>() * 1000));
    config.rate = args["rate"].as<double>();
    config.tools = split_commas(args["tools"].as<std::string>());
    config.deny_tool = args["deny-tool"].as<std::string>();
    config.deny_share = args["deny-share"].as<double>();
    config.argument_bytes = args["arg-bytes"].as<std::size_t>();
    config.api_key = args["key"].as<std::string>();
    config.protocol_version = args["protocol-version"].as<std::string>();
    config.open_session = !args.count("no-session");
    config.check_ids = !args.count("no-check-id");
    config.grace = std::chrono::milliseconds(args["grace-ms"].as<unsigned>());
    label = args["label"].as<std::string>();
    if (args.count("json")) json_path = args["json"].as<std::string>();
    progress_wanted = args.count("progress") > 0;
    if (config.deny_share < 0 || config.deny_share > 1 || config.rate < 0 ||
        config.duration.count() <= 0) {
      std::cerr << "mcpbench: --deny-share must be 0..1, --rate >= 0, --duration > 0\n";
      return 2;
    }
  } catch (const std::exception& e) {
    std::cerr << "mcpbench: " << e.what() << "\n";
    return 2;
  }

  load_progress progress;
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  std::thread reporter;
  if (progress_wanted) {
    // One line per second; on a terminal it rewrites itself in place.
    reporter = std::thread([&] {
      bool tty = isatty(STDERR_FILENO);
      std::uint64_t last = 0;
      auto started = std::chrono::steady_clock::now();
      std::unique_lock lock(m);
      while (!cv.wait_for(lock, std::chrono::seconds(1), [&] { return finished; })) {
        std::uint64_t now = progress.replies.load(std::memory_order_relaxed);
        auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
        std::fprintf(stderr, "%s[%3llds] %8llu req/s  %10llu replies  %6llu errors%s",
                     tty ? "\r" : "", static_cast<long long>(secs),
                     static_cast<unsigned long long>(now - last),
                     static_cast<unsigned long long>(now),
                     static_cast<unsigned long long>(progress.errors.load()), tty ? "" : "\n");
        last = now;
      }
      if (tty) std::fprintf(stderr, "\n");
    });
  }
  load_result result;
  try {
    result = run_load(config, progress);
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(m);
      finished = true;
    }
    cv.notify_all();
    if (reporter.joinable()) reporter.join();
    std::cerr << e.what() << "\n";
    return 1;
  }
  {
    std::lock_guard lock(m);
    finished = true;
  }
  cv.notify_all();
  if (reporter.joinable()) reporter.join();

  std::cerr << result_summary(config, result) << "\n";
  if (!json_path.empty()) {
    std::string json = result_json(config, result, label);
    if (json_path == "-") {
      std::cout << json;
    } else {
      std::ofstream out(json_path);
      out << json;
      if (!out) {
        std::cerr << "mcpbench: cannot write " << json_path << "\n";
        return 1;
      }
    }
  }
  // Exit 3 when nothing succeeded, so scripts notice a target that never answered.
  return result.ok + result.denied > 0 ? 0 : 3;
}
