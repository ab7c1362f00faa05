#include "net/exchange/proxy.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/user_data.h"
#include "net/http/sse.h"
#include "net/http/writer.h"

namespace mcpgate::net {
namespace {

enum op : uint8_t {
  op_accept = 1,
  op_client_recv,
  op_client_send,
  op_upstream_connect,
  op_upstream_recv,
  op_upstream_send,
  op_cancel,             // completions of cancel requests themselves: nothing to do
  op_audit_base = 0x40,  // the audit log writer's own ops
};

constexpr uint32_t no_slot = UINT32_MAX;
constexpr int64_t ms = 1'000'000;
constexpr int64_t linger_ns = 2'000 * ms;

int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// When a response body in progress is given up on. A JSON, chunked or until-close body must
// keep arriving: upstream_response_timeout_ms at most between reads, or an upstream that stalls
// after its head would hold the client forever. An SSE stream may be quiet by design; it has its
// own idle timeout, 0 meaning none.
int64_t body_deadline_ns(bool sse, const proxy_config& config, int64_t now_ns) {
  int64_t timeout_ms = sse ? config.sse_idle_timeout_ms : config.upstream_response_timeout_ms;
  return timeout_ms > 0 ? now_ns + timeout_ms * ms : 0;
}

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string_view method_name(http_method m) {
  switch (m) {
    case http_method::get:
      return "GET";
    case http_method::post:
      return "POST";
    case http_method::delete_:
      return "DELETE";
    default:
      return "";
  }
}

// "/mcp?x=1" -> path "/mcp", query "?x=1"; absolute-form "http://h/mcp" -> "/mcp".
void split_target(std::string_view target, target_form form, std::string_view& path,
                  std::string_view& query) {
  if (form == target_form::absolute) {
    size_t scheme = target.find("://");
    size_t slash = scheme == std::string_view::npos ? 0 : target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  size_t q = target.find('?');
  path = target.substr(0, q);
  query = q == std::string_view::npos ? std::string_view() : target.substr(q);
}

bool is_event_stream(std::string_view content_type) {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  return equals_ignore_case(media, "text/event-stream");
}

void assign(std::string& to, std::string_view from) {
  to.assign(from.data(), from.size());
}

}  // namespace

struct proxy_shard::client_conn {
  enum class state : uint8_t { head, body, upstream, closing, lingering };

  uint32_t slot = 0;
  uint32_t gen = 0;
  int fd = -1;
  uint64_t id = 0;
  state st = state::head;
  int pending = 0;  // submissions not yet completed; a multishot recv counts once
  bool recv_armed = false;
  bool reading_paused = false;  // holds a request's worth of input while its exchange runs
  bool close_after_send = false;
  core::byte_buffer in;
  core::send_queue out;
  size_t head_resume = 0;
  int64_t deadline_ns = 0;

  // The request being handled.
  http_method method = http_method::other;
  bool keep_alive = true;
  bool http10 = false;
  bool expect_continue = false;
  body_framing framing = body_framing::none;
  uint64_t content_length = 0;
  chunked_decoder chunks;
  std::string chunked_body;
  std::string fwd;  // the upstream request being built; moved to the upstream connection
  std::string_view upstream_failure;  // for the audit line's "error" (a static word)
  std::string_view reply_rule;        // for the audit line's "rule" of a reply made at the head
  // The upstream's id of the session the request names, once its token opened for the caller.
  std::string session_id;
  // The last session token opened or sealed on this connection, for whom, and what it holds.
  std::string session_token;
  std::string session_owner;
  std::string session_upstream;
  std::string protocol_version;
  std::string authorization;
  std::string mcp_method_header;  // 2026-07-28 routing headers, checked against the body
  std::string mcp_name_header;
  bool has_mcp_method_header = false;
  bool has_mcp_name_header = false;
  std::string reply_id;  // raw id token of a single request, for replies the gateway makes
  // For the audit log.
  uint64_t req = 0;
  // Read from the clock itself, not the loop turn's cached time: the gateway's own share of an
  // exchange is microseconds, far below a loop turn.
  int64_t started_ns = 0;    // request head complete
  int64_t forwarded_ns = 0;  // handed to the upstream connection
  int64_t started_realtime_ns = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string audit_heads;
  std::vector<uint32_t> audit_ends;
  std::vector<std::pair<label_id, label_id>> metric_ids;  // per message: method, tool
  std::unique_ptr<gate_ticket> ticket;                    // made by the gate once per connection

  // The exchange with the upstream.
  uint32_t up_slot = no_slot;
  uint32_t up_gen = 0;
};

struct proxy_shard::upstream_conn {
  enum class state : uint8_t { connecting, busy, idle, closing };

  uint32_t slot = 0;
  uint32_t gen = 0;
  int fd = -1;
  state st = state::connecting;
  int pending = 0;
  bool recv_armed = false;
  bool paused = false;
  bool reused = false;  // came from the pool: a request it provably never took is retried once
  bool retried = false;
  bool write_refused = false;  // the first write of the request failed with nothing taken
  bool not_run = false;        // the stdio bridge answered without passing the request on
  core::byte_buffer in;
  std::string request;  // bytes to send (owned while in flight, for a retry)
  size_t request_sent = 0;
  bool send_in_flight = false;
  int64_t deadline_ns = 0;

  uint32_t client_slot = no_slot;
  uint32_t client_gen = 0;

