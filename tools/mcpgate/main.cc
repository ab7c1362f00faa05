// mcpgate: a policy gateway for the Model Context Protocol.
//
// The main thread is the control plane: it reads the configuration, creates the listening
// sockets, starts one shard per core and then only waits for signals (SIGTERM/SIGINT drain,
// SIGHUP reload). Everything on the request path runs on the shard threads.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cxxopts.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/build_info.h"
#include "core/ring.h"
#include "core/shard.h"
#include "net/gate.h"
#include "net/proxy.h"
#include "tools/mcpgate/config.h"

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
                     "Run with no flags to serve the embedded default: listen on 127.0.0.1:8080 "
                     "and forward to http://127.0.0.1:3001/mcp.\n");
  o.custom_help("[--config FILE] [--listen HOST:PORT] [--upstream URL] [options]");
  o.add_options()
      ("listen", "Address clients connect to, HOST:PORT (port 0 picks a free port)",
       cxxopts::value<std::string>())
      ("upstream", "The MCP server's Streamable HTTP endpoint, http://HOST[:PORT]/PATH",
       cxxopts::value<std::string>())
      ("shards", "Shards (threads, each with its own io_uring and listener); default: one per "
                 "online CPU", cxxopts::value<unsigned>())
      ("path", "Endpoint path clients use (default: the upstream URL's path)",
       cxxopts::value<std::string>())
      ("policy", "Policy document (JSON) for the default grant", cxxopts::value<std::string>())
      ("audit", "Audit log file ('-' for stdout)", cxxopts::value<std::string>())
      ("admin", "Admin listener HOST:PORT (/metrics, /healthz, /readyz)",
       cxxopts::value<std::string>())
      ("config", "JSON config file; unknown keys are errors; flags override it",
       cxxopts::value<std::string>())
      ("version", "Print the version and exit")
      ("h,help", "Print this help and exit");
  return o;
}

// Listening sockets for every shard on one port. With port 0 the first socket picks the port
// and the others bind to the same one, so SO_REUSEPORT puts them in one group.
std::vector<int> make_listeners(net::endpoint at, unsigned shards) {
  std::vector<int> fds;
  for (unsigned i = 0; i < shards; ++i) {
    int fd = net::listen_socket(at, 4096);
    if (i == 0 && at.port == 0) {
      at.port = net::bound_port(fd);
      if (at.addr.ss_family == AF_INET)
        reinterpret_cast<sockaddr_in&>(at.addr).sin_port = htons(at.port);
      else
        reinterpret_cast<sockaddr_in6&>(at.addr).sin6_port = htons(at.port);
    }
    fds.push_back(fd);
  }
  return fds;
}

int run(const tools::gateway_settings& settings) {
  std::shared_ptr<const net::proxy_config> wire;
  try {
    wire = tools::resolve_wire(settings);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  if (!settings.audit.empty())
    return fail("--audit: the audit log is not available in this build yet; remove the flag");
  if (!settings.admin.empty())
    return fail("--admin: the admin listener is not available in this build yet; remove the flag");
  if (!settings.policy.empty() || !settings.identities_json.empty() || !settings.grants_json.empty())
    return fail("--policy/identities/grants: the policy engine is not wired in this build yet");

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
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::vector<int> listeners;
  try {
    listeners = make_listeners(wire->listen, shards);
  } catch (const std::exception& e) {
    return fail(std::string("--listen: ") + e.what());
  }
  uint16_t port = net::bound_port(listeners[0]);

  auto gate = std::make_shared<const net::gate_config>();
  std::vector<std::unique_ptr<net::shard_stats>> stats;
  for (unsigned i = 0; i < shards; ++i) stats.push_back(std::make_unique<net::shard_stats>());

  core::shard_group group(shards, 4096, 10'000'000);
  std::string error = group.start([&](unsigned i) {
    return std::make_unique<net::proxy_shard>(wire, gate, listeners[i], *stats[i]);
  });
  if (!error.empty()) {
    std::fprintf(stderr, "mcpgate: %s\n", error.c_str());
    std::_Exit(1);  // shards that did start cannot be stopped cleanly without their peers
  }
  std::string host = wire->listen.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  std::fprintf(stderr, "mcpgate: listening on %s:%u\n", host.c_str(), port);
  std::fprintf(stderr, "mcpgate: %u shard%s, upstream %s, no policy: every call is allowed\n",
               shards, shards == 1 ? "" : "s", settings.upstream.c_str());
  std::fflush(stderr);

  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      std::fprintf(stderr, "mcpgate: SIGHUP: nothing to reload without a policy\n");
      continue;
    }
    std::fprintf(stderr, "mcpgate: %s: draining (up to %lld ms)\n",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT",
                 static_cast<long long>(wire->drain_timeout_ms));
    core::message m;
    m.kind = static_cast<uint32_t>(net::shard_message::drain);
    group.broadcast(m);
    group.join();
    std::fprintf(stderr, "mcpgate: drained, exiting\n");
    return 0;
  }
}

}  // namespace

int main(int argc, char** argv) {
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
    if (args.count("config")) tools::load_config_file(args["config"].as<std::string>(), settings);
    if (args.count("listen")) settings.listen = args["listen"].as<std::string>();
    if (args.count("upstream")) settings.upstream = args["upstream"].as<std::string>();
    if (args.count("shards")) {
      settings.shards = args["shards"].as<unsigned>();
      if (settings.shards == 0 || settings.shards > 256)
        return fail("--shards: expected 1 to 256, got " + std::to_string(settings.shards));
    }
    if (args.count("path")) settings.path = args["path"].as<std::string>();
    if (args.count("policy")) settings.policy = args["policy"].as<std::string>();
    if (args.count("audit")) settings.audit = args["audit"].as<std::string>();
    if (args.count("admin")) settings.admin = args["admin"].as<std::string>();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return run(settings);
}
