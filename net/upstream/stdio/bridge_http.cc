// The stdio bridge's HTTP side: the proxy shards' upstream connections, one exchange at a time
// on each, answered as JSON or as an SSE stream.

#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "core/random.h"
#include "core/user_data.h"
#include "net/http/parser.h"
#include "net/http/writer.h"
#include "net/mcp/request_rules.h"
#include "net/upstream/stdio/bridge_parts.h"

namespace mcpgate::net {

using namespace stdio_detail;

void stdio_bridge::arm_accept() {
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, core::encode({op_accept, 0, 0}));
  accept_armed_ = true;
}

void stdio_bridge::arm_recv(conn& c) {
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_recv(s, c.fd, c.buf.data(), c.buf.size(), 0);
  io_uring_sqe_set_data64(s, core::encode({op_recv, c.slot, c.gen}));
  c.recv_armed = true;
  ++c.pending;
}

void stdio_bridge::on_recv(conn& c, const io_uring_cqe& cqe) {
  c.recv_armed = false;
  if (c.closing) return;
  if (cqe.res <= 0) {
    close_conn(c);
    return;
  }
  c.in.append(c.buf.data(), static_cast<size_t>(cqe.res));
  process_input(c);
  if (!c.closing && !c.recv_armed) arm_recv(c);
}

void stdio_bridge::process_input(conn& c) {
  // One exchange at a time per connection, as the proxy's pool uses them; a request arriving
  // while one is open is read after it ends.
  while (!c.closing && c.mode == conn::mode::idle && !c.in.empty()) {
    http_limits limits;
    limits.max_body = config_->max_line_bytes;
    request_head h = parse_request_head(c.in, limits);
    if (h.status() == parse_status::incomplete) return;
    if (h.status() == parse_status::error || h.framing() == body_framing::chunked) {
      reply_error(c, 400, -32600, "stdio bridge: malformed request from the gateway");
      close_conn(c);
      return;
    }
    size_t body_len = h.framing() == body_framing::content_length ? h.content_length() : 0;
    if (c.in.size() < h.head_length() + body_len) return;
    // Views into c.in, which no handler touches; the request is dropped from it afterwards.
    std::string_view session_id = h.headers().find("mcp-session-id");
    std::string_view body = std::string_view(c.in).substr(h.head_length(), body_len);
    ++c.exchange;
    c.extra_headers.clear();
    c.reply_id.clear();
    if (h.method() == http_method::post)
      handle_post(c, session_id, h.headers().find(identity_header), body);
    else if (h.method() == http_method::get)
      handle_get(c, session_id);
    else if (h.method() == http_method::delete_)
      handle_delete(c, session_id);
    else
      reply(c, 405, "Allow: GET, POST, DELETE\r\n", {}, {});
    c.in.erase(0, h.head_length() + body_len);
  }
}

