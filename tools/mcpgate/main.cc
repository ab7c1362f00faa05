// mcpgate: a policy gateway for the Model Context Protocol.
//
// The main thread is the control plane: it reads the configuration, creates the listening
// sockets, starts one shard per core and then only waits for signals (SIGTERM/SIGINT drain,
// SIGHUP reload). Everything on the request path runs on the shard threads.

#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
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
#include "core/stderr_log.h"
#include "net/admin/server.h"
#include "net/approval/registry.h"
#include "net/approval/stage.h"
#include "net/exchange/gate.h"
#include "net/exchange/policy_gate.h"
#include "net/exchange/shard.h"
#include "net/federation/hub.h"
#include "net/observe/metrics.h"
#include "net/upstream/stdio/bridge.h"
#include "policy/access_config.h"
#include "policy/document.h"
#include "policy/identity.h"
#include "policy/json_writer.h"
#include "policy/limits.h"
#include "tools/mcpgate/approvals.h"
#include "tools/mcpgate/build_stamp.h"
#include "tools/mcpgate/catalogue.h"
#include "tools/mcpgate/check.h"
#include "tools/mcpgate/config.h"
#include "tools/mcpgate/jwks_source.h"
#include "tools/mcpgate/pins.h"

namespace {

using namespace mcpgate;

int fail(const std::string& message) {
  core::logf(core::log_level::error, "mcpgate: %s", message.c_str());
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
      "  mcpgate check FILE... [--upstream URL | -- COMMAND ARGS...]\n"
      "                                      validate configs and policies, print what applies;\n"
      "                                      with a server, warn of policy tools it does not have\n"
      "  mcpgate catalogue --upstream URL | -- COMMAND ARGS...\n"
      "                                      classify a server's tools; --policy FILE writes a\n"
      "                                      starter policy, --pin FILE their pinned definitions\n"
      "  mcpgate pins diff|accept FILE --upstream URL | -- COMMAND ARGS...\n"
      "                                      review and accept changed tool definitions\n"
      "  mcpgate approvals list | approve ID | deny ID --admin HOST:PORT\n"
      "                                      decide calls held for approval (approve_if)\n"
      "  mcpgate hash-key [KEY]              print the SHA-256 of an API key (read from stdin\n"
      "                                      when not given) for identities[].key_sha256\n"
      "  (each subcommand takes --help)");
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
      "log-format", "stderr lines as \"text\" (timestamp, level, message) or \"json\"",
      cxxopts::value<std::string>()->default_value("text"))(
      "version", "Print the version, the commit and the build flags, and exit")(
      "h,help", "Print this help and exit");
  return o;
}

constexpr const char* help_epilogue =
    "Signals:\n"
    "  SIGHUP    re-read the config, policies and pins files (an invalid file keeps the old\n"
    "            rules) and reopen the audit log\n"
    "  SIGUSR1   reopen the audit log only (logrotate's postrotate)\n"
    "  SIGTERM, SIGINT  stop accepting, finish calls in flight (up to drain_timeout_ms), exit 0\n"
    "\n"
    "Exit status:\n"
    "  0  drained after SIGTERM/SIGINT; --help, --version\n"
    "  1  the configuration, a policy or pins file is invalid, an address is taken, or\n"
    "     io_uring is unavailable (one line on stderr names the cause)\n"
    "  mcpgate check: 0 all valid, 1 an invalid file, 2 usage; with a server, 3 when a\n"
    "     policy names tools the server does not have\n"
    "  mcpgate pins diff: 0 unchanged, 1 changed, 2 error\n";