  // The response being relayed.
  bool head_done = false;
  size_t head_resume = 0;
  int status = 0;
  body_framing framing = body_framing::none;
  uint64_t remaining = 0;
  bool keep_alive = false;
  bool dechunk = false;  // HTTP/1.0 client: strip the chunked framing
  bool sse = false;
  bool sse_counted = false;  // counted in the open-streams gauge until the exchange lets go of it
  chunked_decoder chunks;
  std::string decoded;
  // Filtering (the gate rewrites the response, e.g. tools/list per grant): the body is decoded
  // here; a JSON body is held whole, an SSE stream is re-emitted event by event, chunked.
  bool filtering = false;
  std::string held_head;
  std::unique_ptr<sse_parser> events;
  uint64_t events_base = 0;  // stream offset of filter_body[0]
  std::string filter_body;
  std::string filter_out;
};

namespace {

// Before a request is admitted, nothing learned from an earlier one (on this connection, or on
// the previous connection of the same slot) may be attributed to it: an audit line for a
// malformed or timed-out request must not name the identity or session of someone else.
template <class client_conn_type>
void forget_attribution(client_conn_type& c) {
  c.session_id.clear();
  c.reply_rule = {};
  if (c.ticket) {
    c.ticket->identity = {};
    c.ticket->grant = {};
    c.ticket->verdicts.clear();
  }
}

}  // namespace

namespace {

// The listener's own address with the port it really got (the config says 0 for "any").
host_allowlist listener_hosts(const proxy_config& config, int listen_fd) {
  endpoint at = config.listen;
  if (listen_fd >= 0) at.port = bound_port(listen_fd);
  return host_allowlist::for_listener(at, config.allowed_hosts);
}

}  // namespace

proxy_shard::proxy_shard(std::shared_ptr<const proxy_config> config,
                         std::shared_ptr<const gate_config> gate, int listen_fd, shard_stats& stats,
                         metrics_registry* metrics)
    : config_(std::move(config)),
      gate_config_(std::move(gate)),
      listen_fd_(listen_fd),
      stats_(stats),
      registry_(metrics),
      extractor_(config_->jsonrpc),
      rules_{config_->path, config_->allowed_origins, listener_hosts(*config_, listen_fd)},
      sealer_(config_->session_seal_key) {}

proxy_shard::~proxy_shard() {
  if (registry_ && audit_ && reactor_) registry_->attach_audit(reactor_->id(), nullptr);
  for (auto& c : clients_)
    if (c && c->fd >= 0) ::close(c->fd);
  for (auto& u : upstreams_)
    if (u && u->fd >= 0) ::close(u->fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void proxy_shard::on_start(core::reactor& r) {
  reactor_ = &r;
  gate_ = make_gate(gate_config_, r.id());
  buffers_ = std::make_unique<core::buffer_ring>(r.io(), 0, config_->recv_buffers,
                                                 config_->recv_buffer_size);
  if (config_->audit.file)
    audit_ = std::make_unique<core::log_writer>(r.io(), config_->audit.file, config_->audit.writer,
                                                op_audit_base);
  if (registry_) {
    metrics_ = &registry_->shard(r.id());
    if (audit_) registry_->attach_audit(r.id(), &audit_->stats());
  }
  arm_accept();
}

bool proxy_shard::finished() const {
  return draining_ && open_clients_ == 0 && open_upstreams_ == 0 && !accept_armed_ &&
         (!audit_ || (audit_closing_ && !audit_->busy()));
}

// ---------------------------------------------------------------------------------------------
// Completions

void proxy_shard::on_completion(const io_uring_cqe& cqe) {
  core::op_tag t = core::decode(cqe.user_data);
  if (audit_ && audit_->owns(t.op)) {
    audit_->on_completion(cqe);
    return;
  }
  switch (t.op) {
    case op_accept:
      on_accept(cqe);
      return;
    case op_client_recv:
    case op_client_send: {
      client_conn* c = client_at(t.slot, t.gen);
      if (!c) return;
      if (t.op == op_client_recv)
        on_client_recv(*c, cqe);
      else
        on_client_sent(*c, cqe);
      maybe_release_client(*c);
      return;
    }
    case op_upstream_connect:
    case op_upstream_recv:
    case op_upstream_send: {
      upstream_conn* u = upstream_at(t.slot, t.gen);
      if (!u) return;
      if (t.op == op_upstream_connect)
        on_upstream_connected(*u, cqe);
      else if (t.op == op_upstream_recv)
        on_upstream_recv(*u, cqe);
      else
        on_upstream_sent(*u, cqe);
      if (u->st == upstream_conn::state::closing && u->pending == 0 && u->fd >= 0)
        release_upstream(*u);
      return;
    }
    default:
      return;
  }
}

proxy_shard::client_conn* proxy_shard::client_at(uint32_t slot, uint32_t gen) {
  if (slot >= clients_.size()) return nullptr;
  client_conn* c = clients_[slot].get();
  return c->gen == gen && c->fd >= 0 ? c : nullptr;
}

proxy_shard::upstream_conn* proxy_shard::upstream_at(uint32_t slot, uint32_t gen) {
  if (slot >= upstreams_.size()) return nullptr;
  upstream_conn* u = upstreams_[slot].get();
  return u->gen == gen && u->fd >= 0 ? u : nullptr;
}

void proxy_shard::cancel_fd(int fd) {
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
}

// ---------------------------------------------------------------------------------------------
// Accepting

void proxy_shard::arm_accept() {
  io_uring_sqe* s = reactor_->io().sqe();
  // No address: it would be shared by every connection the multishot accepts.
  io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, core::encode({op_accept, 0, 0}));
  accept_armed_ = true;
}

void proxy_shard::on_accept(const io_uring_cqe& cqe) {
  bool more = cqe.flags & IORING_CQE_F_MORE;
  if (cqe.res >= 0) {
    int fd = cqe.res;
    if (draining_) {
      ::close(fd);
    } else if (open_clients_ >= config_->max_connections) {
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
      stats_.connections_rejected.add();
      if (audit_) {
        // A line of its own, so that an operator sees clients turned away, not just a counter.
        audit_record r;
        r.realtime_ns = realtime_ns();
        r.shard = reactor_->id();
        r.conn = ++next_conn_id_;
        r.req = ++next_req_;
        r.decision = call_decision::invalid;
        r.rule = "limits.max_connections_per_shard";
        r.bytes_out = n > 0 ? static_cast<uint64_t>(n) : 0;
        append_audit_line(audit_lines_, r, config_->audit.arguments);
        audit_->append(audit_lines_);
        audit_lines_.clear();
      }
    } else {
      set_nodelay(fd);
      uint32_t slot;
      if (!free_clients_.empty()) {
        slot = free_clients_.back();
        free_clients_.pop_back();
      } else {
        slot = static_cast<uint32_t>(clients_.size());
        clients_.push_back(std::make_unique<client_conn>());
        clients_.back()->slot = slot;
      }
      client_conn& c = *clients_[slot];
      c.fd = fd;
      c.id = ++next_conn_id_;  // unique per shard; the audit line names the shard
      c.st = client_conn::state::head;
      c.pending = 0;
      c.close_after_send = false;
      c.reading_paused = false;
      c.head_resume = 0;
      c.up_slot = no_slot;
      c.deadline_ns = reactor_->now_ns() + config_->idle_timeout_ms * ms;
      ++open_clients_;
      stats_.connections_accepted.add();
      stats_.connections_open.add();
      if (metrics_) metrics_->connection_opened();
      arm_client_recv(c);
    }
  } else if (cqe.res != -ECANCELED && cqe.res != -EAGAIN && cqe.res != -EINTR) {
    // EMFILE/ENFILE: out of descriptors. Keep accepting; each retry reports again.
    std::fprintf(stderr, "mcpgate: shard %u: accept failed: %s\n", reactor_->id(),
                 std::strerror(-cqe.res));
  }
  if (!more) {
    accept_armed_ = false;
    if (!draining_) {
      arm_accept();
    } else if (listen_fd_ >= 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Client side

void proxy_shard::arm_client_recv(client_conn& c) {
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_recv_multishot(s, c.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = buffers_->group();
  io_uring_sqe_set_data64(s, core::encode({op_client_recv, c.slot, c.gen}));
  c.recv_armed = true;
  ++c.pending;
}

void proxy_shard::on_client_recv(client_conn& c, const io_uring_cqe& cqe) {
  bool more = cqe.flags & IORING_CQE_F_MORE;
  if (!more) {
    c.recv_armed = false;
    --c.pending;
  }
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
    if (cqe.res > 0 && c.st != client_conn::state::closing && c.st != client_conn::state::lingering)
      c.in.append(buffers_->buffer(bid), static_cast<size_t>(cqe.res));
    buffers_->give_back(bid);
    buffers_->publish();
  }
  if (c.st == client_conn::state::closing) return;
  if (cqe.res > 0) {
    stats_.bytes_in.add(static_cast<uint64_t>(cqe.res));
    if (c.st == client_conn::state::lingering) return;
    process_client(c);
    // While its exchange is at the upstream (or its stream is open) a client may send the next
    // request, but no more than one request's worth: reading stops until the exchange ends.
    if (c.st == client_conn::state::upstream && c.in.size() > max_pending_input() &&
        !c.reading_paused) {
      c.reading_paused = true;
      if (c.recv_armed) {
        io_uring_sqe* s = reactor_->io().sqe();
        io_uring_prep_cancel64(s, core::encode({op_client_recv, c.slot, c.gen}), 0);
        io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
      }
    }
  } else if (cqe.res == -ECANCELED && c.reading_paused) {
    return;  // paused above; re-armed by resume_reading()
  } else if (cqe.res == 0 || (cqe.res < 0 && cqe.res != -ENOBUFS)) {
    // The client closed (or reset): nothing more will arrive and nothing can be answered.
    close_client(c);
    return;
  }
  if (!c.recv_armed && !c.reading_paused && c.st != client_conn::state::closing) arm_client_recv(c);
}

size_t proxy_shard::max_pending_input() const {
  return config_->http.max_head + config_->http.max_body;
}

// Reading goes on once the exchange that paused it has ended and what was buffered meanwhile
// has been taken up.
void proxy_shard::resume_reading(client_conn& c) {
  if (!c.reading_paused || c.st == client_conn::state::upstream ||
      c.st == client_conn::state::closing || c.in.size() > max_pending_input())
    return;
  c.reading_paused = false;
  if (!c.recv_armed) arm_client_recv(c);
}

void proxy_shard::send_client(client_conn& c, std::string_view bytes) {
  c.out.append(bytes);
  c.bytes_out += bytes.size();
  stats_.bytes_out.add(bytes.size());
  flush_client(c);
}

void proxy_shard::flush_client(client_conn& c) {
  std::string_view next = c.out.next();
  if (next.empty()) return;
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_send(s, c.fd, next.data(), next.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, core::encode({op_client_send, c.slot, c.gen}));
  ++c.pending;
}

void proxy_shard::on_client_sent(client_conn& c, const io_uring_cqe& cqe) {
  --c.pending;
  if (cqe.res < 0) {
    c.out.sent(0);
    if (c.st != client_conn::state::closing) close_client(c);
    return;
  }
  c.out.sent(static_cast<size_t>(cqe.res));
  if (c.st == client_conn::state::closing) return;
  flush_client(c);
  if (c.up_slot != no_slot && c.out.pending_bytes() < config_->relay_high_water / 4) {
    if (upstream_conn* u = upstream_at(c.up_slot, c.up_gen); u && u->paused) resume_upstream(*u);
  }
  if (c.close_after_send && c.out.empty()) linger_client(c);
  // Once everything is sent, the send buffers go back to the allocator (mimalloc's per-thread
  // free lists, so the next reply's buffer is a pointer pop): an idle keep-alive connection or
  // a quiet SSE stream then holds none. 10,000 idle clients kept 80 MiB otherwise.
  c.out.release_if_drained();
  if (c.st == client_conn::state::head && c.in.empty()) {
    c.fwd.clear();
    c.fwd.shrink_to_fit();
    c.audit_heads.clear();
    c.audit_heads.shrink_to_fit();
  }
}

// Lingering close: stop sending, keep reading (and dropping) what the client still sends for a
// moment, then close. Closing at once with unread bytes makes the kernel send a RST, which can
// destroy the error reply before the client reads it.
void proxy_shard::linger_client(client_conn& c) {
  ::shutdown(c.fd, SHUT_WR);
  c.st = client_conn::state::lingering;
  c.in.clear();
  c.deadline_ns = reactor_->now_ns() + linger_ns;
}

void proxy_shard::close_client(client_conn& c) {
  if (c.st == client_conn::state::closing) return;
  if (c.up_slot != no_slot) {
    if (upstream_conn* u = upstream_at(c.up_slot, c.up_gen)) {
      // The upstream was mid-exchange for this client; its connection cannot be reused.
      u->client_slot = no_slot;
      close_upstream(*u);
    }
    c.ticket->completed(0, true);
    c.up_slot = no_slot;
    record_finish(c, call_decision::allowed, false, true, 0);  // the client left first
  }
  c.st = client_conn::state::closing;
  if (c.pending > 0) cancel_fd(c.fd);
}

void proxy_shard::maybe_release_client(client_conn& c) {
  if (c.st == client_conn::state::closing && c.pending == 0 && c.fd >= 0) release_client(c);
}

void proxy_shard::release_client(client_conn& c) {
  ::close(c.fd);
  c.fd = -1;
  c.gen = (c.gen + 1) & core::gen_mask;
  c.in.clear();
  c.in.shrink_if_above(0);
  c.out.clear();
  c.chunked_body.clear();
  c.chunked_body.shrink_to_fit();
  c.fwd.clear();
  c.fwd.shrink_to_fit();
  free_clients_.push_back(c.slot);
  --open_clients_;
  stats_.connections_open.sub();
  if (metrics_) metrics_->connection_closed();
}

void proxy_shard::reply(client_conn& c, int http_status, std::string_view extra_headers,
                        std::string_view content_type, std::string_view body, bool close_after,
                        call_decision decision, bool use_verdicts) {
  if (draining_ || !c.keep_alive) close_after = true;
  std::string& out = reply_scratch_;
  out.clear();
  append_status_line(out, http_status);
  out += extra_headers;
  if (!content_type.empty()) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\n";
  }
  if (!content_type.empty() || http_status >= 200) {
    out += "Content-Length: ";
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, body.size());
    out.append(digits, r.ptr);
    out += "\r\n";
  }
  if (close_after) out += "Connection: close\r\n";
  out += "\r\n";
  if (c.method != http_method::head) out += body;  // a HEAD reply states the length, no body
  send_client(c, out);
  if (c.audit_ends.empty() && c.metric_ids.empty()) record_prepare(c, nullptr);
  record_finish(c, decision, use_verdicts, false, 0);
  if (close_after) {
    c.close_after_send = true;
    c.st = client_conn::state::head;  // no further requests are parsed: see process_client
    if (c.out.empty()) linger_client(c);
  } else {
    c.st = client_conn::state::head;
    c.deadline_ns = reactor_->now_ns() + config_->idle_timeout_ms * ms;
  }
}

void proxy_shard::reply_jsonrpc_error(client_conn& c, int http_status, int code,
                                      std::string_view message, std::string_view id,
                                      bool close_after, call_decision decision) {
  error_body_.clear();
  append_jsonrpc_error(error_body_, id, code, message);
  reply(c, http_status, {}, "application/json", error_body_, close_after, decision);
}

void proxy_shard::reply_gateway_error(client_conn& c, int http_status, int code,
                                      std::string_view message) {
  reply_jsonrpc_error(c, http_status, code, message, c.reply_id, false,
                      call_decision::upstream_error);
}

void proxy_shard::record_prepare(client_conn& c, const jsonrpc_result* body) {
  c.audit_heads.clear();
  c.audit_ends.clear();
  c.metric_ids.clear();
  c.metric_ids.clear();
  const metric_labels* labels = gate_config_->labels.get();
  size_t count = body ? body->messages.size() : 1;
  audit_record r;
  if (audit_) {
    r.realtime_ns = c.started_realtime_ns ? c.started_realtime_ns : realtime_ns();
    r.shard = reactor_->id();
    r.conn = c.id;
    r.req = c.req;
    if (c.ticket && !c.ticket->identity.empty()) r.identity = c.ticket->identity;
    if (c.ticket && !c.ticket->grant.empty()) r.grant = c.ticket->grant;
    if (!c.session_id.empty()) r.session = c.session_id;
  }
  for (size_t i = 0; i < count; ++i) {
    const jsonrpc_message* m = body ? &body->messages[i] : nullptr;
    bool is_call = m && m->method == "tools/call" && m->name;
    if (metrics_) {
      label_id method = !m                  ? other_label
                        : m->method.empty() ? response_method
                                            : method_id(m->method);
      label_id tool = !is_call ? no_label : labels ? labels->tool_id(*m->name) : other_label;
      c.metric_ids.emplace_back(method, tool);
    }
    if (!audit_) continue;
    if (m) {
      r.method = m->method.empty() ? std::optional<std::string_view>() : m->method;
      r.id = m->id.empty() ? std::optional<std::string_view>() : m->id;
      r.tool = is_call ? m->name : std::nullopt;
      r.arguments = m->arguments ? std::optional<raw_arguments>(
                                       raw_arguments{m->arguments->data(), m->arguments->size()})
                                 : std::nullopt;
      r.rule = std::nullopt;
      if (c.ticket && i < c.ticket->verdicts.size() && !c.ticket->verdicts[i].rule.empty())
        r.rule = c.ticket->verdicts[i].rule;
    }
    if (!m && !c.reply_rule.empty()) r.rule = c.reply_rule;
    append_audit_head(c.audit_heads, r, config_->audit.arguments);
    c.audit_ends.push_back(static_cast<uint32_t>(c.audit_heads.size()));
  }
}

void proxy_shard::record_finish(client_conn& c, call_decision decision, bool use_verdicts,
                                bool forwarded, int upstream_status) {
  size_t count = std::max(c.audit_ends.size(), c.metric_ids.size());
  if (count == 0) return;
  int64_t now = core::reactor::clock_ns();
  audit_record r;
  r.forwarded = forwarded;
  r.upstream_status = upstream_status;
  bool went_upstream = forwarded && c.forwarded_ns;
  r.upstream_us = went_upstream ? (now - c.forwarded_ns) / 1000 : 0;
  // What the gateway added: from the request head to the reply it made or to the hand-over to
  // the upstream. Rounded up, so that work that took any time never reads as 0.
  int64_t gateway_ns = (went_upstream ? c.forwarded_ns : now) - c.started_ns;
  r.gateway_us = gateway_ns > 0 ? (gateway_ns + 999) / 1000 : 0;
  r.bytes_in = c.bytes_in;
  r.bytes_out = c.bytes_out;
  if (decision == call_decision::upstream_error) r.error = c.upstream_failure;
  c.upstream_failure = {};
  label_id grant = no_label;
  if (metrics_) {
    const metric_labels* labels = gate_config_->labels.get();
    if (c.ticket && !c.ticket->grant.empty())
      grant = labels ? labels->grant_id(c.ticket->grant) : other_label;
    metrics_->observe_gateway_us(r.gateway_us);
    if (forwarded) {
      metrics_->observe_upstream_us(r.upstream_us);
      if (upstream_status > 0) metrics_->count_upstream_status(upstream_status);
    }
  }
  uint32_t begin = 0;
  for (size_t i = 0; i < count; ++i) {
    r.decision = decision;
    if (use_verdicts && c.ticket && i < c.ticket->verdicts.size())
      r.decision = c.ticket->verdicts[i].decision;
    if (metrics_ && i < c.metric_ids.size())
      metrics_->count_request(c.metric_ids[i].first, c.metric_ids[i].second, grant, r.decision);
    if (i < c.audit_ends.size()) {
      audit_lines_.append(c.audit_heads, begin, c.audit_ends[i] - begin);
      append_audit_tail(audit_lines_, r);
      begin = c.audit_ends[i];
    }
  }
  if (audit_ && !audit_lines_.empty()) audit_->append(audit_lines_);
  audit_lines_.clear();
  c.audit_heads.clear();
  c.audit_ends.clear();
  c.metric_ids.clear();
  c.metric_ids.clear();
}

void proxy_shard::process_client(client_conn& c) {
  while (c.st == client_conn::state::head || c.st == client_conn::state::body) {
    if (c.close_after_send) {
      c.in.clear();  // a reply that closes the connection ends the conversation
      return;
    }
    if (c.st == client_conn::state::head) {
      if (c.in.empty()) {
        c.in.shrink_if_above(0);
        return;
      }
      request_head h = parse_request_head(c.in.view(), config_->http, c.head_resume);
      if (h.status() == parse_status::incomplete) {
        c.head_resume = h.resume_offset();
        if (c.deadline_ns == 0 ||
            c.deadline_ns > reactor_->now_ns() + config_->header_timeout_ms * ms)
          c.deadline_ns = reactor_->now_ns() + config_->header_timeout_ms * ms;
        return;
      }
      c.head_resume = 0;
      c.reply_id.clear();
      if (h.status() == parse_status::error) {
        c.req = ++next_req_;
        c.started_ns = core::reactor::clock_ns();
        c.started_realtime_ns = 0;
        c.bytes_in = c.in.size();
        c.bytes_out = 0;
        c.audit_heads.clear();
        c.audit_ends.clear();
        forget_attribution(c);
        c.keep_alive = false;
        reply_jsonrpc_error(c, h.error_status(), -32600, h.error_reason(), {}, true);
        return;
      }
      stats_.requests.add();
      // A request answered at its head (404, 405, 401, ...) may leave the connection open;
      // the loop then goes on to a request pipelined behind it, already buffered.
      if (!begin_request(c, h)) continue;
    }
    if (!read_request_body(c)) return;
    handle_request(c);
  }
}

bool proxy_shard::begin_request(client_conn& c, const request_head& h) {
  const header_list& headers = h.headers();
  c.req = ++next_req_;
  c.started_ns = core::reactor::clock_ns();
  c.started_realtime_ns = audit_ ? realtime_ns() : 0;
  c.forwarded_ns = 0;
  c.bytes_in =
      h.head_length() + (h.framing() == body_framing::content_length ? h.content_length() : 0);
  c.bytes_out = 0;
  c.audit_heads.clear();
  c.audit_ends.clear();
  c.metric_ids.clear();
  forget_attribution(c);
  c.method = h.method();
  c.http10 = h.version() == http_version::http_1_0;
  c.keep_alive = h.keep_alive();
  c.framing = h.framing();
  c.content_length = h.content_length();
  c.expect_continue = false;
  c.deadline_ns = reactor_->now_ns() + config_->header_timeout_ms * ms;

  std::string_view path, query;
  split_target(h.target(), h.form(), path, query);
  bool has_body = c.framing != body_framing::none;
  if (std::optional<head_rejection> no = check_request_head(h, path, rules_, c.expect_continue)) {
    c.in.consume(h.head_length());
    c.reply_rule = no->rule;
    if (no->close) c.keep_alive = false;
    if (no->code == 0) {
      reply(c, no->status, no->extra_headers, {}, {}, no->close);
    } else {
      error_body_.clear();
      append_jsonrpc_error(error_body_, {}, no->code, no->message);
      reply(c, no->status, no->extra_headers, "application/json", error_body_, no->close);
    }
    return false;
  }
  bool names_session = headers.count("mcp-session-id") > 0;
  assign(c.protocol_version, headers.find("mcp-protocol-version"));
  assign(c.authorization, headers.find("authorization"));
  c.has_mcp_method_header = headers.count("mcp-method") > 0;
  c.has_mcp_name_header = headers.count("mcp-name") > 0;
  assign(c.mcp_method_header, headers.find("mcp-method"));
  assign(c.mcp_name_header, headers.find("mcp-name"));

  request_view view{c.method, c.authorization, c.session_id, c.protocol_version};
  gate_reply denied;
  if (!c.ticket || !gate_->owns(*c.ticket)) c.ticket = gate_->new_ticket();
  if (!gate_->admit(view, *c.ticket, denied)) {
    c.in.consume(h.head_length());
    reply(c, denied.http_status, denied.extra_headers, denied.content_type, denied.body, has_body,
          call_decision::unauthenticated);
    return false;
  }
  // A session belongs to the identity that created it: its token opens only for that identity,
  // and to anyone else it is as unknown as an id never issued. The upstream gets its own id.
  if (names_session && !open_session(c, headers.find("mcp-session-id"))) {
    c.in.consume(h.head_length());
    c.reply_rule = "session";
    reply_jsonrpc_error(c, 404, -32001, "Session not found", {}, has_body);
    return false;
  }

  // The upstream request head: the client's header lines byte for byte, less the hop-by-hop
  // fields and the framing we set ourselves.
  std::string& f = c.fwd;
  f.clear();
  f += method_name(c.method);
  f += ' ';
  f += config_->upstream.path;
  f += query;
  f += " HTTP/1.1\r\nHost: ";
  f += config_->upstream.host_header;
  f += "\r\n";
  std::string_view connection = headers.find("connection");
  bool has_connection = headers.count("connection") > 0;
  // The gateway's own credential stays with the gateway (the MCP security guidance forbids
  // passing a client's token through), unless the upstream is configured to need it.
  bool drop_authorization = c.ticket->consumed_credential && !config_->forward_authorization;
  for (const http_header& hd : headers) {
    if (equals_ignore_case(hd.name, "host") || equals_ignore_case(hd.name, "content-length") ||
        equals_ignore_case(hd.name, "expect") || is_hop_by_hop(hd.name))
      continue;
    if (has_connection && header_has_token(connection, hd.name)) continue;
    if (drop_authorization && equals_ignore_case(hd.name, "authorization")) continue;
    f += hd.name;
    f += ": ";
    f += equals_ignore_case(hd.name, "mcp-session-id") ? std::string_view(c.session_id) : hd.value;
    f += "\r\n";
  }
  if (config_->upstream_is_stdio && c.ticket->consumed_credential) {
    // The bridge counts children per authenticated identity (max_processes_per_identity).
    f += "Mcp-Gateway-Identity: ";
    f += c.ticket->identity;
    f += "\r\n";
  }
  c.in.consume(h.head_length());
  if (c.framing == body_framing::chunked) {
    c.chunks = chunked_decoder(config_->http);
    c.chunked_body.clear();
  }
  c.st = client_conn::state::body;
  return true;
}

// Opens the session token a request names, for the identity making the request: c.session_id
// becomes the upstream's id. A connection keeps the last token it opened, so a client that
// sends the same token on every request costs one comparison, not a decryption.
bool proxy_shard::open_session(client_conn& c, std::string_view token) {
  std::string_view who = c.ticket->identity;
  if (token != c.session_token || who != c.session_owner) {
    std::optional<std::string_view> upstream_id = sealer_.open(token, who);
    if (!upstream_id) {
      c.session_id.clear();
      return false;
    }
    assign(c.session_upstream, *upstream_id);
    assign(c.session_token, token);
    assign(c.session_owner, who);
  }
  c.session_id = c.session_upstream;
  return true;
}

// The token for a session id the upstream just gave (or repeated), sealed for the caller.
bool proxy_shard::seal_session(client_conn& c, std::string_view upstream_id, std::string& out) {
  std::string_view who = c.ticket->identity;
  if (upstream_id == c.session_upstream && who == c.session_owner && !c.session_token.empty()) {
    out += c.session_token;
    return true;
  }
  size_t before = out.size();
  if (!sealer_.seal(upstream_id, who, out)) return false;
  assign(c.session_token, std::string_view(out).substr(before));
  assign(c.session_upstream, upstream_id);
  assign(c.session_owner, who);
  return true;
}

// True once the whole body is in (c.in for Content-Length, c.chunked_body for chunked).
bool proxy_shard::read_request_body(client_conn& c) {
  bool complete = true;
  if (c.framing == body_framing::content_length) {
    complete = c.in.size() >= c.content_length;
  } else if (c.framing == body_framing::chunked) {
    chunk_step step = c.chunks.feed(c.in.view(), &c.chunked_body);
    c.in.consume(step.consumed);
    if (step.status == chunk_status::error) {
      c.keep_alive = false;
      reply_jsonrpc_error(c, c.chunks.error_status(), -32600, c.chunks.error_reason(), {}, true);
      return false;
    }
    complete = step.status == chunk_status::done;
  }
  if (!complete && c.expect_continue) {
    c.expect_continue = false;
    send_client(c, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  return complete;
}

void proxy_shard::handle_request(client_conn& c) {
  std::string_view body;
  padded_body padded;
  if (c.framing == body_framing::content_length) {
    body = std::string_view(c.in.data(), c.content_length);
    // byte_buffer keeps `padding` readable bytes past its end, and the body ends at or before it.
    padded = {body.data(), body.size(), body.size() + core::byte_buffer::padding};
  } else if (c.framing == body_framing::chunked) {
    c.chunked_body.reserve(c.chunked_body.size() + core::byte_buffer::padding);
    body = c.chunked_body;
    padded = {body.data(), body.size(), c.chunked_body.capacity()};
  }
  size_t consumed = c.framing == body_framing::content_length ? c.content_length : 0;
  // A POST without Content-Length or Transfer-Encoding has an empty body (RFC 9112 6.3): the
  // extractor must see an empty document (a parse error), not a missing buffer.
  static constexpr char no_body[core::byte_buffer::padding] = {};
  if (padded.data == nullptr) padded = {no_body, 0, sizeof no_body};

  if (c.method == http_method::post) {
    jsonrpc_result r = extractor_.extract(padded);
    if (r.status != jsonrpc_status::ok) {
      c.in.consume(consumed);
      reply_jsonrpc_error(c, 400, jsonrpc_error_code(r.status),
                          r.status == jsonrpc_status::parse_error
                              ? std::string("Parse error: ").append(r.reason)
                              : std::string("Invalid Request: ").append(r.reason),
                          {}, false);
      return;
    }
    // JSON-RPC batches exist only in revision 2025-03-26; later revisions removed them, so a
    // batch that names a later revision is refused rather than forwarded for the upstream to
    // interpret. (Revisions are dates: they compare as strings.)
    if (r.batch && !c.protocol_version.empty() && c.protocol_version > "2025-03-26") {
      c.in.consume(consumed);
      reply_jsonrpc_error(
          c, 400, -32600,
          "Invalid Request: JSON-RPC batches are not allowed in protocol revision " +
              c.protocol_version,
          {}, false);
      return;
    }
    const jsonrpc_message& first = r.messages.front();
    if (!r.batch && first.kind == message_kind::request) assign(c.reply_id, first.id);
    // A tools/call names its tool in params.name; without it there is nothing to decide on,
    // and no call may pass as the tool named "".
    for (const jsonrpc_message& m : r.messages) {
      bool call = (m.kind == message_kind::request || m.kind == message_kind::notification) &&
                  m.method == "tools/call";
      if (!call || (m.params && m.params->front() == '{' && m.name)) continue;
      c.in.consume(consumed);
      c.reply_rule = "params";
      reply_jsonrpc_error(c, r.batch ? 400 : 200, -32602,
                          "Invalid params: tools/call needs params to be an object with a string "
                          "name",
                          r.batch ? std::string_view() : std::string_view(c.reply_id), false);
      return;
    }
    // Protocol 2026-07-28 routes on Mcp-Method / Mcp-Name; the upstream may act on the header
    // while we decide on the body, so they must agree.
    if (c.has_mcp_method_header || c.has_mcp_name_header) {
      bool agree = !r.batch && (!c.has_mcp_method_header || c.mcp_method_header == first.method);
      if (agree && c.has_mcp_name_header) {
        std::string_view name = first.name  ? *first.name
                                : first.uri ? *first.uri
                                            : std::string_view();
        agree = c.mcp_name_header == name;
      }
      if (!agree) {
        c.in.consume(consumed);
        reply_jsonrpc_error(c, 400, -32020,
                            "Mcp-Method or Mcp-Name header does not match the request body",
                            c.reply_id, false);
        return;
      }
    }
    request_view view{c.method, c.authorization, c.session_id, c.protocol_version};
    gate_reply denied;
    if (!gate_->decide(view, r, *c.ticket, denied)) {
      record_prepare(c, &r);
      c.in.consume(consumed);
      reply(c, denied.http_status, denied.extra_headers, denied.content_type, denied.body, false,
            call_decision::denied, true);
      return;
    }
    record_prepare(c, &r);
  } else {
    record_prepare(c, nullptr);
  }
  if (audit_ && !audit_->healthy() &&
      config_->audit.writer.on_failure == core::failure_policy::fail_closed) {
    // Nothing crosses the gateway that the audit log cannot record.
    c.ticket->completed(0, false);
    c.in.consume(consumed);
    reply_jsonrpc_error(c, 503, -32060,
                        "audit log cannot be written; calls are refused until it can "
                        "(audit.on_failure is fail_closed)",
                        c.reply_id, false);
    return;
  }

  if (c.method == http_method::post || !body.empty()) {
    c.fwd += "Content-Length: ";
    char digits[24];
    auto res = std::to_chars(digits, digits + sizeof digits, body.size());
    c.fwd.append(digits, res.ptr);
    c.fwd += "\r\n\r\n";
    c.fwd += body;
  } else {
    c.fwd += "\r\n";
  }
  c.in.consume(consumed);
  forward(c);
}

// ---------------------------------------------------------------------------------------------
// Upstream side

proxy_shard::upstream_conn* proxy_shard::take_upstream() {
  while (!idle_upstreams_.empty()) {
    uint32_t slot = idle_upstreams_.back();
    idle_upstreams_.pop_back();
    upstream_conn& u = *upstreams_[slot];
    if (u.st != upstream_conn::state::idle) continue;
    u.st = upstream_conn::state::busy;
    u.reused = true;
    stats_.upstream_reused.add();
    return &u;
  }
  uint32_t slot;
  if (!free_upstreams_.empty()) {
    slot = free_upstreams_.back();
    free_upstreams_.pop_back();
  } else {
    slot = static_cast<uint32_t>(upstreams_.size());
    upstreams_.push_back(std::make_unique<upstream_conn>());
    upstreams_.back()->slot = slot;
  }
  upstream_conn& u = *upstreams_[slot];
  u.st = upstream_conn::state::connecting;
  u.reused = false;
  u.pending = 0;
  u.paused = false;
  u.recv_armed = false;
  u.send_in_flight = false;
  u.in.clear();
  ++open_upstreams_;
  connect_upstream(u);
  return &u;
}

void proxy_shard::connect_upstream(upstream_conn& u) {
  const endpoint& at = config_->upstream.where;
  u.fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u.fd < 0) {
    u.fd = -1;
    u.st = upstream_conn::state::closing;
    return;
  }
  set_nodelay(u.fd);
  stats_.upstream_connects.add();
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_connect(s, u.fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len);
  io_uring_sqe_set_data64(s, core::encode({op_upstream_connect, u.slot, u.gen}));
  ++u.pending;
  u.deadline_ns = reactor_->now_ns() + config_->upstream_connect_timeout_ms * ms;
}

void proxy_shard::forward(client_conn& c) {
  upstream_conn* u = take_upstream();
  if (u->fd < 0) {
    // No socket could be made (descriptor limit): the slot was never opened.
    --open_upstreams_;
    free_upstreams_.push_back(u->slot);
    stats_.upstream_errors.add();
    c.ticket->completed(0, false);
    c.upstream_failure = "refused";
    reply_gateway_error(c, 502, -32030, "upstream unavailable: cannot create a socket");
    return;
  }
  c.st = client_conn::state::upstream;
  c.forwarded_ns = core::reactor::clock_ns();
  c.up_slot = u->slot;
  c.up_gen = u->gen;
  c.deadline_ns = 0;
  u->client_slot = c.slot;
  u->client_gen = c.gen;
  u->request.swap(c.fwd);
  u->request_sent = 0;
  u->retried = false;
  u->write_refused = false;
  u->not_run = false;
  u->head_done = false;
  u->head_resume = 0;
  u->dechunk = c.http10;
  if (u->st == upstream_conn::state::busy) {
    u->deadline_ns = reactor_->now_ns() + config_->upstream_response_timeout_ms * ms;
    send_upstream(*u);
  }
}

void proxy_shard::on_upstream_connected(upstream_conn& u, const io_uring_cqe& cqe) {
  --u.pending;
  if (u.st == upstream_conn::state::closing) return;
  if (cqe.res < 0) {
    upstream_failed(u, -cqe.res, true);
    return;
  }
  u.st = upstream_conn::state::busy;
  u.deadline_ns = reactor_->now_ns() + config_->upstream_response_timeout_ms * ms;
  arm_upstream_recv(u);
  send_upstream(u);
}

void proxy_shard::arm_upstream_recv(upstream_conn& u) {
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_recv_multishot(s, u.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = buffers_->group();
  io_uring_sqe_set_data64(s, core::encode({op_upstream_recv, u.slot, u.gen}));
  u.recv_armed = true;
  ++u.pending;
}

void proxy_shard::send_upstream(upstream_conn& u) {
  if (u.send_in_flight || u.request_sent >= u.request.size()) return;
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_send(s, u.fd, u.request.data() + u.request_sent, u.request.size() - u.request_sent,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, core::encode({op_upstream_send, u.slot, u.gen}));
  u.send_in_flight = true;
  ++u.pending;
}

void proxy_shard::on_upstream_sent(upstream_conn& u, const io_uring_cqe& cqe) {
  --u.pending;
  u.send_in_flight = false;
  if (u.st == upstream_conn::state::closing) return;
  if (cqe.res < 0) {
    u.write_refused = u.request_sent == 0;
    upstream_failed(u, -cqe.res, !u.head_done);
    return;
  }
  u.request_sent += static_cast<size_t>(cqe.res);
  send_upstream(u);
}

void proxy_shard::on_upstream_recv(upstream_conn& u, const io_uring_cqe& cqe) {
  bool more = cqe.flags & IORING_CQE_F_MORE;
  if (!more) {
    u.recv_armed = false;
    --u.pending;
  }
  // The provided buffer goes back to the ring when this function returns; until then its bytes
  // are `fresh`, relayed straight from it.
  struct buffer_return {
    core::buffer_ring* ring;
    int bid;
    ~buffer_return() {
      if (bid >= 0) {
        ring->give_back(static_cast<uint16_t>(bid));
        ring->publish();
      }
    }
  } give_back{buffers_.get(), (cqe.flags & IORING_CQE_F_BUFFER)
                                  ? static_cast<int>(cqe.flags >> IORING_CQE_BUFFER_SHIFT)
                                  : -1};
  std::string_view fresh;
  if (give_back.bid >= 0 && cqe.res > 0)
    fresh = std::string_view(buffers_->buffer(static_cast<uint16_t>(give_back.bid)),
                             static_cast<size_t>(cqe.res));
  if (u.st == upstream_conn::state::closing) return;
  if (u.st == upstream_conn::state::idle) {
    // An idle pooled connection that speaks or closes is of no further use.
    close_upstream(u);
    return;
  }
  if (cqe.res > 0) {
    relay_response(u, fresh);
  } else if (cqe.res == -ECANCELED && u.paused) {
    return;  // pause_upstream() ended the recv; resume_upstream() arms it again
  } else if (cqe.res == 0 || cqe.res != -ENOBUFS) {
    if (cqe.res == 0 && u.head_done && u.framing == body_framing::until_close) {
      // The body ran until close, as announced: the exchange is complete.
      u.keep_alive = false;
      if (client_conn* c = client_at(u.client_slot, u.client_gen)) {
        c->keep_alive = false;
        if (u.filtering && !emit_filtered(u, *c, true)) {
          upstream_failed(u, EPROTO, !u.sse);
          return;
        }
        u.client_slot = no_slot;
        finish_exchange(*c);
      }
      close_upstream(u);
      return;
    }
    upstream_failed(u, cqe.res == 0 ? ECONNRESET : -cqe.res, !u.head_done);
    return;
  }
  if (!u.recv_armed && !u.paused && u.st != upstream_conn::state::closing) arm_upstream_recv(u);
}

// Works on `fresh` (bytes just received, still in the provided buffer) directly when nothing
// is pending in u.in, so a response that arrives whole is copied once, into the client's send
// queue; otherwise on u.in with `fresh` appended. What is left unconsumed ends in u.in.
void proxy_shard::relay_response(upstream_conn& u, std::string_view fresh) {
  client_conn* c = client_at(u.client_slot, u.client_gen);
  if (!c) {
    close_upstream(u);
    return;
  }
  bool direct = u.in.empty();
  if (!direct) u.in.append(fresh);
  std::string_view data = direct ? fresh : u.in.view();
  size_t used = 0;
  auto keep_rest = [&] {
    if (direct)
      u.in.append(data.substr(used));
    else
      u.in.consume(used);
  };
  while (!u.head_done) {
    response_head rh = parse_response_head(data.substr(used), config_->http, false, u.head_resume);
    if (rh.status() == parse_status::incomplete) {
      u.head_resume = rh.resume_offset();
      keep_rest();
      return;
    }
    u.head_resume = 0;
    if (rh.status() == parse_status::error) {
      std::fprintf(stderr, "mcpgate: upstream sent a malformed response head: %.*s\n",
                   static_cast<int>(rh.error_reason().size()), rh.error_reason().data());
      upstream_failed(u, EPROTO, true);
      return;
    }
    if (rh.is_interim()) {
      used += rh.head_length();  // 100 Continue and the like: ours to absorb
      continue;
    }
    u.head_done = true;
    u.status = rh.status_code();
    u.framing = rh.framing();
    u.remaining = rh.content_length();
    u.keep_alive = rh.keep_alive();
    u.sse = is_event_stream(rh.headers().find("content-type"));
    u.filtering = c->ticket->filter_response && u.status == 200 && u.framing != body_framing::none;
    // A relayed body has no size limit (an event stream may run for days); one the gateway
    // holds to filter (a JSON tools/list) has the request body's.
    bool held_whole = u.filtering && !u.sse;
    if (held_whole && u.framing == body_framing::content_length &&
        u.remaining > config_->http.max_body) {
      upstream_failed(u, EPROTO, true);
      return;
    }
    if (u.framing == body_framing::chunked) {
      http_limits relay = config_->http;
      if (!held_whole) relay.max_body = UINT64_MAX;
      u.chunks = chunked_decoder(relay);
    }
    if (u.framing == body_framing::until_close) c->keep_alive = false;
    if (u.dechunk && u.framing == body_framing::chunked) c->keep_alive = false;
    if (draining_) c->keep_alive = false;

    std::string& h = u.filtering ? u.held_head : reply_scratch_;
    h.clear();
    h += "HTTP/1.1 ";
    char digits[8];
    auto r = std::to_chars(digits, digits + sizeof digits, u.status);
    h.append(digits, r.ptr);
    h += ' ';
    h += rh.reason();
    h += "\r\n";
    std::string_view connection = rh.headers().find("connection");
    bool has_connection = rh.headers().count("connection") > 0;
    bool keep_chunked = u.framing == body_framing::chunked && !u.dechunk && !u.filtering;
    for (const http_header& hd : rh.headers()) {
      bool chunked_te = keep_chunked && equals_ignore_case(hd.name, "transfer-encoding");
      if (!chunked_te && is_hop_by_hop(hd.name)) continue;
      if (has_connection && header_has_token(connection, hd.name)) continue;
      if (u.filtering && equals_ignore_case(hd.name, "content-length")) continue;
      if (equals_ignore_case(hd.name, not_run_header)) {
        // The bridge's word that the child never got the request; from anyone else, ignored.
        u.not_run = config_->upstream_is_stdio;
        continue;
      }
      h += hd.name;
      h += ": ";
      if (equals_ignore_case(hd.name, "mcp-session-id")) {
        // The client gets the session bound to its identity, never the upstream's bare id.
        if (!seal_session(*c, hd.value, h)) {
          std::fprintf(stderr,
                       "mcpgate: upstream sent an Mcp-Session-Id that is not a session id\n");
          upstream_failed(u, EPROTO, true);
          return;
        }
      } else {
        h += hd.value;
      }
      h += "\r\n";
    }
    used += rh.head_length();
    if (u.sse) {
      u.sse_counted = true;
      stats_.sse_streams_open.add();
      if (metrics_) metrics_->sse_stream_opened();
    }
    u.deadline_ns = body_deadline_ns(u.sse, *config_, reactor_->now_ns());
    if (u.filtering) {
      u.filter_body.clear();
      u.events_base = 0;
      if (u.sse) {
        // Events are re-emitted one by one: the client gets a chunked stream (or, for an
        // HTTP/1.0 client, one delimited by the close).
        if (c->http10)
          c->keep_alive = false;
        else
          h += "Transfer-Encoding: chunked\r\n";
        if (!c->keep_alive) h += "Connection: close\r\n";
        h += "\r\n";
        send_client(*c, h);
        u.events = std::make_unique<sse_parser>(config_->http.max_body);
      }
      continue;  // a JSON body is held until complete: its length changes
    }
    if (!c->keep_alive) h += "Connection: close\r\n";
    h += "\r\n";
    send_client(*c, h);
  }

  std::string_view body = data.substr(used);
  // Without filtering, body bytes go to the client as they are (chunk framing included);
  // with it, they are decoded into u.filter_body for the gate.
  auto pass = [&](std::string_view bytes) {
    if (u.filtering)
      u.filter_body += bytes;
    else if (!bytes.empty())
      send_client(*c, bytes);
  };
  bool done = false;
  switch (u.framing) {
    case body_framing::none:
      done = true;
      break;
    case body_framing::content_length: {
      size_t n = static_cast<size_t>(std::min<uint64_t>(u.remaining, body.size()));
      pass(body.substr(0, n));
      used += n;
      u.remaining -= n;
      done = u.remaining == 0;
      break;
    }
    case body_framing::chunked: {
      u.decoded.clear();
      bool decode = u.dechunk || u.filtering;
      chunk_step step = u.chunks.feed(body, decode ? &u.decoded : nullptr);
      if (step.consumed) pass(decode ? std::string_view(u.decoded) : body.substr(0, step.consumed));
      used += step.consumed;
      if (step.status == chunk_status::error) {
        upstream_failed(u, EPROTO, false);
        return;
      }
      done = step.status == chunk_status::done;
      break;
    }
    case body_framing::until_close:
      pass(body);
      used += body.size();
      break;
  }
  keep_rest();
  if (u.filtering && !u.sse && u.filter_body.size() > config_->http.max_body) {
    upstream_failed(u, EPROTO, true);  // a body held to filter is bounded like a request's
    return;
  }
  if (u.filtering && !emit_filtered(u, *c, done)) {
    upstream_failed(u, EPROTO, !u.sse);
    return;
  }
  u.deadline_ns = body_deadline_ns(u.sse, *config_, reactor_->now_ns());
  if (!done) {
    if (c->out.pending_bytes() > config_->relay_high_water) pause_upstream(u);
    return;
  }
  uncount_sse(u);
  stats_.responses_relayed.add();
  u.client_slot = no_slot;
  c->up_slot = no_slot;
  // 503 and 429 say the upstream did not take the request; so does the stdio bridge's mark.
  c->ticket->completed(u.status, !u.not_run && u.status != 503 && u.status != 429);
  record_finish(*c, call_decision::allowed, false, true, u.status);
  bool reusable = u.keep_alive && u.in.empty() && !draining_;
  if (reusable)
    release_upstream_to_pool(u);
  else
    close_upstream(u);
  finish_exchange(*c);
}

// Hands the decoded body of a filtered response to the gate and sends the client its result:
// a JSON body once complete, with its new length; an SSE stream event by event, each event
// either as received or with its data replaced. False when the gate found the response
// malformed: it is not forwarded.
bool proxy_shard::emit_filtered(upstream_conn& u, client_conn& c, bool done) {
  if (!u.sse) {
    if (!done) return true;
    std::string_view body = u.filter_body;
    switch (gate_->filter_response(*c.ticket, body, u.filter_out)) {
      case filter_result::invalid:
        return false;
      case filter_result::replaced:
        body = u.filter_out;
        break;
      case filter_result::unchanged:
        break;
    }
    std::string& h = u.held_head;
    h += "Content-Length: ";
    char digits[24];
    auto r = std::to_chars(digits, digits + sizeof digits, body.size());
    h.append(digits, r.ptr);
    h += "\r\n";
    if (!c.keep_alive) h += "Connection: close\r\n";
    h += "\r\n";
    send_client(c, h);
    send_client(c, body);
    return true;
  }
  bool chunked = !c.http10;
  auto emit = [&](std::string_view bytes) {
    if (bytes.empty()) return;
    if (chunked) {
      char size[24];
      int n = std::snprintf(size, sizeof size, "%zx\r\n", bytes.size());
      send_client(c, std::string_view(size, static_cast<size_t>(n)));
      send_client(c, bytes);
      send_client(c, "\r\n");
    } else {
      send_client(c, bytes);
    }
  };
  size_t fed = static_cast<size_t>(u.events->offset() - u.events_base);
  size_t emitted_to = 0;  // raw bytes before this are sent; after it, an incomplete block
  for (;;) {
    sse_step step = u.events->feed(std::string_view(u.filter_body).substr(fed));
    fed += step.consumed;
    if (step.status == sse_status::error) return false;
    if (step.status == sse_status::need_more) break;
    const sse_event& ev = u.events->event();
    size_t begin = static_cast<size_t>(ev.begin - u.events_base);
    size_t end = static_cast<size_t>(ev.end - u.events_base);
    std::string_view raw = std::string_view(u.filter_body).substr(begin, end - begin);
    emitted_to = end;
    // Only an event carrying a message goes to the gate: comments, retry and id fields, and
    // events with empty data (the priming event a 2025-11-25 server opens its stream with)
    // carry none, and are passed on as they came.
    bool message = ev.dispatch && ev.data.find_first_not_of(" \t\r\n") != std::string_view::npos;
    filter_result fr = message ? gate_->filter_response(*c.ticket, ev.data, u.filter_out)
                               : filter_result::unchanged;
    if (fr == filter_result::invalid) return false;
    if (fr == filter_result::unchanged) {
      emit(raw);
    } else {
      // The same event with its data replaced; the filtered JSON may span lines only where the
      // original had whitespace, and SSE joins data lines with the newline they replace.
      std::string event;
      if (!ev.type.empty()) event.append("event: ").append(ev.type).append("\n");
      if (!ev.id.empty()) event.append("id: ").append(ev.id).append("\n");
      if (ev.retry) event.append("retry: ").append(std::to_string(*ev.retry)).append("\n");
      std::string_view data = u.filter_out;
      for (;;) {
        size_t nl = data.find('\n');
        event.append("data: ").append(data.substr(0, nl)).append("\n");
        if (nl == std::string_view::npos) break;
        data.remove_prefix(nl + 1);
      }
      event += "\n";
      emit(event);
    }
  }
  // Drop what has been emitted; keep the raw bytes of an incomplete block.
  u.filter_body.erase(0, emitted_to);
  u.events_base += emitted_to;
  if (done) {
    if (!u.filter_body.empty()) emit(u.filter_body);  // an unterminated last block, as received
    if (chunked) send_client(c, "0\r\n\r\n");
  }
  return true;
}

void proxy_shard::finish_exchange(client_conn& c) {
  c.up_slot = no_slot;
  if (!c.keep_alive || draining_) {
    c.close_after_send = true;
    c.st = client_conn::state::head;
    if (c.out.empty()) linger_client(c);
    return;
  }
  c.st = client_conn::state::head;
  c.deadline_ns = reactor_->now_ns() + config_->idle_timeout_ms * ms;
  process_client(c);
  resume_reading(c);
}

void proxy_shard::upstream_failed(upstream_conn& u, int err, bool before_response) {
  stats_.upstream_errors.add();
  if (metrics_)
    metrics_->count_upstream_error(err == ETIMEDOUT ? upstream_error_kind::timeout
                                   : err == EPROTO  ? upstream_error_kind::protocol
                                   : err == ECONNREFUSED || !u.head_done
                                       ? (u.st == upstream_conn::state::connecting
                                              ? upstream_error_kind::connect
                                              : upstream_error_kind::reset)
                                       : upstream_error_kind::reset);
  client_conn* c = client_at(u.client_slot, u.client_gen);
  u.client_slot = no_slot;
  // A tools/call may have effects: it is sent again, or its count given back, only when the
  // upstream provably never saw it (RFC 9112 9.3.1): the connection was never made, or the
  // kernel refused the first write before taking a byte. A request whose bytes went out may
  // have run, whatever happened to its answer.
  bool not_delivered = u.st == upstream_conn::state::connecting || u.write_refused;
  if (c && not_delivered && u.reused && !u.retried) {
    // A pooled connection the upstream had closed while idle. Retry once on a fresh one.
    std::string request;
    request.swap(u.request);
    close_upstream(u);
    c->fwd.swap(request);
    forward(*c);
    if (upstream_conn* fresh = upstream_at(c->up_slot, c->up_gen)) fresh->retried = true;
    return;
  }
  close_upstream(u);
  if (!c) return;
  c->up_slot = no_slot;
  c->upstream_failure = err == ETIMEDOUT      ? "timeout"
                        : err == ECONNREFUSED ? "refused"
                        : err == EPROTO       ? "malformed"
                                              : "reset";
  if (before_response) {
    c->ticket->completed(0, !not_delivered);
    const char* what = err == ETIMEDOUT      ? "upstream timed out"
                       : err == ECONNREFUSED ? "upstream unavailable: connection refused"
                       : err == EPROTO       ? "upstream sent a malformed response"
                                             : "upstream closed the connection before responding";
    int http_status = err == ETIMEDOUT ? 504 : 502;
    int code = err == ETIMEDOUT ? -32031 : err == EPROTO ? -32033 : -32030;
    reply_gateway_error(*c, http_status, code, what);
    return;
  }
  // The response had started: end the stream cleanly if its framing allows, else close.
  c->ticket->completed(u.status, true);
  record_finish(*c, call_decision::upstream_error, false, true, u.status);
  if (u.framing == body_framing::chunked && !u.dechunk && u.chunks.at_chunk_boundary()) {
    send_client(*c, "0\r\n\r\n");
  }
  c->keep_alive = false;
  c->close_after_send = true;
  c->st = client_conn::state::head;
  if (c->out.empty()) linger_client(*c);
}

// However a stream ends (completed, failed, the client gone, the gateway draining), it leaves
// the gauge exactly once.
void proxy_shard::uncount_sse(upstream_conn& u) {
  if (!u.sse_counted) return;
  u.sse_counted = false;
  stats_.sse_streams_open.sub();
  if (metrics_) metrics_->sse_stream_closed();
}

void proxy_shard::release_upstream_to_pool(upstream_conn& u) {
  if (idle_upstreams_.size() >= config_->max_idle_upstreams) {
    close_upstream(u);
    return;
  }
  u.st = upstream_conn::state::idle;
  u.deadline_ns = reactor_->now_ns() + config_->idle_timeout_ms * ms;
  u.request.clear();
  u.in.shrink_if_above(0);
  if (u.paused) resume_upstream(u);
  idle_upstreams_.push_back(u.slot);
}

void proxy_shard::close_upstream(upstream_conn& u) {
  if (u.st == upstream_conn::state::closing) return;
  if (u.st == upstream_conn::state::idle) {
    for (size_t i = 0; i < idle_upstreams_.size(); ++i) {
      if (idle_upstreams_[i] == u.slot) {
        idle_upstreams_[i] = idle_upstreams_.back();
        idle_upstreams_.pop_back();
        break;
      }
    }
  }
  uncount_sse(u);
  u.st = upstream_conn::state::closing;
  u.client_slot = no_slot;
  if (u.fd < 0) return;
  if (u.pending > 0)
    cancel_fd(u.fd);
  else
    release_upstream(u);
}

void proxy_shard::release_upstream(upstream_conn& u) {
  ::close(u.fd);
  u.fd = -1;
  u.gen = (u.gen + 1) & core::gen_mask;
  u.in.clear();
  u.in.shrink_if_above(0);
  u.request.clear();
  free_upstreams_.push_back(u.slot);
  --open_upstreams_;
}

void proxy_shard::pause_upstream(upstream_conn& u) {
  if (u.paused) return;
  u.paused = true;
  if (u.recv_armed) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_upstream_recv, u.slot, u.gen}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
  }
}

void proxy_shard::resume_upstream(upstream_conn& u) {
  u.paused = false;
  // Paused, the body was not read because the client was slow, not the upstream.
  if (u.st == upstream_conn::state::busy && u.head_done)
    u.deadline_ns = body_deadline_ns(u.sse, *config_, reactor_->now_ns());
  if (!u.in.empty() && u.st == upstream_conn::state::busy) relay_response(u, {});
  if (!u.recv_armed && u.st != upstream_conn::state::closing) arm_upstream_recv(u);
}

// ---------------------------------------------------------------------------------------------
// Time and control

void proxy_shard::on_tick(int64_t now) {
  if (audit_) {
    audit_->on_tick(now);
    if (draining_ && !audit_closing_ && open_clients_ == 0 && open_upstreams_ == 0) {
      audit_->flush_and_close();  // every exchange has ended: write what is left, then stop
      audit_closing_ = true;
    }
  }
  for (auto& cp : clients_) {
    client_conn& c = *cp;
    if (c.reading_paused && c.fd >= 0 && c.st != client_conn::state::upstream) {
      // An exchange that ended with a reply of the gateway's (an upstream failure) leaves
      // buffered input to take up here.
      process_client(c);
      resume_reading(c);
    }
    if (c.fd < 0 || c.deadline_ns == 0 || now < c.deadline_ns) continue;
    if (c.st == client_conn::state::lingering) {
      close_client(c);
    } else if (c.st == client_conn::state::head && c.in.empty() && !c.close_after_send) {
      close_client(c);  // idle keep-alive connection
    } else if ((c.st == client_conn::state::head || c.st == client_conn::state::body) &&
               !c.close_after_send) {
      if (c.st == client_conn::state::head) {
        // No head was parsed, so the request fields still describe the connection's previous
        // request (or the slot's previous connection): the audit line must not reuse them.
        c.req = ++next_req_;
        c.started_ns = now;
        c.started_realtime_ns = 0;
        c.bytes_in = c.in.size();
        c.bytes_out = 0;
        c.audit_heads.clear();
        c.audit_ends.clear();
        c.metric_ids.clear();
        forget_attribution(c);
      }
      c.keep_alive = false;
      c.deadline_ns = 0;
      reply_jsonrpc_error(c, 408, -32600, "request head or body not received in time", {}, true);
    } else if (c.close_after_send) {
      close_client(c);  // the client does not read its reply
    }
    maybe_release_client(c);
  }
  for (auto& up : upstreams_) {
    upstream_conn& u = *up;
    if (u.fd < 0 || u.deadline_ns == 0 || now < u.deadline_ns) continue;
    if (u.st == upstream_conn::state::idle) {
      close_upstream(u);
    } else if ((u.st == upstream_conn::state::connecting || u.st == upstream_conn::state::busy) &&
               !u.paused) {  // a paused body waits for the client, see resume_upstream
      // A filtered JSON body is held whole: the client has had nothing yet and gets the 504.
      upstream_failed(u, ETIMEDOUT, !u.head_done || (u.filtering && !u.sse));
    }
  }
  if (draining_ && now >= drain_deadline_ns_) {
    for (auto& cp : clients_) {
      if (cp->fd >= 0 && cp->st != client_conn::state::closing) close_client(*cp);
      if (cp->fd >= 0) maybe_release_client(*cp);
    }
    for (auto& up : upstreams_)
      if (up->fd >= 0) close_upstream(*up);
    // The audit log gets a second past the deadline to write its last lines; then what it
    // still holds is counted as dropped and reported, so the process can end.
    if (audit_ && audit_closing_ && audit_->busy() && now >= drain_deadline_ns_ + 1000 * ms)
      audit_->abandon();
  }
}

void proxy_shard::on_message(const core::message& m) {
  switch (static_cast<shard_message>(m.kind)) {
    case shard_message::drain:
      start_drain();
      break;
    case shard_message::reload: {
      auto* fresh = static_cast<std::shared_ptr<const gate_config>*>(m.ptr);
      gate_config_ = std::move(*fresh);
      delete fresh;
      gate_ = make_gate(gate_config_, reactor_->id());
      break;
    }
    case shard_message::reopen_audit: {
      auto* file = static_cast<std::shared_ptr<core::log_file>*>(m.ptr);
      if (audit_) audit_->set_file(std::move(*file));
      delete file;
      break;
    }
  }
}

void proxy_shard::start_drain() {
  if (draining_) return;
  draining_ = true;
  drain_deadline_ns_ = reactor_->now_ns() + config_->drain_timeout_ms * ms;
  if (accept_armed_) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_accept, 0, 0}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
  }
  for (auto& cp : clients_) {
    client_conn& c = *cp;
    if (c.fd >= 0 && c.st == client_conn::state::head && c.in.empty() && !c.close_after_send) {
      close_client(c);
      maybe_release_client(c);
    }
  }
  std::vector<uint32_t> idle = idle_upstreams_;
  for (uint32_t slot : idle) close_upstream(*upstreams_[slot]);
}

}  // namespace mcpgate::net