void stdio_bridge::handle_post(conn& c, std::string_view session_id, std::string_view identity,
                               std::string_view body) {
  if (!scanner_.scan(body)) {
    reply_error(c, 400, -32700, "stdio bridge: the body is not JSON-RPC");
    return;
  }
  // Replies the bridge makes itself carry the request's id, as the gateway's do.
  if (!scanner_.batch() && scanner_.messages()[0].what == stdio_message::kind::request) {
    const stdio_message& m = scanner_.messages()[0];
    c.reply_id.assign(body.substr(m.id_offset, m.id_length));
  }
  // A message must not span lines on stdio: JSON's only raw line breaks are whitespace.
  std::string line(body);
  for (char& ch : line)
    if (ch == '\n' || ch == '\r') ch = ' ';

  session* s = nullptr;
  process* p = nullptr;
  bool initialize = !scanner_.batch() && scanner_.messages()[0].initialize;
  if (session_id.empty() && initialize) {
    std::string error;
    int status = 0, code = 0;
    p = start_process(identity, error, status, code);
    if (!p) {
      reply_error(c, status, code, error);
      return;
    }
    s = &sessions_.acquire();
    s->id = core::random_hex(16);
    s->process_slot = p->slot;
    s->process_gen = p->gen;
    s->get_slot = no_slot;
    s->queued.clear();
    s->busy = 0;
    session_ids_[s->id] = s->slot;
    p->sessions.emplace_back(s->slot, s->gen);
    if (!config_->shared) p->label = "session " + s->id.substr(0, 8);
    stats_.sessions_open.add();
    c.extra_headers = "Mcp-Session-Id: " + s->id + "\r\n";
  } else {
    s = session_or_reply(c, session_id);
    if (!s) return;
    p = process_at(s->process_slot, s->process_gen);
    // A child whose stdout has closed can answer nothing more, even before its exit is seen.
    if (!p || p->stop_requested || p->reaped || p->stdout_eof) {
      end_session(*s, false);
      reply_error(c, 404, -32001, "Session not found");
      return;
    }
  }
  s->last_ns = reactor_->now_ns();

  // Two requests in flight with one id in one session would take each other's route (and the
  // gateway would count the call that lost it as never answered): the second is refused before
  // it reaches the child.
  for (size_t i = 0; i < scanner_.messages().size(); ++i) {
    const stdio_message& m = scanner_.messages()[i];
    if (m.what != stdio_message::kind::request) continue;
    bool repeated = in_flight(*p, *s, m.id_key);
    for (size_t j = 0; j < i && !repeated; ++j)
      repeated = scanner_.messages()[j].what == stdio_message::kind::request &&
                 scanner_.messages()[j].id_key == m.id_key;
    if (repeated) {
      reply_error(c, 400, -32600,
                  "Invalid Request: a request with id " +
                      std::string(body.substr(m.id_offset, m.id_length)) +
                      " is already in flight in this session");
      return;
    }
  }

  // Requests get routes; in shared mode their ids are replaced by ones unique to the child.
  int requests = 0;
  c.progress_tokens.clear();
  if (config_->shared) {
    std::string rewritten;
    size_t from = 0;
    for (const stdio_message& m : scanner_.messages()) {
      if (m.what == stdio_message::kind::notification && !m.request_id_key.empty()) {
        // notifications/cancelled names the request by the client's id: give the child its own.
        for (const auto& [child_key, r] : p->routes) {
          if (r.session_slot != s->slot || r.session_gen != s->gen ||
              r.client_key != m.request_id_key)
            continue;
          rewritten.append(line, from, m.request_id_offset - from);
          rewritten += child_key.substr(2);  // "n:<number>"
          from = m.request_id_offset + m.request_id_length;
          break;
        }
        continue;
      }
      if (m.what != stdio_message::kind::request) continue;
      std::string child_id = std::to_string(++next_child_id_);
      rewritten.append(line, from, m.id_offset - from);
      rewritten += child_id;
      from = m.id_offset + m.id_length;
      p->routes["n:" + child_id] =
          route{c.slot,   c.gen,   c.exchange, std::string(body.substr(m.id_offset, m.id_length)),
                m.id_key, s->slot, s->gen};
      ++requests;
      if (!m.progress_token.empty()) c.progress_tokens.push_back(m.progress_token);
    }
    rewritten.append(line, from, std::string::npos);
    line = std::move(rewritten);
  } else {
    for (const stdio_message& m : scanner_.messages()) {
      if (m.what != stdio_message::kind::request) continue;
      p->routes[m.id_key] =
          route{c.slot,   c.gen,   c.exchange, std::string(body.substr(m.id_offset, m.id_length)),
                m.id_key, s->slot, s->gen};
      ++requests;
      if (!m.progress_token.empty()) c.progress_tokens.push_back(m.progress_token);
    }
  }
  line += '\n';
  write_child(*p, line);
  if (requests == 0) {
    reply(c, 202, {}, {}, {});
    return;
  }
  c.mode = conn::mode::post;
  c.session_slot = s->slot;
  c.session_gen = s->gen;
  c.process_slot = p->slot;
  c.process_gen = p->gen;
  c.waiting = requests;
  c.can_be_json = requests == 1 && !scanner_.batch();
  c.streaming = false;
  p->posts.emplace_back(c.slot, c.gen);
  ++s->busy;
}

// The session a request names, or null once the client has been told why there is none.
stdio_bridge::session* stdio_bridge::session_or_reply(conn& c, std::string_view session_id) {
  if (session_id.empty()) {
    reply_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
    return nullptr;
  }
  session* s = find_session(session_id);
  if (!s) reply_error(c, 404, -32001, "Session not found");
  return s;
}

void stdio_bridge::handle_get(conn& c, std::string_view session_id) {
  session* s = session_or_reply(c, session_id);
  if (!s) return;
  s->last_ns = reactor_->now_ns();
  // A client re-opening its stream replaces the old one.
  if (conn* old = conn_at(s->get_slot, s->get_gen); old && old->mode == conn::mode::get) {
    end_stream(*old);
    old->mode = conn::mode::idle;
    exchange_over(*old);
  }
  c.mode = conn::mode::get;
  c.session_slot = s->slot;
  c.session_gen = s->gen;
  c.process_slot = s->process_slot;
  c.process_gen = s->process_gen;
  s->get_slot = c.slot;
  s->get_gen = c.gen;
  start_stream(c, {});
  std::string_view q = s->queued;
  while (!q.empty()) {
    size_t nl = q.find('\n');
    stream_event(c, q.substr(0, nl));
    q.remove_prefix(nl + 1);
  }
  s->queued.clear();
}

void stdio_bridge::handle_delete(conn& c, std::string_view session_id) {
  session* s = session_or_reply(c, session_id);
  if (!s) return;
  end_session(*s, true);
  reply(c, 200, {}, {}, {});
}

void stdio_bridge::reply(conn& c, int status, std::string_view extra_headers,
                         std::string_view content_type, std::string_view body) {
  std::string& h = scratch_;
  h.assign(extra_headers);
  h += c.extra_headers;
  std::string out;
  append_response(out, status, h, content_type, body, false);
  c.out.append(out);
  flush(c);
}