// `mcpgate hash-key [KEY]`: the key's SHA-256 in hex, as identities[].key_sha256 and
// admin.token_sha256 take it. Read from stdin when not given, so that it stays out of the
// shell's history and the process list; one trailing newline is not part of the key.
int hash_key_main(const std::vector<std::string>& args) {
  if (!args.empty() && (args[0] == "-h" || args[0] == "--help")) {
    std::printf(
        "usage: mcpgate hash-key [KEY]\n  prints the SHA-256 of KEY (or of stdin, without one "
        "trailing newline) in hex,\n  for identities[].key_sha256 or admin.token_sha256\n");
    return 0;
  }
  if (args.size() > 1) {
    std::fprintf(stderr, "mcpgate hash-key: expected one key, got %zu arguments\n", args.size());
    return 2;
  }
  std::string key;
  if (args.empty()) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) key.append(buf, n);
    if (!key.empty() && key.back() == '\n') key.pop_back();
    if (!key.empty() && key.back() == '\r') key.pop_back();
  } else {
    key = args[0];
  }
  if (key.empty()) {
    std::fprintf(stderr, "mcpgate hash-key: the key is empty\n");
    return 2;
  }
  std::printf("%s\n", policy::digest_hex(policy::sha256(key)).c_str());
  return 0;
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
  // The federated endpoint's hub, when there are servers: one more socket the shards reach.
  std::vector<const tools::upstream_spec*> federated = tools::federated_servers(settings);
  net::federation_hub::bound_socket hub_socket;
  if (!federated.empty()) {
    hub_socket = net::federation_hub::bind_socket();
    if (hub_socket.fd < 0) return fail(hub_socket.error);
    bridge_at[std::string(tools::federation_name)] = hub_socket.at;
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
  // The span exporter's thread, when "tracing" is configured; it lives as long as the process.
  std::shared_ptr<net::trace_exporter> tracing;
  try {
    gate = tools::load_gate(settings, counters);
    tracing = tools::start_tracing(settings);
    wire = tools::resolve_config(settings, bridge_at, gate, audit_file, 1, tracing);
  } catch (const std::exception& e) {
    return fail(e.what());
  }

  // A token's audience taken from the Host the client sent is safe only where the listener's
  // Host rules hold Host to this gateway's own names: elsewhere a token minted for another
  // resource could be replayed here with that resource's Host.
  if (const policy::oauth_settings* o = settings.oauth.get(); o && o->rules.audiences.empty() &&
                                                              !net::is_loopback(wire->listen) &&
                                                              wire->allowed_hosts.empty())
    return fail(settings.config_file +
                ": $.oauth: set \"resource\" (or \"audience\"), or \"allowed_hosts\": a "
                "listener off loopback accepts any Host, so a token's audience cannot be taken "
                "from it");

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

  // The hub reaches each server through its route on this listener, as a client would.
  auto hub_config = std::make_shared<net::federation_config>();
  std::unique_ptr<net::federation_stats> hub_stats;
  if (!federated.empty()) {
    for (const tools::upstream_spec* spec : federated)
      hub_config->servers.push_back({spec->name, spec->path});
    hub_config->separator = settings.federation.separator;
    hub_config->max_sessions = settings.federation.max_sessions;
    hub_config->max_sessions_per_identity = settings.federation.max_sessions_per_identity;
    hub_config->session_idle_timeout_ms = settings.federation.session_idle_timeout_ms;
    hub_config->request_timeout_ms = settings.upstream_defaults.response_timeout_ms;
    hub_config->gateway = net::self_address(wire->listen, port);
    std::string host = wire->listen.host;
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    hub_config->host_header = wire->allowed_hosts.empty() ? host + ":" + std::to_string(port)
                                                          : wire->allowed_hosts.front();
    hub_stats = std::make_unique<net::federation_stats>(hub_config->servers.size());
  }

  std::vector<std::unique_ptr<net::shard_stats>> stats;
  for (unsigned i = 0; i < shards; ++i) stats.push_back(std::make_unique<net::shard_stats>());
  net::metrics_registry metrics(shards, gate->labels);
  {
    std::vector<std::string> servers;
    for (const net::upstream_target& up : wire->upstreams) servers.push_back(up.name);
    metrics.set_servers(std::move(servers));
  }

  // What the admin thread reads; written here on reload, under a control-plane lock.
  std::mutex report_mu;
  std::string policy_report = tools::policy_report(*gate);
  // The reloads so far, for /admin/reload and the metrics (under report_mu).
  struct reload_record {
    uint64_t generation = 1;
    uint64_t ok = 0, rejected = 0;
    std::string last_result = "none";  // "ok", "rejected"
    int64_t last_at_ns = 0;            // CLOCK_REALTIME
    std::string last_error;
  } reloads;
  auto reload_json = [&reloads] {
    std::string out = "{\"generation\":" + std::to_string(reloads.generation) +
                      ",\"reloads\":{\"ok\":" + std::to_string(reloads.ok) +
                      ",\"rejected\":" + std::to_string(reloads.rejected) +
                      "},\"last\":{\"result\":\"" + reloads.last_result + "\",\"at\":";
    if (reloads.last_at_ns) {
      out += '"';
      core::append_rfc3339_micros(out, reloads.last_at_ns);
      out += '"';
    } else {
      out += "null";
    }
    out += ",\"error\":";
    if (reloads.last_error.empty())
      out += "null";
    else
      policy::append_json_string(out, reloads.last_error);
    out += "}}";
    return out;
  };
  // Metrics of the process itself, after the shards' (under report_mu).
  auto process_metrics = [&reloads] {
    std::string out =
        "# HELP mcpgate_build_info The running build: version, commit\n"
        "# TYPE mcpgate_build_info gauge\n"
        "mcpgate_build_info{version=\"" +
        std::string(mcpgate::version) + "\",commit=\"" + tools::build_commit +
        "\"} 1\n"
        "# HELP mcpgate_config_generation The configuration generation in force (1 at start, "
        "+1 per accepted reload)\n"
        "# TYPE mcpgate_config_generation gauge\n"
        "mcpgate_config_generation " +
        std::to_string(reloads.generation) +
        "\n"
        "# HELP mcpgate_reloads_total SIGHUP reloads, by result\n"
        "# TYPE mcpgate_reloads_total counter\n"
        "mcpgate_reloads_total{result=\"ok\"} " +
        std::to_string(reloads.ok) + "\nmcpgate_reloads_total{result=\"rejected\"} " +
        std::to_string(reloads.rejected) + "\n";
    return out;
  };

  // The issuer's key set, read again when a token names a key it lacks.
  tools::jwks_refresher jwks;
  jwks.watch(settings.oauth, settings.base_dir);

  // Calls held for approval (approve_if): decided on the admin listener, resumed on their
  // shard through its inbox (producer shards + 1; the group exists once the shards start).
  std::atomic<core::shard_group*> shard_inboxes{nullptr};
  net::approval_registry approvals(
      settings.approvals, [&shard_inboxes](unsigned shard, const core::message& m) {
        core::shard_group* g = shard_inboxes.load(std::memory_order_acquire);
        return g != nullptr && g->inbox(shard).post(g->size() + 1, m);
      });

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
    handlers.metrics = [&metrics, &counters, &report_mu, &process_metrics, &tracing, &hub_config,
                        &hub_stats, &approvals] {
      std::string text = metrics.render() + counters.pins.render();
      approvals.append_metrics(text);
      if (tracing) text += tracing->render_metrics();
      if (hub_stats) text += net::federation_hub::render_metrics(*hub_config, *hub_stats);
      std::lock_guard lock(report_mu);
      return text + process_metrics();
    };
    handlers.limits = [&counters] { return counters.report_json(core::monotonic_ns()); };
    handlers.reload = [&report_mu, &reload_json] {
      std::lock_guard lock(report_mu);
      return reload_json();
    };
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
    handlers.approvals = &approvals;
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

  std::unique_ptr<net::federation_hub> hub;
  if (hub_stats) {
    hub = std::make_unique<net::federation_hub>(hub_config, hub_socket.fd, *hub_stats);
    hub->start();
  }

  core::shard_group group(shards, 4096, 10'000'000);
  std::string error = group.start([&](unsigned i) {
    net::stage_list extra;
    extra.push_back(std::make_unique<net::approval_stage>(approvals));
    return std::make_unique<net::proxy_shard>(wire, listeners[i], *stats[i], &metrics,
                                              std::move(extra));
  });
  shard_inboxes.store(&group, std::memory_order_release);
  if (!error.empty()) {
    core::logf(core::log_level::error, "mcpgate: %s", error.c_str());
    std::_Exit(1);  // shards that did start cannot be stopped cleanly without their peers
  }
  std::string host = wire->listen.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  core::logf(core::log_level::info, "mcpgate: listening on %s:%u", host.c_str(), port);
  if (admin)
    core::logf(core::log_level::info, "mcpgate: admin listening on %s:%u", admin_host.c_str(),
               admin->port());
  if (!net::is_loopback(wire->listen) && !tools::authenticates(*gate))
    core::logf(core::log_level::warn,
               "mcpgate: listening on %s:%u, off loopback, with no identities: anyone who can "
               "reach the port calls the upstream as 'anonymous' (an open relay); configure "
               "identities, or listen on 127.0.0.1",
               host.c_str(), port);
  if (!admin && tools::holds_for_approval(*gate))
    core::logf(core::log_level::warn,
               "mcpgate: a policy holds calls for approval (approve_if), but there is no admin "
               "listener: no operator can decide them, and each is denied when its timeout_ms "
               "passes (a client asked by elicitation can still answer); configure \"admin\"");
  core::logf(core::log_level::info, "mcpgate: %u shard%s, upstream %s, %s", shards,
             shards == 1 ? "" : "s", settings.upstream.c_str(),
             tools::describe_gate(*gate).c_str());

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
          core::logf(
              core::log_level::error,
              "mcpgate: SIGHUP: cannot reopen the audit log, still writing to the old file: %s",
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
        auto next = std::const_pointer_cast<net::gateway_config>(tools::resolve_config(
            fresh, bridge_at, next_gate, audit_file, wire->generation + 1, tracing));
        // What cannot change under a running process keeps its running value, and says so.
        for (const std::string& key : tools::keep_restart_only(*wire, settings, fresh, *next))
          core::logf(core::log_level::warn,
                     "mcpgate: SIGHUP: %s changed; it takes effect at the next start (the "
                     "running value stays)",
                     key.c_str());
        wire = next;
        metrics.set_labels(next_gate->labels);
        jwks.watch(fresh.oauth, fresh.base_dir);
        {
          std::lock_guard lock(report_mu);
          policy_report = tools::policy_report(*next_gate);
          reloads.generation = wire->generation;
          ++reloads.ok;
          reloads.last_result = "ok";
          reloads.last_at_ns = core::realtime_ns();
          reloads.last_error.clear();
        }
        for (unsigned i = 0; i < shards; ++i) {
          core::message m;
          m.kind = static_cast<uint32_t>(net::shard_message::reload);
          m.ptr = new std::shared_ptr<const net::gateway_config>(wire);
          while (!group.inbox(i).post(shards, m)) sched_yield();
        }
        core::logf(core::log_level::info, "mcpgate: SIGHUP: reloaded (generation %llu), %s",
                   static_cast<unsigned long long>(wire->generation),
                   tools::describe_gate(*next_gate).c_str());
      } catch (const std::exception& e) {
        core::logf(core::log_level::error,
                   "mcpgate: SIGHUP: reload rejected, the previous policy stays in force: %s",
                   e.what());
        std::lock_guard lock(report_mu);
        ++reloads.rejected;
        reloads.last_result = "rejected";
        reloads.last_at_ns = core::realtime_ns();
        reloads.last_error = e.what();
      }
      continue;
    }
    core::logf(core::log_level::info, "mcpgate: %s: draining (up to %lld ms)",
               sig == SIGTERM ? "SIGTERM" : "SIGINT",
               static_cast<long long>(wire->drain_timeout_ms));
    core::message m;
    m.kind = static_cast<uint32_t>(net::shard_message::drain);
    group.broadcast(m);
    group.join();
    shard_inboxes.store(nullptr, std::memory_order_release);
    // The shards are done with the bridge: end every child (SIGTERM, then SIGKILL), reap them.
    if (hub) hub->stop();
    for (stdio_bridge_run& b : bridges) b.group->broadcast(m);
    for (stdio_bridge_run& b : bridges) b.group->join();
    if (admin) admin->stop();
    core::logf(core::log_level::info, "mcpgate: drained, exiting");
    return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // SIGUSR1 (reopen the audit log) and SIGHUP (reload) are the gateway's, taken by sigwait()
  // once it serves. Blocked from the first instruction, in every subcommand too: logrotate's
  // fallback signals every process named mcpgate, and a gateway still starting (a trust-on-
  // first-use pins fetch) or a `mcpgate catalogue` must not die of it. Children start with an
  // empty mask (core/child_process.h).
  sigset_t early;
  sigemptyset(&early);
  sigaddset(&early, SIGUSR1);
  sigaddset(&early, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &early, nullptr);
  if (argc >= 2 && std::string_view(argv[1]) == "check")
    return tools::check_files(std::vector<std::string>(argv + 2, argv + argc));
  if (argc >= 2 && std::string_view(argv[1]) == "catalogue")
    return tools::catalogue_main(std::vector<std::string>(argv + 2, argv + argc));
  if (argc >= 2 && std::string_view(argv[1]) == "pins")
    return tools::pins_main(std::vector<std::string>(argv + 2, argv + argc));
  if (argc >= 2 && std::string_view(argv[1]) == "approvals")
    return tools::approvals_main(std::vector<std::string>(argv + 2, argv + argc));
  if (argc >= 2 && std::string_view(argv[1]) == "hash-key")
    return hash_key_main(std::vector<std::string>(argv + 2, argv + argc));
  cxxopts::Options options = make_options();
  tools::gateway_settings settings;
  try {
    cxxopts::ParseResult args = options.parse(argc, argv);
    if (args.count("help")) {
      std::printf("%s\n%s", options.help().c_str(), help_epilogue);
      return 0;
    }
    if (args.count("version")) {
      std::printf("mcpgate %s (commit %s)\nbuilt with %s\n", mcpgate::version, tools::build_commit,
                  tools::build_flags);
      return 0;
    }
    std::string log_format = args["log-format"].as<std::string>();
    if (log_format == "json")
      core::set_log_format(core::log_format::json);
    else if (log_format != "text")
      return fail("--log-format: expected \"text\" or \"json\", got \"" + log_format + "\"");
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
