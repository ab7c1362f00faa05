#include "net/exchange/client_side.h"
#include "core/stderr_log.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/clock.h"
#include "core/user_data.h"
#include "net/http/writer.h"

namespace mcpgate::net {
namespace {

constexpr int64_t ms = 1'000'000;
constexpr int64_t linger_ns = 2'000 * ms;

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

client_side::client_side(shard_context& ctx, const stage_list& stages, int listen_fd)
    : ctx_(ctx), stages_(stages), listen_fd_(listen_fd) {}

client_side::~client_side() {
  conns_.for_each_live([](client_conn& c) {
    if (c.fd >= 0) ::close(c.fd);
  });
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void client_side::start() {
  arm_accept();
}

void client_side::cancel_fd(int fd) {
  io_uring_sqe* s = ctx_.reactor->io().sqe();
  io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
}

void client_side::on_completion(const io_uring_cqe& cqe) {
  core::op_tag t = core::decode(cqe.user_data);
  if (t.op == op_accept) {
    on_accept(cqe);
    return;
  }
  if (t.op != op_recv && t.op != op_send) return;
  client_conn* c = conns_.find(t.slot, t.gen);
  if (!c || c->fd < 0) return;
  if (t.op == op_recv)
    on_recv(*c, cqe);
  else
    on_sent(*c, cqe);
  maybe_release(*c);
}

// ---------------------------------------------------------------------------------------------
// Accepting

void client_side::arm_accept() {
  io_uring_sqe* s = ctx_.reactor->io().sqe();
  // No address: it would be shared by every connection the multishot accepts.
  io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, core::encode({op_accept, 0, 0}));
  accept_armed_ = true;
}

void client_side::on_accept(const io_uring_cqe& cqe) {
  bool more = cqe.flags & IORING_CQE_F_MORE;
  if (cqe.res >= 0) {
    int fd = cqe.res;
    if (ctx_.draining) {
      ::close(fd);
    } else if (conns_.live() >= ctx_.config()->max_connections) {
      // Over the cap: say so and close, but keep accepting so that the listen queue never
      // fills and the kernel never stalls new clients silently.
      static constexpr std::string_view busy_body =
          "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32050,\"message\":\"gateway at "
          "connection limit\"}}";
      static constexpr std::string_view busy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Content-Length: 91\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
          "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32050,\"message\":\"gateway at "
          "connection limit\"}}";
      // A client that trusts Content-Length waits for bytes that never come when it is wrong.
      static_assert(busy_body.size() == 91 && busy.ends_with(busy_body));
      ssize_t n = ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      ctx_.stats.connections_rejected.add();
      // A line of its own, so that an operator sees clients turned away, not just a counter.
      ctx_.record->refused_connection(++ctx_.next_conn_id, ++ctx_.next_req,
                                      n > 0 ? static_cast<uint64_t>(n) : 0,
                                      "limits.max_connections_per_shard");
    } else {
      set_nodelay(fd);
      client_conn& c = conns_.acquire();
      c.fd = fd;
      c.id = ++ctx_.next_conn_id;  // unique per shard; the audit line names the shard
      c.st = client_conn::state::head;
      c.pending = 0;
      c.close_after_send = false;
      c.flush_due = false;
      c.reading_paused = false;
      c.head_resume = 0;
      c.up_slot = no_slot;
      c.deadline = {};
      c.ex.holder = nullptr;
      set_deadline(c, ctx_.now_ns() + ctx_.config()->idle_timeout_ms * ms);
      ctx_.stats.connections_accepted.add();
      ctx_.stats.connections_open.add();
      if (ctx_.metrics) ctx_.metrics->connection_opened();
      arm_recv(c);
    }
  } else if (cqe.res != -ECANCELED && cqe.res != -EAGAIN && cqe.res != -EINTR) {
    // EMFILE/ENFILE: out of descriptors. Keep accepting; each retry reports again.
    core::logf(core::log_level::warn, "mcpgate: shard %u: accept failed: %s", ctx_.id(),
               std::strerror(-cqe.res));
  }
  if (!more) {
    accept_armed_ = false;
    if (!ctx_.draining) {
      arm_accept();
    } else if (listen_fd_ >= 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reading and sending

void client_side::arm_recv(client_conn& c) {
  io_uring_sqe* s = ctx_.reactor->io().sqe();
  io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = ctx_.buffers->group();
  io_uring_sqe_set_data64(s, core::encode({op_recv, c.slot, c.gen}));
  c.recv_armed = true;
  ++c.pending;
}

void client_side::on_recv(client_conn& c, const io_uring_cqe& cqe) {
  bool more = cqe.flags & IORING_CQE_F_MORE;
  if (!more) {
    c.recv_armed = false;
    --c.pending;
  }
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    if (cqe.res > 0 && c.st != client_conn::state::closing && c.st != client_conn::state::lingering)
      c.in.append(ctx_.buffers->buffer(bid), static_cast<size_t>(cqe.res));
    ctx_.buffers->give_back(bid);
    ctx_.buffers->publish();
  }
  if (c.st == client_conn::state::closing) return;
  if (cqe.res > 0) {
    ctx_.stats.bytes_in.add(static_cast<uint64_t>(cqe.res));
    if (c.st == client_conn::state::lingering) return;
    process(c);
    // While its exchange is held or at the upstream (or its stream is open) a client may send
    // the next request, but no more than one request's worth: reading stops until it ends.
    bool busy = c.st == client_conn::state::upstream || c.st == client_conn::state::held;
    if (busy && c.in.size() > max_pending_input() && !c.reading_paused) {
      c.reading_paused = true;
      if (c.recv_armed) {
        io_uring_sqe* s = ctx_.reactor->io().sqe();
        io_uring_prep_cancel64(s, core::encode({op_recv, c.slot, c.gen}), 0);
        io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
      }
    }
  } else if (cqe.res == -ECANCELED) {
    // Paused above: re-armed by resume_reading(), or below if that came before the cancel did.
    if (c.reading_paused) return;
  } else if (cqe.res == 0 || (cqe.res < 0 && cqe.res != -ENOBUFS)) {
    // The client closed (or reset): nothing more will arrive and nothing can be answered.
    close(c);
    return;
  }
  if (!c.recv_armed && !c.reading_paused && c.st != client_conn::state::closing) arm_recv(c);
}

size_t client_side::max_pending_input() const {
  return ctx_.config()->http.max_head + ctx_.config()->http.max_body;
}

// Reading goes on once the exchange that paused it has ended and what was buffered meanwhile
// has been taken up.
void client_side::resume_reading(client_conn& c) {
  if (!c.reading_paused || c.st == client_conn::state::upstream ||
      c.st == client_conn::state::held || c.st == client_conn::state::closing ||
      c.in.size() > max_pending_input())
    return;
  c.reading_paused = false;
  if (!c.recv_armed) arm_recv(c);
}

void client_side::send(client_conn& c, std::string_view bytes) {
  c.out.append(bytes);
  c.ex.record.bytes_out += bytes.size();
  ctx_.stats.bytes_out.add(bytes.size());
  if (c.flush_due) return;
  c.flush_due = true;
  due_.emplace_back(c.slot, c.gen);
}

void client_side::flush_due() {
  for (auto [slot, gen] : due_) {
    client_conn* c = conns_.find(slot, gen);
    if (!c || !c->flush_due) continue;
    c->flush_due = false;
    flush(*c);
  }
  due_.clear();
}

void client_side::flush(client_conn& c) {
  std::string_view next = c.out.next();
  if (next.empty()) return;
  io_uring_sqe* s = ctx_.reactor->io().sqe();
  io_uring_prep_send(s, c.fd, next.data(), next.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, core::encode({op_send, c.slot, c.gen}));
  ++c.pending;
  // Everything the client is owed is in this one send and the last one went out whole: the
  // socket has room, and the kernel completes the send while it is submitted.
  if (next.size() == c.out.pending_bytes() && !c.out.last_send_short())
    ctx_.reactor->io().expect_inline_completion();
}

void client_side::on_sent(client_conn& c, const io_uring_cqe& cqe) {
  --c.pending;
  if (cqe.res < 0) {
    c.out.sent(0);
    if (c.st != client_conn::state::closing) close(c);
    return;
  }
  c.out.sent(static_cast<size_t>(cqe.res));
  if (c.st == client_conn::state::closing) return;
  flush(c);
  if (c.up_slot != no_slot && c.out.pending_bytes() < ctx_.config()->relay_high_water / 4)
    forwarder_->client_drained(c);
  if (c.close_after_send && c.out.empty()) linger(c);
  // Once everything is sent, the send buffers go back to the allocator (mimalloc's per-thread
  // free lists, so the next reply's buffer is a pointer pop): an idle keep-alive connection or
  // a quiet SSE stream then holds none. 10,000 idle clients kept 80 MiB otherwise.
  c.out.release_if_drained();
  if (c.st == client_conn::state::head && c.in.empty()) {
    c.ex.fwd.clear();
    c.ex.fwd.shrink_to_fit();
    c.ex.record.audit_heads.clear();
    c.ex.record.audit_heads.shrink_to_fit();
  }
}

// ---------------------------------------------------------------------------------------------
// Closing

// Lingering close: stop sending, keep reading (and dropping) what the client still sends for a
// moment, then close. Closing at once with unread bytes makes the kernel send a RST, which can
// destroy the error reply before the client reads it.
void client_side::linger(client_conn& c) {
  ::shutdown(c.fd, SHUT_WR);
  c.st = client_conn::state::lingering;
  c.in.clear();
  set_deadline(c, ctx_.now_ns() + linger_ns);
}

void client_side::close(client_conn& c) {
  if (c.st == client_conn::state::closing) return;
  // What was queued goes out first, as it would have had it been sent at once (a reply that
  // ends the connection).
  if (c.flush_due) {
    c.flush_due = false;
    flush(c);
  }
  if (c.ex.held()) {
    end_hold(c, ctx_.draining ? hold_end::draining : hold_end::client_left);
  } else if (c.up_slot != no_slot) {
    // The upstream was mid-exchange for this client; its connection cannot be reused.
    forwarder_->client_gone(c);
    c.ex.ticket->completed(0, true);
    c.up_slot = no_slot;
    record_finish(c, call_decision::allowed, false, true, 0);  // the client left first
  }
  c.st = client_conn::state::closing;
  c.deadline.clear();
  if (c.pending > 0) cancel_fd(c.fd);
}

void client_side::maybe_release(client_conn& c) {
  if (c.st == client_conn::state::closing && c.pending == 0 && c.fd >= 0) release(c);
}

void client_side::release(client_conn& c) {
  ::close(c.fd);
  c.fd = -1;
  c.in.clear();
  c.in.shrink_if_above(0);
  c.out.clear();
  c.chunked_body.clear();
  c.chunked_body.shrink_to_fit();
  c.ex.fwd.clear();
  c.ex.fwd.shrink_to_fit();
  c.ex.config.reset();
  c.ex.upstream = nullptr;  // it pointed into that configuration
  c.ex.target = nullptr;
  conns_.release(c);
  ctx_.stats.connections_open.sub();
  if (ctx_.metrics) ctx_.metrics->connection_closed();
}

// ---------------------------------------------------------------------------------------------
// Replies and records

void client_side::record_finish(client_conn& c, call_decision decision, bool use_verdicts,
                                bool forwarded, int upstream_status) {
  record_spans(c, decision, forwarded, upstream_status);
  ctx_.record->finish(c.ex.record, decision, c.ex.subject(), use_verdicts, forwarded,
                      upstream_status, ctx_.labels());
}

// The exchange's spans (net/observe/trace.h), rendered now and handed over with the shard's
// next batch.
void client_side::record_spans(client_conn& c, call_decision decision, bool forwarded,
                               int upstream_status) {
  exchange& ex = c.ex;
  const trace_context& t = ex.record.trace;
  if (!t.active || !t.sampled || !ex.config->tracing) return;
  int64_t end = core::monotonic_ns();
  int64_t started = ex.record.started_ns;
  int64_t real_base = core::realtime_ns() - (end - started);
  auto real = [&](int64_t mono) { return real_base + (mono - started); };
  std::string_view rule = ex.record.reply_rule;
  if (ex.ticket)
    for (const gate_ticket::verdict& v : ex.ticket->verdicts)
      if (!v.rule.empty()) {
        rule = v.rule;
        break;
      }
  std::string_view outcome = call_decision_name(decision);
  bool failed = decision != call_decision::allowed;
  std::string name = "mcpgate " + t.method;
  std::string& out = ctx_.spans;
  if (ctx_.span_count) out += ',';
  append_span_json(out, t.trace, t.server, t.has_parent ? &t.parent : nullptr, name, 2,
                   real(started), real(end),
                   {{"mcp.method.name", t.method},
                    {"gen_ai.tool.name", t.tool},
                    {"mcpgate.decision", outcome},
                    {"mcpgate.rule", rule},
                    {"mcpgate.identity", ex.identity()},
                    {"mcpgate.grant", ex.grant()},
                    {"mcpgate.server", ex.upstream ? std::string_view(ex.upstream->name) : ""},
                    {"http.response.status_code", {}, upstream_status, upstream_status > 0}},
                   failed);
  int64_t decided = forwarded && ex.record.forwarded_ns ? ex.record.forwarded_ns : end;
  out += ',';
  append_span_json(out, t.trace, t.decision, &t.server, "policy decision", 1, real(started),
                   real(decided), {{"mcpgate.decision", outcome}, {"mcpgate.rule", rule}},
                   decision == call_decision::denied || decision == call_decision::rate_limited);
  ctx_.span_count += 2;
  if (forwarded && ex.record.forwarded_ns) {
    out += ',';
    append_span_json(out, t.trace, t.upstream, &t.server,
                     "upstream " + (ex.upstream ? ex.upstream->name : std::string("default")), 3,
                     real(ex.record.forwarded_ns), real(end),
                     {{"http.response.status_code", {}, upstream_status, upstream_status > 0}},
                     decision == call_decision::upstream_error || upstream_status >= 500);
    ++ctx_.span_count;
  }
  if (ctx_.spans_since_ns == 0) ctx_.spans_since_ns = end;
  if (out.size() > (256u << 10)) ctx_.flush_spans();
}

void client_side::reply(client_conn& c, const gateway_reply& r) {
  bool close_after = r.close || ctx_.draining || !c.ex.keep_alive;
  std::string& out = ctx_.reply_scratch;
  out.clear();
  if (c.ex.response_streaming) {
    // The response is already an event stream (a stage sent its head while it held the
    // exchange): the answer is its last event.
    append_stream_end(out, r.body);
    c.ex.response_streaming = false;
  } else {
    // A HEAD reply states the length, no body.
    append_response(out, r.status, r.extra_headers, r.content_type, r.body, close_after,
                    c.ex.method == http_method::head);
  }
  send(c, out);
  if (!c.ex.record.prepared())
    ctx_.record->prepare(c.ex.record, nullptr, c.ex.subject(), ctx_.labels());
  record_finish(c, r.decision, r.use_verdicts, false, 0);
  c.ex.holder = nullptr;
  c.st = client_conn::state::head;  // after close_after no further request is parsed: process()
  if (close_after) {
    c.close_after_send = true;
    if (c.out.empty()) linger(c);
  } else {
    set_deadline(c, ctx_.now_ns() + ctx_.config()->idle_timeout_ms * ms);
  }
}

void client_side::reply_error(client_conn& c, gateway_error e) {
  gateway_error_reply d = describe(e);
  c.ex.record.upstream_failure = d.audit_error;
  ctx_.error_body.clear();
  append_jsonrpc_error(ctx_.error_body, c.ex.reply_id, d.code, d.message);
  reply(c, {d.http_status, {}, "application/json", ctx_.error_body, false, d.decision, false});
  // Answered outside the intake (a failure of the upstream): take up what was pipelined.
  process(c);
  resume_reading(c);
}

void client_side::finish_exchange(client_conn& c) {
  c.up_slot = no_slot;
  c.st = client_conn::state::head;
  if (!c.ex.keep_alive || ctx_.draining) {
    c.close_after_send = true;
    if (c.out.empty()) linger(c);
    return;
  }
  set_deadline(c, ctx_.now_ns() + ctx_.config()->idle_timeout_ms * ms);
  process(c);
  resume_reading(c);
}

void client_side::end_broken_response(client_conn& c) {
  c.up_slot = no_slot;
  c.ex.keep_alive = false;
  c.close_after_send = true;
  c.st = client_conn::state::head;
  if (c.out.empty()) linger(c);
}

// ---------------------------------------------------------------------------------------------
// Timers and drain

void client_side::set_deadline(client_conn& c, int64_t at_ns) {
  if (c.deadline.set(at_ns))
    ctx_.timers.schedule(at_ns, core::encode({op_deadline, c.slot, c.gen}));
}

void client_side::on_timer(uint8_t op, uint32_t slot, uint32_t gen, int64_t fired_ns,
                           int64_t now_ns) {
  client_conn* c = conns_.find(slot, gen);
  if (!c || c->fd < 0) return;
  core::deadline_slot& d = op == op_hold_deadline ? c->ex.hold_deadline : c->deadline;
  switch (d.on_fire(fired_ns, now_ns)) {
    case core::deadline_slot::outcome::stale:
      return;
    case core::deadline_slot::outcome::rearm:
      ctx_.timers.schedule(d.deadline_ns, core::encode({op, c->slot, c->gen}));
      return;
    case core::deadline_slot::outcome::expired:
      break;
  }
  if (op == op_hold_deadline) {
    if (c->ex.held()) {
      hold_expiry what = c->ex.holder->expired(c->ex, ctx_);
      if (what == hold_expiry::extended) {
        extend_hold(*c);
        return;
      }
      end_hold(*c, hold_end::deadline);
      if (what == hold_expiry::replied) {
        gateway_reply r = c->ex.reply;
        reply(*c, r);
        process(*c);
        resume_reading(*c);
      } else {
        reply_error(*c, gateway_error::hold_timeout);
      }
    }
  } else {
    on_deadline(*c, now_ns);
  }
  maybe_release(*c);
}

void client_side::on_deadline(client_conn& c, int64_t now_ns) {
  if (c.st == client_conn::state::lingering) {
    close(c);
  } else if (c.st == client_conn::state::head && c.in.empty() && !c.close_after_send) {
    close(c);  // idle keep-alive connection
  } else if ((c.st == client_conn::state::head || c.st == client_conn::state::body) &&
             !c.close_after_send && !c.ex.held()) {
    if (c.st == client_conn::state::head) {
      // No head was parsed, so the request fields still describe the connection's previous
      // request (or the slot's previous connection): the audit line must not reuse them.
      c.ex.record.start(++ctx_.next_req, now_ns, 0, c.in.size());
      c.ex.record.conn = c.id;
      c.ex.forget_attribution();
    }
    c.ex.keep_alive = false;
    c.deadline.clear();
    gateway_error_reply d = describe(gateway_error::request_timeout);
    ctx_.error_body.clear();
    append_jsonrpc_error(ctx_.error_body, {}, d.code, d.message);
    reply(c, {d.http_status, {}, "application/json", ctx_.error_body, true, d.decision, false});
  } else if (c.close_after_send) {
    close(c);  // the client does not read its reply
  }
}

void client_side::start_drain() {
  if (accept_armed_) {
    io_uring_sqe* s = ctx_.reactor->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_accept, 0, 0}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
  }
  conns_.for_each_live([&](client_conn& c) {
    if (c.fd >= 0 && c.st == client_conn::state::head && c.in.empty() && !c.close_after_send) {
      close(c);
      maybe_release(c);
    }
  });
}

void client_side::drain_deadline() {
  conns_.for_each_live([&](client_conn& c) {
    if (c.fd >= 0 && c.st != client_conn::state::closing) close(c);
    if (c.fd >= 0) maybe_release(c);
  });
}

}  // namespace mcpgate::net
