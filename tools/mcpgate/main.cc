// mcpgate: a policy gateway for the Model Context Protocol.
//
// The main thread is the control plane: it reads the configuration, creates the listening
// sockets, starts one shard per core and then only waits for signals (SIGTERM/SIGINT drain,
// SIGHUP reload). Everything on the request path runs on the shard threads.

#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <cxxopts.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/build_info.h"
#include "core/clock.h"
#include "core/ring.h"
#include "core/shard.h"
#include "net/admin/server.h"
#include "net/exchange/gate.h"
#include "net/exchange/policy_gate.h"
#include "net/exchange/shard.h"
#include "net/observe/metrics.h"
#include "net/upstream/stdio/bridge.h"
#include "policy/access_config.h"
#include "policy/document.h"
#include "policy/limits.h"
#include "tools/mcpgate/catalogue.h"
#include "tools/mcpgate/check.h"
#include "tools/mcpgate/config.h"
#include "tools/mcpgate/pins.h"

namespace {

using namespace mcpgate;

int fail(const std::string& message) {
  std::fprintf(stderr, "mcpgate: %s\n", message.c_str());
  return 1;
}

cxxopts::Options make_options() {
  cxxopts::Options o("mcpgate",
                     "A policy gateway for MCP Streamable HTTP: every call passes the operator's "
                     "rules before it reaches the server.\n\n"
                     "Run without --config, --upstream or --upstream-command to serve the "
                     "embedded default (examples/python-interpreter/mcpgate.json): listen on "
                     "127.0.0.1:8080 in front of the Python interpreter stand-in, over stdio.\n");
  o.custom_help(
      "[--config FILE] [--listen HOST:PORT] [--upstream URL | --upstream-command CMD] "
      "[options]\n"
      "  mcpgate check POLICY_OR_CONFIG...   validate files and print what applies");
  o.add_options()("listen", "Address clients connect to, HOST:PORT (port 0 picks a free port)",
                  cxxopts::value<std::string>())(
      "upstream", "The MCP server's Streamable HTTP endpoint, http://HOST[:PORT]/PATH",
      cxxopts::value<std::string>())(
      "upstream-command",
      "An MCP server speaking stdio, started per session: \"prog arg ...\", split into words as "
      "a POSIX shell would (no shell runs)",
      cxxopts::value<std::string>())(
      "shards",
      "Shards (threads, each with its own io_uring and listener); default: one per "
      "online CPU",
      cxxopts::value<unsigned>())("path",
                                  "Endpoint path clients use (default: the upstream URL's path)",
                                  cxxopts::value<std::string>())(
      "policy", "Policy document (JSON) for the default grant", cxxopts::value<std::string>())(
      "audit", "Audit log file ('-' for stdout)", cxxopts::value<std::string>())(
      "admin", "Admin listener HOST:PORT (/metrics, /healthz, /readyz)",
      cxxopts::value<std::string>())("config",
                                     "JSON config file; unknown keys are errors; flags override it",
                                     cxxopts::value<std::string>())(
      "version", "Print the version and exit")("h,help", "Print this help and exit");
  return o;
}

// The settings as the command line and the config file give them now (for SIGHUP).
tools::gateway_settings reread(const tools::gateway_settings& current) {
  tools::gateway_settings fresh;
  fresh.command_line = current.command_line;
  if (!current.config_file.empty()) tools::load_config_file(current.config_file, fresh);
  if (current.embedded_default) tools::load_embedded_default(fresh);
  tools::apply_command_line(fresh.command_line, fresh);
  return fresh;
}

int run(const tools::gateway_settings& settings) {
  // Each stdio upstream is served by a bridge thread of its own, on a Unix socket the shards
  // connect to as to any upstream.
  struct stdio_bridge_run {
    std::string name;
    std::shared_ptr<const net::stdio_upstream_config> config;
    net::stdio_bridge::bound_socket socket;
    std::unique_ptr<net::stdio_bridge_stats> stats = std::make_unique<net::stdio_bridge_stats>();
    std::unique_ptr<core::shard_group> group;
  };
  std::vector<stdio_bridge_run> bridges;
  if (settings.stdio && tools::serves_default_upstream(settings))
    bridges.push_back(
        {"default", settings.stdio, {}, std::make_unique<net::stdio_bridge_stats>(), {}});
  for (const tools::upstream_spec& spec : settings.upstreams)
    if (spec.stdio)
      bridges.push_back(
          {spec.name, spec.stdio, {}, std::make_unique<net::stdio_bridge_stats>(), {}});
  std::map<std::string, net::endpoint> bridge_at;
  for (stdio_bridge_run& b : bridges) {
    b.socket = net::stdio_bridge::bind_socket();
    if (b.socket.fd < 0) return fail(b.socket.error);
    bridge_at[b.name] = b.socket.at;
  }
  std::shared_ptr<core::log_file> audit_file;
  if (!settings.audit.empty()) {
    core::log_file::open_result opened = core::log_file::open(settings.audit);
    if (!opened.file) return fail("--audit: " + opened.error);
    audit_file = opened.file;
  }

  // Counters live as long as the process, so that reloads keep the counts.
  policy::counter_store counters;
  counters.max_session_counters_per_identity = settings.max_session_counters_per_identity;
  std::shared_ptr<const net::gate_config> gate;
  // The configuration generation in force; a reload makes the next one.
  std::shared_ptr<const net::gateway_config> wire;
  try {
    gate = tools::load_gate(settings, counters);
    wire = tools::resolve_config(settings, bridge_at, gate, audit_file, 1);
  } catch (const std::exception& e) {
    return fail(e.what());
  }

  // Fail at once, in one line, when this host will not let us use io_uring.
  if (std::string why = core::probe_io_uring(); !why.empty()) return fail(why);

  unsigned shards = settings.shards;
  if (shards == 0) shards = std::max(1u, std::thread::hardware_concurrency());

  // Signals are taken by sigwait() on this thread only; shard threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGUSR1);  // POST /admin/reopen: reopen the audit log only
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<int> listeners;
  try {
    listeners = net::listen_group(wire->listen, shards, 4096);
  } catch (const std::exception& e) {
    return fail(std::string("--listen: ") + e.what());
  }
  uint16_t port = net::bound_port(listeners[0]);

  std::vector<std::unique_ptr<net::shard_stats>> stats;
  for (unsigned i = 0; i < shards; ++i) stats.push_back(std::make_unique<net::shard_stats>());
  net::metrics_registry metrics(shards, gate->labels);

  // What the admin thread reads; written here on reload, under a control-plane lock.
  std::mutex report_mu;
  std::string policy_report = tools::policy_report(*gate);

  // Bound before any shard serves, so that a busy admin address stops the start-up cleanly.
  std::unique_ptr<net::admin_server> admin;
  std::string admin_host;
  if (!settings.admin.empty()) {
    net::admin_options options;
    try {
      net::endpoint at = net::parse_host_port(settings.admin, "--admin");
      options.host = at.host;
      options.port = at.port;
      options.allowed_hosts = wire->allowed_hosts;
      if (!settings.admin_token_sha256.empty()) {
        std::array<unsigned char, 32> digest{};
        for (size_t i = 0; i < digest.size(); ++i)
          digest[i] = static_cast<unsigned char>(
              std::stoi(settings.admin_token_sha256.substr(2 * i, 2), nullptr, 16));
        options.token_sha256 = digest;
      } else if (!net::is_loopback(at)) {
        // Metrics, the policy in force and log reopening, for anyone who can reach the port.
        return fail("--admin " + settings.admin +
                    ": an admin listener off loopback needs a token (admin.token_sha256 in the "
                    "config file)");
      }
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    net::admin_handlers handlers;
    handlers.metrics = [&metrics, &counters] { return metrics.render() + counters.pins.render(); };
    // The upstreams as started (a reload does not move them).
    handlers.ready = [upstreams = wire->upstreams] {
      net::readiness r;
      r.listening = true;
      r.policy_loaded = true;
      r.upstream_reachable = true;
      for (const net::upstream_target& target : upstreams) {
        // A plain blocking connect with a short timeout: this is the admin thread, never a shard.
        const net::endpoint& up = target.where;
        int fd = ::socket(up.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval tv{0, 500'000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        r.upstream_reachable =
            r.upstream_reachable && fd >= 0 &&
            ::connect(fd, reinterpret_cast<const sockaddr*>(&up.addr), up.addr_len) == 0;
        if (fd >= 0) ::close(fd);
      }
      return r;
    };
    handlers.policy = [&report_mu, &policy_report] {
      std::lock_guard lock(report_mu);
      return policy_report;
    };
    handlers.reopen = [] {
      ::kill(::getpid(), SIGUSR1);  // the control thread reopens, as for SIGHUP
      return std::string();
    };
    net::admin_server::start_result started = net::admin_server::start(options, handlers);
    if (!started.server) {
      return fail("--admin: " + started.error);
    }
    admin = std::move(started.server);
    admin_host = options.host;
  }
  for (stdio_bridge_run& b : bridges) {
    metrics.attach_stdio(b.stats.get());
    b.group = std::make_unique<core::shard_group>(1, 4096, 10'000'000);
    std::string why = b.group->start([&](unsigned) {
      return std::make_unique<net::stdio_bridge>(b.config, b.socket.fd, *b.stats);
    });
    if (!why.empty()) return fail("stdio bridge of upstream " + b.name + ": " + why);
  }

  core::shard_group group(shards, 4096, 10'000'000);
  std::string error = group.start([&](unsigned i) {
    return std::make_unique<net::proxy_shard>(wire, listeners[i], *stats[i], &metrics);
  });
  if (!error.empty()) {
    std::fprintf(stderr, "mcpgate: %s\n", error.c_str());
    std::_Exit(1);  // shards that did start cannot be stopped cleanly without their peers
  }
  std::string host = wire->listen.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::fprintf(stderr, "mcpgate: listening on %s:%u\n", host.c_str(), port);
  if (admin)
    std::fprintf(stderr, "mcpgate: admin listening on %s:%u\n", admin_host.c_str(), admin->port());
  std::fprintf(stderr, "mcpgate: %u shard%s, upstream %s, %s\n", shards, shards == 1 ? "" : "s",
               settings.upstream.c_str(), tools::describe_gate(*gate).c_str());
  std::fflush(stderr);

  for (;;) {
    int sig = 0;
    timespec sweep_every{60, 0};
    sig = sigtimedwait(&signals, nullptr, &sweep_every);
    if (sig < 0) {
      // Session-scoped counters of sessions quiet for a whole window are freed.
      counters.sweep_idle_sessions(core::monotonic_ns());
      continue;
    }
    if (sig == SIGHUP || sig == SIGUSR1) {
      // logrotate: the audit log is reopened by path; the shards switch at a line boundary.
      if (audit_file) {
        core::log_file::open_result reopened = audit_file->reopen();
        if (!reopened.file) {
          std::fprintf(
              stderr,
              "mcpgate: SIGHUP: cannot reopen the audit log, still writing to the old file: %s\n",
              reopened.error.c_str());
        } else {
          audit_file = reopened.file;
          for (unsigned i = 0; i < shards; ++i) {
            core::message m;
            m.kind = static_cast<uint32_t>(net::shard_message::reopen_audit);
            m.ptr = new std::shared_ptr<core::log_file>(audit_file);
            while (!group.inbox(i).post(shards, m)) sched_yield();
          }
        }
      }
      if (sig == SIGUSR1) continue;
      // Re-read the config file and every policy; an invalid file leaves the old rules in force.
      try {
        tools::gateway_settings fresh = reread(settings);
        auto next_gate = tools::load_gate(fresh, counters, metrics.labels().get());
        auto next = std::const_pointer_cast<net::gateway_config>(
            tools::resolve_config(fresh, bridge_at, next_gate, audit_file, wire->generation + 1));
        // What cannot change under a running process keeps its running value, and says so.
        for (const std::string& key : tools::keep_restart_only(*wire, settings, fresh, *next))
          std::fprintf(stderr,
                       "mcpgate: SIGHUP: %s changed; it takes effect at the next start (the "
                       "running value stays)\n",
                       key.c_str());
        wire = next;
        metrics.set_labels(next_gate->labels);
        {
          std::lock_guard lock(report_mu);
          policy_report = tools::policy_report(*next_gate);
        }
        for (unsigned i = 0; i < shards; ++i) {
          core::message m;
          m.kind = static_cast<uint32_t>(net::shard_message::reload);
          m.ptr = new std::shared_ptr<const net::gateway_config>(wire);
          while (!group.inbox(i).post(shards, m)) sched_yield();
        }
        std::fprintf(stderr, "mcpgate: SIGHUP: reloaded (generation %llu), %s\n",
                     static_cast<unsigned long long>(wire->generation),
                     tools::describe_gate(*next_gate).c_str());
      } catch (const std::exception& e) {
        std::fprintf(stderr,
                     "mcpgate: SIGHUP: reload rejected, the previous policy stays in force: %s\n",
                     e.what());
      }
      continue;
    }
    std::fprintf(stderr, "mcpgate: %s: draining (up to %lld ms)\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 static_cast<long long>(wire->drain_timeout_ms));
    core::message m;
    m.kind = static_cast<uint32_t>(net::shard_message::drain);
    group.broadcast(m);
    group.join();
    // The shards are done with the bridge: end every child (SIGTERM, then SIGKILL), reap them.
    for (stdio_bridge_run& b : bridges) b.group->broadcast(m);
    for (stdio_bridge_run& b : bridges) b.group->join();
    if (admin) admin->stop();
    std::fprintf(stderr, "mcpgate: drained, exiting\n");
    return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "check")
    return tools::check_files(std::vector<std::string>(argv + 2, argv + argc));
  if (argc >= 2 && std::string_view(argv[1]) == "catalogue")
    return tools::catalogue_main(std::vector<std::string>(argv + 2, argv + argc));
  if (argc >= 2 && std::string_view(argv[1]) == "pins")
    return tools::pins_main(std::vector<std::string>(argv + 2, argv + argc));
  cxxopts::Options options = make_options();
  tools::gateway_settings settings;
  try {
    cxxopts::ParseResult args = options.parse(argc, argv);
    if (args.count("help")) {
      std::printf("%s\n", options.help().c_str());
      return 0;
    }
    if (args.count("version")) {
      std::printf("mcpgate %s\n", mcpgate::version);
      return 0;
    }
    if (!args.unmatched().empty())
      return fail("unexpected argument '" + args.unmatched().front() + "' (see --help)");
    tools::command_line_overrides& cl = settings.command_line;
    if (args.count("listen")) cl.listen = args["listen"].as<std::string>();
    if (args.count("upstream")) cl.upstream = args["upstream"].as<std::string>();
    if (args.count("upstream-command"))
      cl.upstream_command = args["upstream-command"].as<std::string>();
    if (args.count("shards")) {
      cl.shards = args["shards"].as<unsigned>();
      if (*cl.shards == 0 || *cl.shards > 256)
        return fail("--shards: expected 1 to 256, got " + std::to_string(*cl.shards));
    }
    if (args.count("path")) cl.path = args["path"].as<std::string>();
    if (args.count("policy"))
      cl.policy = std::filesystem::absolute(args["policy"].as<std::string>()).string();
    if (args.count("audit")) cl.audit = args["audit"].as<std::string>();
    if (args.count("admin")) cl.admin = args["admin"].as<std::string>();
    if (args.count("config"))
      tools::load_config_file(args["config"].as<std::string>(), settings);
    else if (!cl.upstream && !cl.upstream_command)
      tools::load_embedded_default(settings);
    tools::apply_command_line(cl, settings);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return run(settings);
}
