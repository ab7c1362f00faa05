#pragma once

// The admin listener: metrics, health, readiness, the policy in force and log reopening, on a
// thread of its own (control plane, never a shard). Connections are served concurrently from
// one poll loop, each answered and closed; a slow client is cut off after a deadline. Host is
// checked as on the MCP listener, and with a token configured every route but the probes
// needs it.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "net/approval/registry.h"
#include "net/http/parser.h"
#include "net/mcp/request_rules.h"

namespace mcpgate::net {

// What /readyz reports. Every flag must hold for 200; otherwise 503 with the reasons.
struct readiness {
  bool listening = false;
  bool upstream_reachable = false;
  bool policy_loaded = false;
};

// The answers the owner supplies; each is called on the admin thread, so it must be safe to
// call from there (read atomics, take a control-plane lock, copy a shared_ptr).
struct admin_handlers {
  std::function<std::string()> metrics;  // GET /metrics: exposition text
  std::function<readiness()> ready;      // GET /readyz
  std::function<std::string()> policy;   // GET /admin/policy: a JSON document
  std::function<std::string()> limits;   // GET /admin/limits: counters in use, JSON
  std::function<std::string()> reload;   // GET /admin/reload: generation and last outcome, JSON
  // POST /admin/reopen: reopens the audit log. Empty string on success, else the reason (500).
  std::function<std::string()> reopen;
  // /approvals, /approvals/events, /approvals/<id>/approve|deny and /ui/approvals
  // (net/approval/admin_routes.h); null: not served. Outlives the server.
  approval_registry* approvals = nullptr;
};

struct admin_options {
  std::string host = "127.0.0.1";  // loopback by default: the admin routes are not public
  uint16_t port = 0;               // 0: any free port (see admin_server::port())
  // A connection must deliver its whole request within this time.
  int request_timeout_ms = 5000;
  size_t max_request_bytes = 64 * 1024;
  size_t max_connections = 64;  // served at once; more get 503 and are closed
  // Of those, open /approvals/events streams; a stream whose reader falls this far behind is
  // closed (the page reconnects and gets a fresh snapshot).
  size_t max_event_streams = 16;
  size_t max_stream_backlog = 1 << 20;
  int keepalive_interval_ms = 15'000;  // a comment line on a quiet stream
  // Host header values accepted (as the MCP listener's allowed_hosts); empty: localhost,
  // 127.0.0.1 and [::1] when bound to loopback, anything otherwise.
  std::vector<std::string> allowed_hosts;
  // SHA-256 of the bearer token every route but /healthz and /readyz requires; none: open.
  std::optional<std::array<unsigned char, 32>> token_sha256;
};

class admin_server {
 public:
  struct start_result {
    std::unique_ptr<admin_server> server;  // null on failure
    std::string error;                     // names the address and the cause
  };

  // Binds, listens and starts the thread. Control plane: may take a moment, never throws.
  static start_result start(const admin_options& options, admin_handlers handlers);

  // Stops (see stop()).
  ~admin_server();
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  // The bound port (useful with port 0).
  uint16_t port() const { return port_; }
  // Wakes the thread (even in the middle of a client's request) and joins it; idempotent.
  void stop();

 private:
  admin_server(admin_options options, admin_handlers handlers, int listen_fd, int wake_fd,
               uint16_t port);
  void run();
  // The answer to one request; *stream set: an SSE head only, events follow.
  std::string respond(const request_head& head, std::string_view body, bool* stream);

  admin_options options_;
  admin_handlers handlers_;
  int listen_fd_;
  int wake_fd_;  // eventfd: written by stop()
  uint16_t port_;
  host_allowlist hosts_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace mcpgate::net