// Every error the bridge answers itself is made before anything reached a child: it says so,
// so that the gateway gives the call's count back.
void stdio_bridge::reply_error(conn& c, int status, int code, std::string_view message) {
  std::string body;
  append_jsonrpc_error(body, c.reply_id, code, message);
  reply(c, status, "Mcp-Gateway-Not-Run: 1\r\n", "application/json", body);
}

bool stdio_bridge::in_flight(const process& p, const session& s, const std::string& key) const {
  if (!config_->shared) return p.routes.count(key) > 0;
  for (const auto& [child_key, r] : p.routes)
    if (r.session_slot == s.slot && r.session_gen == s.gen && r.client_key == key) return true;
  return false;
}

void stdio_bridge::start_stream(conn& c, std::string_view extra_headers) {
  std::string h;
  append_status_line(h, 200);
  h += "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: "
       "chunked\r\n";
  h += extra_headers;
  h += c.extra_headers;
  h += "\r\n";
  c.out.append(h);
  c.streaming = true;
  flush(c);
}

void stdio_bridge::stream_event(conn& c, std::string_view message) {
  std::string& e = scratch_;
  e.clear();
  constexpr std::string_view prefix = "event: message\ndata: ";
  append_chunk_size(e, prefix.size() + message.size() + 2);
  e += prefix;
  e += message;
  e += "\n\n\r\n";
  c.out.append(e);
  flush(c);
  note_backlog(c);
}

// A client that does not read its stream must not make the bridge buffer what the child keeps
// writing: past the high-water mark the child's stdout is no longer read (the child blocks on
// its next write) until the client has taken most of it. A shared child serves every session,
// so it is never held up for one: that client's connection is closed instead.
void stdio_bridge::note_backlog(conn& c) {
  if (c.closing || c.out.pending_bytes() <= backlog_high_water) return;
  process* p = process_at(c.process_slot, c.process_gen);
  if (!p) return;
  if (config_->shared) {
    log_line("mcpgate: stdio: a client of the shared child holds " +
             std::to_string(c.out.pending_bytes()) + " unread bytes; closing its connection\n");
    close_conn(c);
    return;
  }
  p->stdout_paused = true;
}

void stdio_bridge::release_backlog(conn& c, bool gone) {
  if (!gone && c.out.pending_bytes() > backlog_high_water / 4) return;
  process* p = process_at(c.process_slot, c.process_gen);
  if (!p || !p->stdout_paused) return;
  p->stdout_paused = false;
  if (p->stdout_waiting) {
    p->stdout_waiting = false;
    arm_read(*p, false);
  }
}

void stdio_bridge::end_stream(conn& c) {
  if (!c.streaming) return;
  c.out.append(last_chunk);
  c.streaming = false;
  flush(c);
}

void stdio_bridge::flush(conn& c) {
  if (c.closing) return;
  std::string_view next = c.out.next();
  if (next.empty()) return;
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_send(s, c.fd, next.data(), next.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, core::encode({op_send, c.slot, c.gen}));
  ++c.pending;
}

void stdio_bridge::on_sent(conn& c, const io_uring_cqe& cqe) {
  // The send is over whatever happens next: a queue left marked in flight would stay so when
  // the slot is reused, and the next connection's replies would never be sent.
  c.out.sent(cqe.res > 0 ? static_cast<size_t>(cqe.res) : 0);
  if (c.closing) return;
  if (cqe.res < 0) {
    close_conn(c);
    return;
  }
  flush(c);
  release_backlog(c, false);
}

// The POST or GET on `c` is over (answered, or its connection is going): forget it everywhere.
void stdio_bridge::exchange_over(conn& c) {
  if (process* p = process_at(c.process_slot, c.process_gen); p && c.mode == conn::mode::post) {
    std::erase(p->posts, std::pair{c.slot, c.gen});
  }
  if (session* s = session_at(c.session_slot, c.session_gen)) {
    if (c.mode == conn::mode::post && s->busy > 0) --s->busy;
    if (s->get_slot == c.slot && s->get_gen == c.gen) s->get_slot = no_slot;
    s->last_ns = reactor_ ? reactor_->now_ns() : 0;
  }
  c.mode = conn::mode::idle;
  c.process_slot = no_slot;
  c.session_slot = no_slot;
  c.waiting = 0;
  c.extra_headers.clear();
  ++c.exchange;
}

void stdio_bridge::close_conn(conn& c) {
  if (c.closing) return;
  release_backlog(c, true);  // what it leaves unread no longer counts
  bool mid_exchange = c.mode != conn::mode::idle;
  session* s = session_at(c.session_slot, c.session_gen);
  exchange_over(c);
  c.closing = true;
  if (mid_exchange && s && config_->end_session_on_disconnect) end_session(*s, true);
  io_uring_sqe* sqe = reactor_->io().sqe();
  io_uring_prep_cancel_fd(sqe, c.fd, IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, core::encode({op_ignore, 0, 0}));
  maybe_release_conn(c);
}

void stdio_bridge::maybe_release_conn(conn& c) {
  if (!c.closing || c.pending > 0 || !c.live) return;
  ::close(c.fd);
  c.fd = -1;
  c.out.clear();
  c.in.clear();
  conns_.release(c);
}

}  // namespace mcpgate::net
