#pragma once

// The admin listener: metrics, health, readiness, the policy in force and log reopening, on a
// thread of its own (control plane, never a shard). Connections are served one at a time, each
// answered and closed; a slow client is cut off after a deadline so it cannot hold the others
// back for long.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

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
  // POST /admin/reopen: reopens the audit log. Empty string on success, else the reason (500).
  std::function<std::string()> reopen;
};

struct admin_options {
  std::string host = "127.0.0.1";  // loopback by default: the admin routes are not public
  uint16_t port = 0;               // 0: any free port (see admin_server::port())
  // A connection must deliver its whole request within this time.
  int request_timeout_ms = 5000;
  size_t max_request_bytes = 64 * 1024;
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
  void serve(int fd);
  std::string respond(std::string_view method, std::string_view target);

  admin_options options_;
  admin_handlers handlers_;
  int listen_fd_;
  int wake_fd_;  // eventfd: written by stop()
  uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace mcpgate::net
