#pragma once

// An upstream as every shard reaches it: an address (a TCP server, or a stdio bridge's Unix
// socket), what a forwarded request says to it, and how long it may take. Built at load,
// immutable.

#include <cstdint>
#include <string>

#include "net/address.h"

namespace mcpgate::net {

struct upstream_target {
  std::string name;         // "default" for the single-upstream shorthand
  uint16_t index = 0;       // its place among the configuration's upstreams (metrics)
  endpoint where;           // connect() here
  std::string host_header;  // Host a forwarded request carries
  std::string path;         // the request path at the upstream
  // Served by a stdio bridge (net/upstream/stdio/): requests carry the caller's identity for
  // its per-identity process cap, and its "not run" mark is believed.
  bool stdio = false;
  // The client's Authorization header is forwarded even when the gateway authenticated it.
  bool forward_authorization = false;
  // The gateway's own credential for this upstream ("credential": a header and its value, from
  // the config or the environment): it replaces any header of that name the client sent. A
  // secret: never logged.
  std::string credential_header;
  std::string credential_value;
  // The federated endpoint's hub (net/federation/hub.h): requests carry the caller's identity,
  // and its credential, which the hub presents again to each server's own route.
  bool federation = false;

  int64_t connect_timeout_ms = 5'000;
  int64_t response_timeout_ms = 60'000;  // request sent to response head, and between body reads
  int64_t sse_idle_timeout_ms = 0;       // 0: an event stream may stay quiet for ever
  uint32_t max_idle = 256;               // pooled keep-alive connections per shard

  // An HTTP upstream at `url` (http://host[:port]/path).
  static upstream_target http(std::string name, const http_url& url) {
    upstream_target t;
    t.name = std::move(name);
    t.where = url.where;
    t.host_header = url.host_header;
    t.path = url.path;
    return t;
  }
};

}  // namespace mcpgate::net
