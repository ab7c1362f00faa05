#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/byte_buffer.h"
#include "core/log_writer.h"
#include "core/send_queue.h"
#include "core/shard.h"
#include "net/address.h"
#include "net/exchange/gate.h"
#include "net/exchange/proxy_config.h"
#include "net/http/parser.h"
#include "net/mcp/jsonrpc.h"
#include "net/mcp/request_rules.h"
#include "net/mcp/session_token.h"
#include "net/observe/shard_stats.h"

namespace mcpgate::net {

// Messages the control thread sends to every shard.
enum class shard_message : uint32_t {
  drain = 1,   // stop accepting, finish in-flight exchanges, then end the loop
  reload = 2,  // ptr: a heap-allocated std::shared_ptr<const gate_config>, owned by the receiver
  reopen_audit = 3,  // ptr: a heap-allocated std::shared_ptr<core::log_file>, owned likewise
};

// One shard of the gateway: accepts MCP Streamable HTTP clients on its own SO_REUSEPORT socket,
// asks the gate about every request, and relays allowed ones to the upstream over a per-shard
// keep-alive pool. Responses (JSON or SSE) are relayed as they arrive.
class proxy_shard final : public core::shard_handler {
 public:
  // listen_fd: this shard's listening socket, owned (closed) by the shard from now on.
  // metrics may be null (no admin listener); the shard writes only its own slot of it.
  proxy_shard(std::shared_ptr<const proxy_config> config, std::shared_ptr<const gate_config> gate,
              int listen_fd, shard_stats& stats, metrics_registry* metrics = nullptr);
  ~proxy_shard() override;

  void on_start(core::reactor& r) override;
  void on_completion(const io_uring_cqe& cqe) override;
  void on_tick(int64_t now_ns) override;
  void on_message(const core::message& m) override;
  bool finished() const override;

 private:
  struct client_conn;
  struct upstream_conn;

  // client side
  void arm_accept();
  void on_accept(const io_uring_cqe& cqe);
  void arm_client_recv(client_conn& c);
  void on_client_recv(client_conn& c, const io_uring_cqe& cqe);
  void on_client_sent(client_conn& c, const io_uring_cqe& cqe);
  size_t max_pending_input() const;
  void resume_reading(client_conn& c);
  void process_client(client_conn& c);
  bool begin_request(client_conn& c, const request_head& h);
  bool open_session(client_conn& c, std::string_view token);
  bool seal_session(client_conn& c, std::string_view upstream_id, std::string& out);
  bool read_request_body(client_conn& c);
  void handle_request(client_conn& c);
  void forward(client_conn& c);
  void finish_exchange(client_conn& c);
  bool emit_filtered(upstream_conn& u, client_conn& c, bool done);
  void send_client(client_conn& c, std::string_view bytes);
  void flush_client(client_conn& c);
  // Every reply the gateway makes is recorded in the audit log with `decision`; with
  // use_verdicts, each message's own verdict from the gate (denials).
  void reply(client_conn& c, int http_status, std::string_view extra_headers,
             std::string_view content_type, std::string_view body, bool close_after,
             call_decision decision = call_decision::invalid, bool use_verdicts = false);
  void reply_jsonrpc_error(client_conn& c, int http_status, int code, std::string_view message,
                           std::string_view id, bool close_after,
                           call_decision decision = call_decision::invalid);
  void reply_gateway_error(client_conn& c, int http_status, int code, std::string_view message);
  // The record of an exchange (audit lines and request metrics): what is known when the request
  // is decided is taken then (body null: one record for a request without JSON-RPC messages),
  // the outcome when the exchange ends. The audit line's head is rendered at the first step, so
  // nothing has to be copied to wait for the upstream.
  void record_prepare(client_conn& c, const jsonrpc_result* body);
  void record_finish(client_conn& c, call_decision decision, bool use_verdicts, bool forwarded,
                     int upstream_status);
  void close_client(client_conn& c);
  void linger_client(client_conn& c);
  void maybe_release_client(client_conn& c);
  void release_client(client_conn& c);

  // upstream side
  upstream_conn* take_upstream();
  void connect_upstream(upstream_conn& u);
  void on_upstream_connected(upstream_conn& u, const io_uring_cqe& cqe);
  void arm_upstream_recv(upstream_conn& u);
  void on_upstream_recv(upstream_conn& u, const io_uring_cqe& cqe);
  void on_upstream_sent(upstream_conn& u, const io_uring_cqe& cqe);
  void send_upstream(upstream_conn& u);
  void relay_response(upstream_conn& u, std::string_view fresh);
  void upstream_failed(upstream_conn& u, int err, bool before_response);
  void release_upstream_to_pool(upstream_conn& u);
  void uncount_sse(upstream_conn& u);
  void close_upstream(upstream_conn& u);
  void release_upstream(upstream_conn& u);
  void pause_upstream(upstream_conn& u);
  void resume_upstream(upstream_conn& u);

  client_conn* client_at(uint32_t slot, uint32_t gen);
  upstream_conn* upstream_at(uint32_t slot, uint32_t gen);
  void cancel_fd(int fd);
  void start_drain();

  std::shared_ptr<const proxy_config> config_;
  std::shared_ptr<const gate_config> gate_config_;
  std::unique_ptr<gate> gate_;
  std::unique_ptr<core::log_writer> audit_;
  bool audit_closing_ = false;
  std::string audit_lines_;  // lines of one exchange, handed to audit_ at once
  uint64_t next_req_ = 0;
  int listen_fd_;
  shard_stats& stats_;
  metrics_registry* registry_;
  shard_metrics* metrics_ = nullptr;
  core::reactor* reactor_ = nullptr;
  std::unique_ptr<core::buffer_ring> buffers_;
  jsonrpc_extractor extractor_;
  head_rules rules_;
  session_sealer sealer_;
  std::string reply_scratch_;  // a whole reply the gateway makes
  std::string error_body_;     // the JSON-RPC error body inside it; both reused, never per request

  std::vector<std::unique_ptr<client_conn>> clients_;
  std::vector<uint32_t> free_clients_;
  std::vector<std::unique_ptr<upstream_conn>> upstreams_;
  std::vector<uint32_t> free_upstreams_;
  std::vector<uint32_t> idle_upstreams_;  // the keep-alive pool
  std::vector<uint32_t> rearm_clients_;   // recv ended with ENOBUFS; re-armed after buffers return
  std::vector<uint32_t> rearm_upstreams_;

  bool accept_armed_ = false;
  bool draining_ = false;
  int64_t drain_deadline_ns_ = 0;
  uint32_t open_clients_ = 0;
  uint32_t open_upstreams_ = 0;
  uint64_t next_conn_id_ = 0;
};

}  // namespace mcpgate::net
