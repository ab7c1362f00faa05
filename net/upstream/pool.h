#pragma once

// A shard's connections to its upstreams: made on demand, kept alive between exchanges in a
// pool per upstream, read with multishot recv into the shard's provided buffers. What arrives
// is handed to the exchange side (upstream_events); the pool knows sockets, not MCP.

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/ring.h"
#include "core/shard.h"
#include "core/slot_table.h"
#include "core/timer_wheel.h"
#include "net/observe/metrics.h"
#include "net/observe/shard_stats.h"
#include "net/upstream/connection.h"
#include "net/upstream/target.h"

namespace mcpgate::net {

// What the exchange side hears from a connection carrying one of its requests.
class upstream_events {
 public:
  virtual ~upstream_events() = default;
  // Response bytes arrived; `fresh` is valid during the call only.
  virtual void on_bytes(upstream_conn& u, std::string_view fresh) = 0;
  // The upstream closed the connection (a FIN) while it carried a request.
  virtual void on_closed(upstream_conn& u) = 0;
  // Connecting, sending or receiving failed (errno: ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...).
  virtual void on_failed(upstream_conn& u, int err) = 0;
};

class upstream_pool {
 public:
  // Ops the pool owns, within the shard's user_data numbering (core/user_data.h).
  enum op : uint8_t { op_connect = 0x20, op_recv, op_send, op_deadline, op_cancel };
  static bool owns(uint8_t op) { return op >= op_connect && op <= op_cancel; }

  upstream_pool(core::reactor& reactor, core::buffer_ring& buffers, core::timer_wheel& timers,
                shard_stats& stats, shard_metrics* metrics, int64_t idle_timeout_ms)
      : reactor_(reactor),
        buffers_(buffers),
        timers_(timers),
        stats_(stats),
        metrics_(metrics),
        idle_timeout_ms_(idle_timeout_ms) {}
  ~upstream_pool();

  void set_events(upstream_events* events) { events_ = events; }

  // A connection for upstream `index` (`target` describes it): a pooled one when there is one,
  // else a new one, connecting. Null when not even a socket could be made.
  upstream_conn* take(uint32_t index, const upstream_target& target);
  // Sends the connection's request (u.request) once it is connected.
  void send(upstream_conn& u);
  void pause(upstream_conn& u);
  void resume(upstream_conn& u);
  // The exchange on `u` is over and the connection can carry another.
  void release_to_pool(upstream_conn& u, uint32_t max_idle);
  // Closes it (cancelling what is in flight); it goes once nothing is.
  void close(upstream_conn& u);
  void set_deadline(upstream_conn& u, int64_t at_ns);

  void on_completion(const io_uring_cqe& cqe);
  void on_deadline(uint32_t slot, uint32_t gen, int64_t fired_ns, int64_t now_ns);

  upstream_conn* find(uint32_t slot, uint32_t gen) { return conns_.find(slot, gen); }
  uint32_t open() const { return conns_.live(); }
  void close_idle();  // drain: pooled connections go at once
  void close_all();   // drain deadline

 private:
  void connect(upstream_conn& u, const upstream_target& target);
  void arm_recv(upstream_conn& u);
  void on_connected(upstream_conn& u, const io_uring_cqe& cqe);
  void on_recv(upstream_conn& u, const io_uring_cqe& cqe);
  void on_sent(upstream_conn& u, const io_uring_cqe& cqe);
  void release(upstream_conn& u);
  void cancel_fd(int fd);

  core::reactor& reactor_;
  core::buffer_ring& buffers_;
  core::timer_wheel& timers_;
  shard_stats& stats_;
  shard_metrics* metrics_;
  int64_t idle_timeout_ms_;
  upstream_events* events_ = nullptr;
  core::slot_table<upstream_conn> conns_;
  std::vector<std::vector<uint32_t>> idle_;  // per upstream index: the keep-alive pool
};

}  // namespace mcpgate::net
