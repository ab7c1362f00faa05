#pragma once

// The federated endpoint (issue 15): one MCP server made of every configured server. The hub
// is the MCP server a client meets at /mcp: it answers initialize and ping itself, lists the
// tools of every server that answers as "<server><separator><tool>", and routes a tools/call
// by its prefix, rewriting only the name. It reaches each server through that server's own
// route on the gateway's listener (/mcp/<name>), with the client's own credential, so policy,
// limits, pins, audit and metrics apply there exactly as for a client of that route, under
// the server's own (unprefixed) tool names.
//
// The shards reach the hub as an upstream on an abstract Unix socket that only this process
// may connect to (SO_PEERCRED); the shard has already authenticated the caller and opened the
// session token it sealed for that identity, so a session is the identity's alone. The hub's
// sessions hold, per server, the session token that server's route sealed for the same
// identity, opened lazily on first use.
//
// A server that cannot be reached, times out or answers 5xx is left out of tools/list (log
// line, mcpgate_upstream_up{server} 0), retried after a backoff that doubles, and listed again
// once it answers; either change sends notifications/tools/list_changed on every open GET
// stream. A call to a server that is down gets a JSON-RPC error naming it; no call is sent
// twice, except after a 404 or 400 for the server's session (a server that restarted refuses
// the session it forgot), which proves the server did not run it.
//
// Control-plane-shaped on purpose: a thread per shard connection (bounded), blocking sockets
// with timeouts, a mutex over the sessions. None of this runs on a shard thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "net/address.h"

namespace mcpgate::net {

struct federated_server {
  std::string name;  // its tools' prefix
  std::string path;  // its own route on the gateway
};

struct federation_config {
  std::vector<federated_server> servers;  // in the config's order, which tools/list keeps
  std::string separator = "__";
  endpoint gateway;                // the gateway's own listener
  std::string host_header;         // the Host of requests to it
  uint32_t max_connections = 512;  // from the shards at once; beyond: closed at accept
  uint32_t max_sessions = 4096;    // all identities; beyond: initialize answers 503
  uint32_t max_sessions_per_identity = 256;
  int64_t session_idle_timeout_ms = 1'800'000;  // a session unused this long is ended
  int64_t request_timeout_ms = 60'000;  // connect, and each read and write, of a server request
  int64_t retry_min_ms = 1'000;         // a failed server is left out this long, doubling
  int64_t retry_max_ms = 30'000;
};

// Whether each server is up, for the metrics (read by the admin listener's thread).
struct federation_stats {
  explicit federation_stats(size_t servers)
      : up(std::make_unique<std::atomic<uint8_t>[]>(servers)), count(servers) {
    for (size_t i = 0; i < servers; ++i) up[i].store(1);
  }
  std::unique_ptr<std::atomic<uint8_t>[]> up;
  size_t count;
  std::atomic<uint64_t> sessions{0};
};

class federation_hub {
 public:
  // Binds the Unix socket the shards connect to (net/address.h).
  using bound_socket = internal_socket;
  static bound_socket bind_socket();

  federation_hub(std::shared_ptr<const federation_config> config, int listen_fd,
                 federation_stats& stats);
  ~federation_hub();
  federation_hub(const federation_hub&) = delete;
  federation_hub& operator=(const federation_hub&) = delete;

  void start();
  // Stops accepting, ends every connection and stream, joins every thread.
  void stop();

  // "mcpgate_upstream_up{server=...}" lines (Prometheus text) for `names`.
  static std::string render_metrics(const federation_config& config, const federation_stats& stats);

 private:
  struct state;
  std::unique_ptr<state> s_;
};

}  // namespace mcpgate::net
