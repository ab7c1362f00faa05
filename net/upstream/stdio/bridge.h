#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/child_process.h"
#include "core/send_queue.h"
#include "core/shard.h"
#include "core/slot_table.h"
#include "core/stderr_log.h"
#include "net/address.h"
#include "net/observe/shard_stats.h"
#include "net/observe/stdio_stats.h"
#include "net/upstream/stdio/message.h"

namespace mcpgate::net {

// An upstream MCP server that speaks stdio: a command the gateway starts, exchanging
// newline-delimited JSON-RPC on the child's stdin and stdout.
struct stdio_upstream_config {
  core::spawn_options command;  // argv, environment, working directory
  // One child for every session (the server is stateless) instead of one per session; request
  // ids are then rewritten on the way in, so that two clients' id 1 do not collide, and
  // restored on the way out.
  bool shared = false;
  uint32_t max_processes = 64;  // children at once; initialize past it: 503
  // Children one identity may run at once (0: a quarter of max_processes, at least 1), so one
  // caller cannot take every child.
  uint32_t max_processes_per_identity = 0;
  int64_t session_idle_timeout_ms = 1'800'000;  // no request for this long ends the session
  bool end_session_on_disconnect = false;       // a client leaving mid-exchange ends its session
  int64_t kill_grace_ms = 2'000;                // SIGTERM, then SIGKILL after this
  // A child that ends on its own sooner than min_uptime_ms after starting counts as a crash;
  // consecutive crashes delay the next start by restart_backoff_min_ms, doubling up to max.
  int64_t min_uptime_ms = 2'000;
  int64_t restart_backoff_min_ms = 250;
  int64_t restart_backoff_max_ms = 30'000;
  size_t max_line_bytes = 16 * 1024 * 1024;  // one message from the child; longer: protocol error
  size_t max_queued_bytes = 1024 * 1024;     // per session, server messages waiting for a GET
};

// Bridges Streamable HTTP to stdio children. It runs on a thread of its own (a one-reactor
// shard_group) and serves HTTP/1.1 on a Unix socket that every proxy shard's upstream pool
// connects to as it would to a remote server: the proxy's path (policy, audit, metrics,
// response filtering) is the same for both kinds of upstream, and a session's child is
// reachable from whichever shard a client's next connection lands on.
//
// Per session (default): initialize starts a child and the response carries a new
// Mcp-Session-Id; DELETE, the idle timeout or (optionally) a client leaving end it. A POST with
// requests is answered with the child's response as JSON when that is the first thing the
// child says, otherwise as an SSE stream carrying the notifications and server requests that
// arrive while it is open, ended after the last response. Server messages while no POST is
// open go to the session's GET stream, or wait for one (bounded).
class stdio_bridge final : public core::shard_handler {
 public:
  // Binds the listening Unix socket the shards connect to (net/address.h).
  using bound_socket = internal_socket;
  static bound_socket bind_socket();

  stdio_bridge(std::shared_ptr<const stdio_upstream_config> config, int listen_fd,
               stdio_bridge_stats& stats);
  ~stdio_bridge() override;

  void on_start(core::reactor& r) override;
  void on_completion(const io_uring_cqe& cqe) override;
  void on_tick(int64_t now_ns) override;
  void on_message(const core::message& m) override;  // shard_message::drain ends every child
  bool finished() const override;

 private:
  struct conn;
  struct process;
  struct session;
  struct route;

  // HTTP side
  void arm_accept();
  void arm_recv(conn& c);
  void on_recv(conn& c, const io_uring_cqe& cqe);
  void process_input(conn& c);
  void handle_post(conn& c, std::string_view session_id, std::string_view identity,
                   std::string_view body);
  bool in_flight(const process& p, const session& s, const std::string& key) const;
  void handle_get(conn& c, std::string_view session_id);
  void handle_delete(conn& c, std::string_view session_id);
  void reply(conn& c, int status, std::string_view extra_headers, std::string_view content_type,
             std::string_view body);
  void reply_error(conn& c, int status, int code, std::string_view message);
  void start_stream(conn& c, std::string_view extra_headers);
  void stream_event(conn& c, std::string_view message);
  void end_stream(conn& c);
  void flush(conn& c);
  void note_backlog(conn& c);
  void release_backlog(conn& c, bool gone);
  void on_sent(conn& c, const io_uring_cqe& cqe);
  void exchange_over(conn& c);
  void close_conn(conn& c);
  void maybe_release_conn(conn& c);

  // stdio side
  process* start_process(std::string_view identity, std::string& error, int& http_status,
                         int& code);
  void arm_read(process& p, bool err);
  void on_read(process& p, bool err, const io_uring_cqe& cqe);
  void write_child(process& p, std::string_view line);
  void flush_child(process& p);
  void on_written(process& p, const io_uring_cqe& cqe);
  void on_exit_ready(process& p);
  void answer(conn& c, std::string_view response);
  void deliver(process& p, std::string_view line);
  void send_to_session(session& s, std::string_view line);
  void child_log(process& p, std::string_view line);
  // The gateway's stderr, written through the ring: a stuck terminal must not stall the bridge.
  // `message` is one line (a trailing newline is dropped); it gets the timestamp and level.
  void log_line(std::string_view message, core::log_level level = core::log_level::info);
  void flush_log();
  void stop_process(process& p);
  void finalize_process(process& p);
  void maybe_release_process(process& p);

  session* find_session(std::string_view id);
  session* session_or_reply(conn& c, std::string_view session_id);
  void end_session(session& s, bool stop_child);

  conn* conn_at(uint32_t slot, uint32_t gen);
  process* process_at(uint32_t slot, uint32_t gen);
  session* session_at(uint32_t slot, uint32_t gen);

  std::shared_ptr<const stdio_upstream_config> config_;
  int listen_fd_;
  stdio_bridge_stats& stats_;
  core::reactor* reactor_ = nullptr;
  stdio_message_scanner scanner_;

  core::slot_table<conn> conns_;
  core::slot_table<process> processes_;
  core::slot_table<session> sessions_;
  std::unordered_map<std::string, uint32_t> session_ids_;  // Mcp-Session-Id -> session slot
  std::map<std::string, uint32_t, std::less<>> identity_processes_;  // children per identity
  uint32_t shared_process_ = UINT32_MAX;                             // shared mode: the one child
  uint32_t consecutive_crashes_ = 0;
  int64_t next_start_ns_ = 0;   // crash-loop backoff
  uint64_t next_child_id_ = 0;  // shared mode: ids given to requests on the way to the child
  bool accept_armed_ = false;
  bool draining_ = false;
  std::string scratch_;
  core::send_queue log_;
  bool log_in_flight_ = false;
  bool log_cancelled_ = false;
};

}  // namespace mcpgate::net
