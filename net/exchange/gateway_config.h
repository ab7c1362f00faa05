#pragma once

// Everything a shard serves with, as one immutable object per configuration generation:
// listener rules, routes and upstreams, limits and timeouts, the audit log, and the gate
// (identities, grants, policies). Built and validated at load (tools/mcpgate/config.*),
// swapped whole on SIGHUP; an exchange keeps the generation it started with to its end, so a
// reload never changes the rules under a call in flight.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/log_writer.h"
#include "net/address.h"
#include "net/exchange/gate.h"
#include "net/http/parser.h"
#include "net/mcp/jsonrpc.h"
#include "net/mcp/session_token.h"
#include "net/observe/audit_record.h"
#include "net/observe/trace.h"
#include "net/upstream/target.h"

namespace mcpgate::net {

// Requests to `path` go to upstreams[upstream]; policies are looked up for `server` (empty:
// the grant's own policy).
struct route {
  std::string path;
  uint32_t upstream = 0;
  std::string server;
  // The federated endpoint: no policy decides here and no line is audited for what is
  // forwarded, since every call the hub makes goes through a server's own route, which
  // decides and audits it under the server's own tool name (refusals here are audited).
  bool federated = false;
};

struct gateway_config {
  uint64_t generation = 1;
  endpoint listen;
  std::vector<upstream_target> upstreams;
  std::vector<route> routes;
  // Origins allowed to call; empty: an Origin must name a host the listener allows.
  std::vector<std::string> allowed_origins;
  // Host values accepted ("host" or "host:port"); empty: local names on a loopback listener,
  // anything on another (net/mcp/request_rules.h).
  std::vector<std::string> allowed_hosts;
  // Seals the session ids clients receive (net/mcp/session_token.h).
  session_key session_seal_key = random_session_key();

  http_limits http;
  jsonrpc_limits jsonrpc{.max_body = 4 * 1024 * 1024};  // the same bound as http.max_body
  uint32_t max_connections = 10000;  // per shard; beyond it: 503 and close, accept goes on

  int64_t header_timeout_ms = 10'000;  // slowloris: a request head must arrive by then
  int64_t idle_timeout_ms = 60'000;    // keep-alive client connection (and pooled upstream) idle
  int64_t drain_timeout_ms = 10'000;   // SIGTERM: in-flight exchanges get this long
  // A stage that holds an exchange (an approval, a fleet count) gives up after this unless it
  // sets a deadline of its own.
  int64_t hold_timeout_ms = 60'000;

  // The audit log: one line per JSON-RPC message. No file: no audit.
  struct audit_settings {
    std::shared_ptr<core::log_file> file;
    arguments_mode arguments = arguments_mode::hash;
    core::log_writer_options writer;
  } audit;

  uint32_t recv_buffers = 1024;       // provided buffers per shard (power of two)
  uint32_t recv_buffer_size = 16384;  // bytes each
  size_t relay_high_water = 1 << 20;  // pause the upstream when this much waits for the client

  // Spans go here (net/observe/trace.h); null: tracing off. Started with the process, kept by
  // reloads.
  std::shared_ptr<trace_exporter> tracing;
  int64_t trace_flush_ns = 200'000'000;  // a shard hands its spans over at least this often

  // Identities, grants and their policies; an empty gate_config allows everything.
  std::shared_ptr<const gate_config> gate = std::make_shared<const gate_config>();

  // The route serving `path`, or null.
  const route* find_route(std::string_view path) const {
    for (const route& r : routes)
      if (r.path == path) return &r;
    return nullptr;
  }

  // One upstream at one path: what --upstream and the config's "upstream" key mean.
  void serve_one(upstream_target target, std::string path) {
    upstreams = {std::move(target)};
    routes = {route{std::move(path), 0, {}}};
  }
};

}  // namespace mcpgate::net
