#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/log_writer.h"
#include "net/address.h"
#include "net/http/parser.h"
#include "net/mcp/jsonrpc.h"
#include "net/mcp/session_token.h"
#include "net/observe/audit_record.h"

namespace mcpgate::net {

// The wire settings of the gateway. Validated at load (tools/mcpgate/config.*), immutable
// afterwards, shared by every shard.
struct proxy_config {
  endpoint listen;
  http_url upstream;
  // The MCP endpoint path clients use; other paths get 404. Defaults to the upstream's path.
  std::string path;
  // Origins allowed to call (DNS-rebinding protection); empty: an Origin must name a host the
  // listener allows (see allowed_hosts).
  std::vector<std::string> allowed_origins;
  // Host header values accepted ("host" or "host:port"); empty: localhost, 127.0.0.1 and [::1]
  // on a loopback listener, anything on another (see net/request_rules.h).
  std::vector<std::string> allowed_hosts;
  // The client's Authorization header reaches the upstream even when the gateway
  // authenticated it (off: the gateway's credential is never passed through).
  bool forward_authorization = false;
  // The upstream is the stdio bridge: requests carry the caller's identity for its per-identity
  // process cap.
  bool upstream_is_stdio = false;
  // Seals the session ids clients receive (net/session_token.h). Random per process unless the
  // configuration gives one.
  session_key session_seal_key = random_session_key();

  http_limits http;
  jsonrpc_limits jsonrpc{.max_body = 4 * 1024 * 1024};  // the same bound as http.max_body
  uint32_t max_connections = 10000;   // per shard; beyond it: 503 and close, accept goes on
  uint32_t max_idle_upstreams = 256;  // per shard, kept in the keep-alive pool

  int64_t header_timeout_ms = 10'000;  // slowloris: a request head must arrive by then
  int64_t idle_timeout_ms = 60'000;    // keep-alive client connection with no request
  int64_t upstream_connect_timeout_ms = 5'000;
  int64_t upstream_response_timeout_ms = 60'000;  // from request sent to response head
  int64_t sse_idle_timeout_ms = 0;                // 0: streams may stay quiet for ever
  int64_t drain_timeout_ms = 10'000;              // SIGTERM: in-flight exchanges get this long

  // The audit log: one line per JSON-RPC message. No file: no audit.
  struct audit_settings {
    std::shared_ptr<core::log_file> file;
    arguments_mode arguments = arguments_mode::hash;
    core::log_writer_options writer;
  } audit;

  uint32_t recv_buffers = 1024;       // provided buffers per shard (power of two)
  uint32_t recv_buffer_size = 16384;  // bytes each
  size_t relay_high_water = 1 << 20;  // pause the upstream when this much waits for the client
};

}  // namespace mcpgate::net
