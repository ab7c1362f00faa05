#pragma once

// The client side of a shard: accepting connections, reading requests off them (strict heads,
// bounded bodies, pipelining), running each exchange through the stage chain, sending the
// gateway's own replies and the relayed responses, and closing connections the way HTTP wants
// (cancel first, linger after a reply that ends the conversation).

#include <cstdint>
#include <string_view>

#include "core/mailbox.h"
#include "core/slot_table.h"
#include "net/exchange/client_conn.h"
#include "net/exchange/context.h"
#include "net/exchange/errors.h"
#include "net/exchange/stages.h"

namespace mcpgate::net {

// What the client side needs of whoever takes exchanges upstream (net/exchange/relay.h).
class exchange_forwarder {
 public:
  virtual ~exchange_forwarder() = default;
  // The exchange passed every stage; c.ex.fwd holds the whole upstream request.
  virtual void forward(client_conn& c) = 0;
  // The client left (or is being closed) mid-exchange: drop the upstream side.
  virtual void client_gone(client_conn& c) = 0;
  // The client took most of what waited for it: an upstream paused for it may read again.
  virtual void client_drained(client_conn& c) = 0;
};

class client_side {
 public:
  // Ops the client side owns (core/user_data.h).
  enum op : uint8_t {
    op_accept = 1,
    op_recv,
    op_send,
    op_deadline,       // timer wheel: the connection's deadline
    op_hold_deadline,  // timer wheel: a held exchange's deadline
    op_cancel,
  };
  static bool owns(uint8_t op) { return op >= op_accept && op <= op_cancel; }

  // The stage list outlives the client side; listen_fd is owned (closed) from now on.
  client_side(shard_context& ctx, const stage_list& stages, int listen_fd);
  ~client_side();
  void set_forwarder(exchange_forwarder* f) { forwarder_ = f; }

  void start();  // arms accepting
  void on_completion(const io_uring_cqe& cqe);
  void on_timer(uint8_t op, uint32_t slot, uint32_t gen, int64_t fired_ns, int64_t now_ns);
  // A message for a held exchange (exchange_token in value/extra); stale ones are dropped.
  void on_resume(const core::message& m);

  client_conn* find(uint32_t slot, uint32_t gen) { return conns_.find(slot, gen); }

  // For the relay.
  // Queues bytes for the client; what one batch of completions queues goes out in one send at
  // the batch's end (flush_due), so a response head and its body are one segment, not two.
  void send(client_conn& c, std::string_view bytes);
  void flush_due();
  void reply(client_conn& c, const gateway_reply& r);
  void reply_error(client_conn& c, gateway_error e);
  // The response has been relayed: the next request on the connection, if any.
  void finish_exchange(client_conn& c);
  // The response broke off after it had started: the stream ends here.
  void end_broken_response(client_conn& c);
  void record_spans(client_conn& c, call_decision decision, bool forwarded, int upstream_status);
  void record_finish(client_conn& c, call_decision decision, bool use_verdicts, bool forwarded,
                     int upstream_status);

  void start_drain();
  void drain_deadline();  // closes what is still open
  uint32_t open() const { return conns_.live(); }
  bool accepting() const { return accept_armed_; }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> due_;  // {slot, gen} with flush_due set

  void arm_accept();
  void on_accept(const io_uring_cqe& cqe);
  void arm_recv(client_conn& c);
  void on_recv(client_conn& c, const io_uring_cqe& cqe);
  void on_sent(client_conn& c, const io_uring_cqe& cqe);
  void flush(client_conn& c);
  void process(client_conn& c);
  bool begin_request(client_conn& c, const request_head& h);
  bool read_body(client_conn& c);
  void run_stages(client_conn& c);
  void continue_after(client_conn& c, stage_result r);
  void forward(client_conn& c);
  void hold(client_conn& c, stage& holder);
  void end_hold(client_conn& c, hold_end why);
  // The holding stage goes on holding (stage::expired said extended): its interim bytes out,
  // the deadline moved.
  void extend_hold(client_conn& c);
  void send_interim(client_conn& c);
  void set_deadline(client_conn& c, int64_t at_ns);
  void on_deadline(client_conn& c, int64_t now_ns);
  size_t max_pending_input() const;
  void resume_reading(client_conn& c);
  void linger(client_conn& c);
  void close(client_conn& c);
  void maybe_release(client_conn& c);
  void release(client_conn& c);
  void cancel_fd(int fd);

  shard_context& ctx_;
  const stage_list& stages_;
  exchange_forwarder* forwarder_ = nullptr;
  int listen_fd_;
  bool accept_armed_ = false;
  core::slot_table<client_conn> conns_;
};

}  // namespace mcpgate::net
