#include "net/upstream/stdio/bridge.h"

#include <poll.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "core/user_data.h"
#include "net/http/parser.h"
#include "net/http/writer.h"
#include "net/mcp/request_rules.h"

namespace mcpgate::net {
namespace {

enum op : uint8_t {
  op_accept = 1,
  op_recv,
  op_send,
  op_read_out,  // the child's stdout
  op_read_err,  // the child's stderr
  op_write_in,  // the child's stdin
  op_exit,      // the child's pidfd became readable
  op_log,       // a write of child stderr lines to the gateway's stderr
  op_ignore,    // cancellations
};

constexpr uint32_t no_slot = UINT32_MAX;
constexpr int64_t ms = 1'000'000;
constexpr size_t recv_size = 16 * 1024;
constexpr size_t read_size = 64 * 1024;
constexpr size_t max_log_backlog = 1 << 20;
// Bytes a client may leave unread before the child's stdout is no longer read (note_backlog).
constexpr size_t backlog_high_water = 1 << 20;
// A child's stdout ends just before its exit is seen on the pidfd, usually within the same loop
// turn: wait this long for the exit before deciding it closed stdout and runs on.
constexpr int64_t stdout_closed_grace_ns = 200 * ms;
// Read/write offset -1: the file's own position, so that stderr redirected to a file is
// appended to rather than overwritten from its start.
constexpr uint64_t current_position = ~uint64_t{0};

std::string new_session_id() {
  unsigned char raw[16];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char b : raw) {
    id += hex[b >> 4];
    id += hex[b & 15];
  }
  return id;
}

void append_hex(std::string& out, size_t n) {
  char buf[20];
  int len = std::snprintf(buf, sizeof buf, "%zx", n);
  out.append(buf, static_cast<size_t>(len));
}

}  // namespace

// Where a response to a request the bridge passed on goes back to.
struct stdio_bridge::route {
  uint32_t conn_slot, conn_gen;
  uint64_t exchange;
  std::string client_id;   // the id as the client wrote it (shared mode restores it on the way out)
  std::string client_key;  // shared mode: the same, normalised (stdio_message::id_key)
  uint32_t session_slot = UINT32_MAX, session_gen = 0;  // shared mode: whose request it is
};

struct stdio_bridge::conn {
  uint32_t slot = 0, gen = 0;
  int fd = -1;
  int pending = 0;
  bool recv_armed = false;
  bool closing = false;
  std::string in;
  std::array<char, recv_size> buf;
  core::send_queue out;
  enum class mode : uint8_t { idle, post, get } mode = mode::idle;
  uint64_t exchange = 0;  // bumped per request; routes of an earlier one no longer match
  uint32_t session_slot = no_slot, session_gen = 0;
  uint32_t process_slot = no_slot, process_gen = 0;
  int waiting = 0;            // responses still due on this POST
  bool can_be_json = false;   // one request and nothing sent yet: the answer may be plain JSON
  bool streaming = false;     // an SSE head went out
  std::string extra_headers;  // for the reply head (the new Mcp-Session-Id)
  std::string reply_id;       // the request's id token, for errors the bridge answers itself
  std::vector<std::string> progress_tokens;
};

struct stdio_bridge::session {
  uint32_t slot = 0, gen = 0;
  bool open = false;
  std::string id;
  uint32_t process_slot = no_slot, process_gen = 0;
  uint32_t get_slot = no_slot, get_gen = 0;  // the GET stream's connection
  std::string queued;                        // server messages waiting for a GET, one per line
  int64_t last_ns = 0;
  int busy = 0;  // POST exchanges open
};

struct stdio_bridge::process {
  uint32_t slot = 0, gen = 0;
  bool live = false;
  core::child_process child;
  std::string label;     // for log lines: "session 1a2b3c4d" or "shared"
  std::string identity;  // who started it (counted in identity_processes_), empty when shared
  pid_t pid = -1;
  int pending = 0;
  bool reaped = false, stdout_eof = false, stderr_eof = false, finalized = false;
  bool stop_requested = false;
  bool stdout_paused = false;   // a client's backlog is over the high-water mark
  bool stdout_waiting = false;  // paused with no read in flight
  int status = 0;
  int64_t started_ns = 0;
  int64_t kill_at_ns = 0;      // SIGKILL when still running then
  int64_t stop_at_ns = 0;      // stdout closed: stop it then unless it has exited by itself
  int64_t finalize_at_ns = 0;  // reaped but stdout still open (a stray holds it): give up then
  std::array<char, read_size> out_buf, err_buf;
  std::string out_line, err_line;
  core::send_queue to_child;
  std::unordered_map<std::string, route> routes;        // by the id the child sees
  std::vector<std::pair<uint32_t, uint32_t>> posts;     // open POST exchanges, oldest first
  std::vector<std::pair<uint32_t, uint32_t>> sessions;  // the sessions it serves
};

stdio_bridge::bound_socket stdio_bridge::bind_socket() {
  bound_socket b;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    b.error = std::string("stdio bridge: socket: ") + std::strerror(errno);
    return b;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = "mcpgate-stdio-" + std::to_string(::getpid()) + "-" + new_session_id();
  std::memcpy(addr.sun_path + 1, name.data(), name.size());  // sun_path[0] == 0: abstract
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 4096) != 0) {
    b.error = std::string("stdio bridge: bind: ") + std::strerror(errno);
    ::close(fd);
    return b;
  }
  b.fd = fd;
  std::memcpy(&b.at.addr, &addr, len);
  b.at.addr_len = len;
  b.at.host = "stdio";
  return b;
}

stdio_bridge::stdio_bridge(std::shared_ptr<const stdio_upstream_config> config, int listen_fd,
                           stdio_bridge_stats& stats)
    : config_(std::move(config)), listen_fd_(listen_fd), stats_(stats), scanner_() {}

stdio_bridge::~stdio_bridge() {
  for (auto& p : processes_) {
    if (!p->live) continue;
    // The loop ended with children still running (a drain that timed out): do not leave them.
    if (!p->reaped) {
      core::signal_child(p->child, SIGKILL);
      while (!core::reap_child(p->child)) ::poll(nullptr, 0, 1);
    }
    for (int fd : {p->child.stdin_fd, p->child.stdout_fd, p->child.stderr_fd, p->child.pidfd})
      if (fd >= 0) ::close(fd);
  }
  for (auto& c : conns_)
    if (c->fd >= 0) ::close(c->fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void stdio_bridge::on_start(core::reactor& r) {
  reactor_ = &r;
  arm_accept();
}

bool stdio_bridge::finished() const {
  return draining_ && live_processes_ == 0 && open_conns_ == 0 && !accept_armed_ && !log_in_flight_;
}

void stdio_bridge::on_message(const core::message& m) {
  if (m.kind != core::message_drain || draining_) return;
  draining_ = true;
  if (accept_armed_) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_accept, 0, 0}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_ignore, 0, 0}));
  }
  for (auto& c : conns_)
    if (c->fd >= 0 && !c->closing) close_conn(*c);
  for (auto& s : sessions_)
    if (s->open) end_session(*s, true);
  for (auto& p : processes_)
    if (p->live) stop_process(*p);
}

// ---------------------------------------------------------------------------------------------
// Completions

stdio_bridge::conn* stdio_bridge::conn_at(uint32_t slot, uint32_t gen) {
  if (slot >= conns_.size()) return nullptr;
  conn* c = conns_[slot].get();
  return c->gen == gen && c->fd >= 0 ? c : nullptr;
}

stdio_bridge::process* stdio_bridge::process_at(uint32_t slot, uint32_t gen) {
  if (slot >= processes_.size()) return nullptr;
  process* p = processes_[slot].get();
  return p->gen == gen && p->live ? p : nullptr;
}

stdio_bridge::session* stdio_bridge::session_at(uint32_t slot, uint32_t gen) {
  if (slot >= sessions_.size()) return nullptr;
  session* s = sessions_[slot].get();
  return s->gen == gen && s->open ? s : nullptr;
}

void stdio_bridge::on_completion(const io_uring_cqe& cqe) {
  core::op_tag t = core::decode(cqe.user_data);
  switch (t.op) {
    case op_accept: {
      if (!(cqe.flags & IORING_CQE_F_MORE)) accept_armed_ = false;
      if (cqe.res >= 0) {
        // The socket is in the abstract namespace, which every process on the host can see
        // (/proc/net/unix) and connect to: only this process's shards may use the bridge.
        ucred peer{};
        socklen_t peer_len = sizeof peer;
        bool ours = ::getsockopt(cqe.res, SOL_SOCKET, SO_PEERCRED, &peer, &peer_len) == 0 &&
                    peer.pid == ::getpid();
        if (draining_ || !ours) {
          ::close(cqe.res);
        } else {
          uint32_t slot;
          if (!free_conns_.empty()) {
            slot = free_conns_.back();
            free_conns_.pop_back();
          } else {
            slot = static_cast<uint32_t>(conns_.size());
            conns_.push_back(std::make_unique<conn>());
          }
          conn& c = *conns_[slot];
          c.slot = slot;
          c.gen = (c.gen + 1) & core::gen_mask;
          c.fd = cqe.res;
          c.pending = 0;
          c.closing = false;
          c.recv_armed = false;
          c.in.clear();
          c.out.clear();
          c.mode = conn::mode::idle;
          c.streaming = false;
          ++open_conns_;
          arm_recv(c);
        }
      }
      if (!accept_armed_ && !draining_) arm_accept();
      return;
    }
    case op_recv:
    case op_send: {
      if (t.slot >= conns_.size()) return;
      conn& c = *conns_[t.slot];
      if (c.gen != t.gen) return;
      --c.pending;
      if (t.op == op_recv)
        on_recv(c, cqe);
      else
        on_sent(c, cqe);
      maybe_release_conn(c);
      return;
    }
    case op_read_out:
    case op_read_err:
    case op_write_in:
    case op_exit: {
      if (t.slot >= processes_.size()) return;
      process& p = *processes_[t.slot];
      if (p.gen != t.gen || !p.live) return;
      --p.pending;
      if (t.op == op_write_in)
        on_written(p, cqe);
      else if (t.op == op_exit)
        on_exit_ready(p);
      else
        on_read(p, t.op == op_read_err, cqe);
      maybe_release_process(p);
      return;
    }
    case op_log:
      log_in_flight_ = false;
      if (cqe.res < 0) {
        // stderr is gone (or the write was cancelled at shutdown): drop what waits for it.
        log_.sent(0);
        log_.clear();
        return;
      }
      log_.sent(static_cast<size_t>(cqe.res));
      flush_log();
      return;
    default:
      return;
  }
}

void stdio_bridge::on_tick(int64_t now) {
  // At shutdown, a write to a stderr nobody reads any more must not hold the bridge open.
  if (draining_ && live_processes_ == 0 && open_conns_ == 0 && log_in_flight_ && !log_cancelled_) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_log, 0, 0}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_ignore, 0, 0}));
    log_cancelled_ = true;
  }
  for (auto& p : processes_) {
    if (!p->live) continue;
    if (p->stop_at_ns && !p->reaped && !p->stop_requested && now >= p->stop_at_ns) {
      // The child closed its stdout but runs on: it can no longer answer anything.
      log_line("mcpgate: stdio: " + p->label + " pid " + std::to_string(p->pid) +
               " closed its stdout; stopping it\n");
      stop_process(*p);
    }
    if (p->kill_at_ns && !p->reaped && now >= p->kill_at_ns) {
      core::signal_child(p->child, SIGKILL);
      p->kill_at_ns = 0;
    }
    if (p->finalize_at_ns && !p->finalized && now >= p->finalize_at_ns) {
      p->stdout_eof = true;
      finalize_process(*p);
      maybe_release_process(*p);
    }
  }
  if (config_->session_idle_timeout_ms > 0) {
    int64_t idle_before = now - config_->session_idle_timeout_ms * ms;
    for (auto& s : sessions_) {
      if (s->open && s->busy == 0 && s->last_ns < idle_before) {
        std::string note = "mcpgate: stdio: session " + s->id.substr(0, 8) + " idle for " +
                           std::to_string(config_->session_idle_timeout_ms) + " ms, ending it\n";
        log_line(note);
        end_session(*s, true);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP side: the proxy shards' upstream connections

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

stdio_bridge::session* stdio_bridge::find_session(std::string_view id) {
  auto it = session_ids_.find(std::string(id));
  if (it == session_ids_.end()) return nullptr;
  session& s = *sessions_[it->second];
  return s.open ? &s : nullptr;
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
  if (session_id.empty()) {
    if (!initialize) {
      reply_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
      return;
    }
    std::string error;
    int status = 0, code = 0;
    p = start_process(identity, error, status, code);
    if (!p) {
      reply_error(c, status, code, error);
      return;
    }
    uint32_t slot;
    if (!free_sessions_.empty()) {
      slot = free_sessions_.back();
      free_sessions_.pop_back();
    } else {
      slot = static_cast<uint32_t>(sessions_.size());
      sessions_.push_back(std::make_unique<session>());
    }
    s = sessions_[slot].get();
    s->slot = slot;
    s->gen = (s->gen + 1) & core::gen_mask;
    s->open = true;
    s->id = new_session_id();
    s->process_slot = p->slot;
    s->process_gen = p->gen;
    s->get_slot = no_slot;
    s->queued.clear();
    s->busy = 0;
    session_ids_[s->id] = slot;
    p->sessions.emplace_back(s->slot, s->gen);
    if (!config_->shared) p->label = "session " + s->id.substr(0, 8);
    stats_.sessions_open.add();
    c.extra_headers = "Mcp-Session-Id: " + s->id + "\r\n";
  } else {
    s = find_session(session_id);
    if (!s) {
      reply_error(c, 404, -32001, "Session not found");
      return;
    }
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

void stdio_bridge::handle_get(conn& c, std::string_view session_id) {
  session* s = session_id.empty() ? nullptr : find_session(session_id);
  if (!s) {
    if (session_id.empty())
      reply_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
    else
      reply_error(c, 404, -32001, "Session not found");
    return;
  }
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
  session* s = session_id.empty() ? nullptr : find_session(session_id);
  if (!s) {
    if (session_id.empty())
      reply_error(c, 400, -32600, "Bad Request: Mcp-Session-Id header is required");
    else
      reply_error(c, 404, -32001, "Session not found");
    return;
  }
  end_session(*s, true);
  reply(c, 200, {}, {}, {});
}

void stdio_bridge::reply(conn& c, int status, std::string_view extra_headers,
                         std::string_view content_type, std::string_view body) {
  std::string& h = scratch_;
  h.clear();
  append_status_line(h, status);
  h += extra_headers;
  h += c.extra_headers;
  if (!content_type.empty()) {
    h += "Content-Type: ";
    h += content_type;
    h += "\r\n";
  }
  h += "Content-Length: ";
  h += std::to_string(body.size());
  h += "\r\n\r\n";
  h += body;
  c.out.append(h);
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
  std::string h =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: "
      "no-cache\r\nTransfer-Encoding: chunked\r\n";
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
  size_t len = std::string_view("event: message\ndata: ").size() + message.size() + 2;
  append_hex(e, len);
  e += "\r\nevent: message\ndata: ";
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
  c.out.append("0\r\n\r\n");
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
  if (!c.closing || c.pending > 0 || c.fd < 0) return;
  ::close(c.fd);
  c.fd = -1;
  c.out.clear();
  c.in.clear();
  free_conns_.push_back(c.slot);
  --open_conns_;
}

// ---------------------------------------------------------------------------------------------
// stdio side: the children

stdio_bridge::process* stdio_bridge::start_process(std::string_view identity, std::string& error,
                                                   int& http_status, int& code) {
  if (config_->shared) {
    if (process* p =
            process_at(shared_process_,
                       processes_.size() > shared_process_ ? processes_[shared_process_]->gen : 0);
        p && !p->stop_requested && !p->reaped && !p->stdout_eof)
      return p;
  }
  int64_t now = reactor_->now_ns();
  if (now < next_start_ns_) {
    stats_.refused_backoff.add();
    http_status = 503;
    code = -32035;
    error = "stdio upstream is crash-looping: " + std::to_string(consecutive_crashes_) +
            " quick exits in a row, next start allowed in " +
            std::to_string((next_start_ns_ - now) / ms) + " ms";
    return nullptr;
  }
  if (live_processes_ >= config_->max_processes) {
    stats_.refused_over_cap.add();
    http_status = 503;
    code = -32034;
    error = "stdio upstream: " + std::to_string(config_->max_processes) +
            " processes already running (max_processes); end a session or try again later";
    return nullptr;
  }
  uint32_t per_identity = config_->max_processes_per_identity
                              ? config_->max_processes_per_identity
                              : std::max<uint32_t>(1, config_->max_processes / 4);
  if (!identity.empty() && !config_->shared) {
    auto held = identity_processes_.find(identity);
    if (held != identity_processes_.end() && held->second >= per_identity) {
      stats_.refused_over_identity_cap.add();
      http_status = 503;
      code = -32034;
      error = "stdio upstream: " + std::string(identity) + " already runs " +
              std::to_string(per_identity) +
              " processes (max_processes_per_identity); end a session or try again later";
      return nullptr;
    }
  }
  core::spawn_result r = core::spawn_child(config_->command);
  if (!r.error.empty()) {
    stats_.spawn_failures.add();
    http_status = 502;
    code = -32030;
    error = "upstream unavailable: " + r.error;
    log_line("mcpgate: stdio: " + r.error + "\n");
    return nullptr;
  }
  uint32_t slot;
  if (!free_processes_.empty()) {
    slot = free_processes_.back();
    free_processes_.pop_back();
  } else {
    slot = static_cast<uint32_t>(processes_.size());
    processes_.push_back(std::make_unique<process>());
  }
  process& p = *processes_[slot];
  p.slot = slot;
  p.gen = (p.gen + 1) & core::gen_mask;
  p.live = true;
  p.child = r.child;
  p.pid = r.child.pid;
  p.label = config_->shared ? "shared" : "";
  p.identity = config_->shared ? std::string() : std::string(identity);
  if (!p.identity.empty()) ++identity_processes_[p.identity];
  p.pending = 0;
  p.reaped = p.stdout_eof = p.stderr_eof = p.finalized = p.stop_requested = false;
  p.stdout_paused = p.stdout_waiting = false;
  p.status = 0;
  p.started_ns = now;
  p.kill_at_ns = p.stop_at_ns = p.finalize_at_ns = 0;
  p.out_line.clear();
  p.err_line.clear();
  p.to_child.clear();
  p.routes.clear();
  p.posts.clear();
  p.sessions.clear();
  ++live_processes_;
  stats_.processes_running.add();
  stats_.spawned.add();
  if (config_->shared) shared_process_ = slot;
  arm_read(p, false);
  arm_read(p, true);
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_poll_add(s, p.child.pidfd, POLLIN);
  io_uring_sqe_set_data64(s, core::encode({op_exit, p.slot, p.gen}));
  ++p.pending;
  return &p;
}

void stdio_bridge::arm_read(process& p, bool err) {
  io_uring_sqe* s = reactor_->io().sqe();
  if (err)
    io_uring_prep_read(s, p.child.stderr_fd, p.err_buf.data(), p.err_buf.size(), current_position);
  else
    io_uring_prep_read(s, p.child.stdout_fd, p.out_buf.data(), p.out_buf.size(), current_position);
  io_uring_sqe_set_data64(s, core::encode({err ? op_read_err : op_read_out, p.slot, p.gen}));
  ++p.pending;
}

void stdio_bridge::on_read(process& p, bool err, const io_uring_cqe& cqe) {
  if (cqe.res <= 0) {
    (err ? p.stderr_eof : p.stdout_eof) = true;
    if (err && !p.err_line.empty()) child_log(p, std::exchange(p.err_line, {}));
    if (!err) {
      // Stopping it at once would make every exit look like the gateway's doing (the EOF
      // usually completes before the pidfd does): no crash counted, no backoff, and the error
      // would say "stopped by the gateway". on_tick stops it if it really runs on.
      if (!p.reaped && !p.stop_requested && !p.stop_at_ns)
        p.stop_at_ns = reactor_->now_ns() + stdout_closed_grace_ns;
      finalize_process(p);
    }
    return;
  }
  std::string& acc = err ? p.err_line : p.out_line;
  size_t fresh = acc.size();
  acc.append(err ? p.err_buf.data() : p.out_buf.data(), static_cast<size_t>(cqe.res));
  // A bare CR ends a line in SSE: passed on, it would let a child forge events on the client's
  // stream. Valid JSON has CR only as whitespace between tokens, so a space keeps the meaning.
  if (!err) std::replace(acc.begin() + static_cast<std::ptrdiff_t>(fresh), acc.end(), '\r', ' ');
  size_t start = 0;
  for (size_t nl; (nl = acc.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(acc.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (err)
      child_log(p, line);
    else if (line.find_first_not_of(" \t") != std::string_view::npos)
      deliver(p, line);
  }
  acc.erase(0, start);
  if (acc.size() > config_->max_line_bytes) {
    if (err) {
      child_log(p, std::exchange(acc, {}));
    } else {
      log_line("mcpgate: stdio: " + p.label + " pid " + std::to_string(p.pid) +
               " wrote a line longer than " + std::to_string(config_->max_line_bytes) +
               " bytes; stopping it\n");
      acc.clear();
      stop_process(p);
    }
  }
  // A line that grew large leaves its memory behind otherwise.
  if (acc.empty() && acc.capacity() > read_size * 4) std::string().swap(acc);
  if (p.finalized) return;
  if (!err && p.stdout_paused && !p.reaped)
    p.stdout_waiting = true;  // see note_backlog
  else
    arm_read(p, err);
}

void stdio_bridge::write_child(process& p, std::string_view line) {
  p.to_child.append(line);
  flush_child(p);
}

void stdio_bridge::flush_child(process& p) {
  if (p.reaped || p.finalized) return;
  std::string_view next = p.to_child.next();
  if (next.empty()) return;
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_write(s, p.child.stdin_fd, next.data(), static_cast<unsigned>(next.size()),
                      current_position);
  io_uring_sqe_set_data64(s, core::encode({op_write_in, p.slot, p.gen}));
  ++p.pending;
}

void stdio_bridge::on_written(process& p, const io_uring_cqe& cqe) {
  if (cqe.res < 0) {
    // EPIPE: the child stopped reading (it is exiting); its exit fails what is pending.
    p.to_child.sent(0);
    p.to_child.clear();
    return;
  }
  p.to_child.sent(static_cast<size_t>(cqe.res));
  flush_child(p);
}

void stdio_bridge::on_exit_ready(process& p) {
  // The leader is a zombie: its pid cannot be reused yet, so the group is still ours to kill
  // (strays a launcher left behind), then reap.
  core::signal_child(p.child, SIGKILL);
  std::optional<int> status = core::reap_child(p.child);
  if (!status) {
    // Spurious wake-up; watch again.
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_poll_add(s, p.child.pidfd, POLLIN);
    io_uring_sqe_set_data64(s, core::encode({op_exit, p.slot, p.gen}));
    ++p.pending;
    return;
  }
  p.reaped = true;
  p.status = *status;
  if (p.stdout_waiting) {
    // Its last words are read whatever the client's backlog: the exit must be seen through.
    p.stdout_waiting = false;
    arm_read(p, false);
  }
  int64_t now = reactor_->now_ns();
  stats_.exits.add();
  stats_.processes_running.sub();
  if (!p.stop_requested) {
    log_line("mcpgate: stdio: " + p.label + " pid " + std::to_string(p.pid) + " " +
             core::describe_exit(p.status) + "\n");
    if (now - p.started_ns < config_->min_uptime_ms * ms) {
      stats_.crashes.add();
      ++consecutive_crashes_;
      int64_t backoff = config_->restart_backoff_min_ms;
      for (uint32_t i = 1; i < consecutive_crashes_ && backoff < config_->restart_backoff_max_ms;
           ++i)
        backoff *= 2;
      backoff = std::min(backoff, config_->restart_backoff_max_ms);
      next_start_ns_ = now + backoff * ms;
      stats_.backoff_until_ns.store(next_start_ns_, std::memory_order_relaxed);
    } else {
      consecutive_crashes_ = 0;
    }
  } else if (now - p.started_ns >= config_->min_uptime_ms * ms) {
    consecutive_crashes_ = 0;
  }
  if (p.stdout_eof)
    finalize_process(p);
  else
    p.finalize_at_ns = now + 500 * ms;
}

// One of the responses a POST waits for: the whole answer as JSON when it is the only thing the
// POST gets, otherwise an event on its stream, which ends after the last response.
void stdio_bridge::answer(conn& c, std::string_view response) {
  --c.waiting;
  if (c.waiting == 0 && c.can_be_json && !c.streaming) {
    reply(c, 200, {}, "application/json", response);
  } else {
    if (!c.streaming) start_stream(c, {});
    stream_event(c, response);
    if (c.waiting > 0) return;
    end_stream(c);
  }
  exchange_over(c);
  process_input(c);
}

// A line the child wrote on stdout: a response goes to the POST that carried its request;
// anything else to the POST it most likely belongs to, else the session's GET stream.
void stdio_bridge::deliver(process& p, std::string_view line) {
  if (!scanner_.scan(line)) {
    log_line("mcpgate: stdio: " + p.label + " pid " + std::to_string(p.pid) +
             " wrote something that is not JSON-RPC on stdout; dropped\n");
    stats_.messages_dropped.add();
    return;
  }
  const stdio_message& first = scanner_.messages()[0];
  if (first.what == stdio_message::kind::response) {
    auto it = p.routes.find(first.id_key);
    if (it == p.routes.end()) {
      stats_.messages_dropped.add();
      return;
    }
    route r = std::move(it->second);
    p.routes.erase(it);
    conn* c = conn_at(r.conn_slot, r.conn_gen);
    if (!c || c->closing || c->exchange != r.exchange || c->mode != conn::mode::post) {
      stats_.messages_dropped.add();
      return;
    }
    std::string restored;
    if (config_->shared) {
      restored.assign(line.substr(0, first.id_offset));
      restored += r.client_id;
      restored.append(line.substr(first.id_offset + first.id_length));
      line = restored;
    }
    answer(*c, line);
    return;
  }

  // A notification or a server request.
  conn* target = nullptr;
  if (!first.progress_token.empty()) {
    for (auto [slot, gen] : p.posts) {
      conn* c = conn_at(slot, gen);
      if (!c) continue;
      for (const std::string& t : c->progress_tokens)
        if (t == first.progress_token) target = c;
      if (target) break;
    }
  }
  if (!target) {
    for (auto [slot, gen] : p.posts) {
      if ((target = conn_at(slot, gen))) break;
    }
  }
  if (target) {
    target->can_be_json = false;
    if (!target->streaming) start_stream(*target, {});
    stream_event(*target, line);
    return;
  }
  // No POST open: the GET stream, or the queue for one. In shared mode a notification concerns
  // every session; a server request goes to one of them.
  bool request = first.what == stdio_message::kind::request;
  for (auto [slot, gen] : p.sessions) {
    session* s = session_at(slot, gen);
    if (!s) continue;
    send_to_session(*s, line);
    if (request) return;
  }
}

void stdio_bridge::send_to_session(session& s, std::string_view line) {
  if (conn* g = conn_at(s.get_slot, s.get_gen); g && g->mode == conn::mode::get) {
    stream_event(*g, line);
    return;
  }
  if (s.queued.size() + line.size() + 1 > config_->max_queued_bytes) {
    stats_.messages_dropped.add();
    return;
  }
  s.queued.append(line);
  s.queued += '\n';
}

void stdio_bridge::child_log(process& p, std::string_view line) {
  std::string entry = "mcpgate: stdio: " + p.label + " pid " + std::to_string(p.pid) + ": ";
  entry.append(line);
  entry += '\n';
  log_line(entry);
}

void stdio_bridge::log_line(std::string_view line) {
  if (log_.pending_bytes() + line.size() > max_log_backlog) return;  // stderr is stuck
  log_.append(line);
  flush_log();
}

void stdio_bridge::flush_log() {
  if (log_in_flight_ || !reactor_) return;
  std::string_view next = log_.next();
  if (next.empty()) return;
  io_uring_sqe* s = reactor_->io().sqe();
  io_uring_prep_write(s, STDERR_FILENO, next.data(), static_cast<unsigned>(next.size()),
                      current_position);
  io_uring_sqe_set_data64(s, core::encode({op_log, 0, 0}));
  log_in_flight_ = true;
}

void stdio_bridge::stop_process(process& p) {
  if (p.stop_requested || p.reaped) {
    p.stop_requested = true;
    return;
  }
  p.stop_requested = true;
  core::signal_child(p.child, SIGTERM);
  p.kill_at_ns = reactor_->now_ns() + config_->kill_grace_ms * ms;
}

// The child has exited and its stdout is drained (or given up on): whatever it still owed gets
// an error naming how it ended, its sessions close, and its descriptors go once no operation
// on them is in flight.
void stdio_bridge::finalize_process(process& p) {
  if (p.finalized || !p.reaped || !p.stdout_eof) return;
  p.finalized = true;
  std::string why = "stdio upstream " + core::describe_exit(p.status) +
                    (p.stop_requested ? " (stopped by the gateway)" : "") + " before answering";
  std::string error_line;
  for (auto& [key, r] : p.routes) {
    conn* c = conn_at(r.conn_slot, r.conn_gen);
    if (!c || c->closing || c->exchange != r.exchange || c->mode != conn::mode::post) continue;
    error_line.clear();
    append_jsonrpc_error(error_line, r.client_id, -32036, why);
    answer(*c, error_line);
  }
  p.routes.clear();
  for (auto [slot, gen] : std::vector(p.sessions)) {
    if (session* s = session_at(slot, gen)) end_session(*s, false);
  }
  p.sessions.clear();
  if (config_->shared && shared_process_ == p.slot) shared_process_ = no_slot;
  // stdout too: when finalize_at_ns gave up on it, a stray the child left holds it open and
  // its read would otherwise stay pending, and the process slot and its pipes with it, forever.
  for (int fd : {p.child.stdin_fd, p.child.stdout_fd, p.child.stderr_fd}) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, core::encode({op_ignore, 0, 0}));
  }
}

void stdio_bridge::maybe_release_process(process& p) {
  if (!p.live || !p.finalized || p.pending > 0) return;
  for (int* fd : {&p.child.stdin_fd, &p.child.stdout_fd, &p.child.stderr_fd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  p.live = false;
  if (!p.identity.empty()) {
    auto held = identity_processes_.find(p.identity);
    if (held != identity_processes_.end() && --held->second == 0) identity_processes_.erase(held);
    p.identity.clear();
  }
  p.to_child.clear();
  p.out_line.clear();
  p.err_line.clear();
  free_processes_.push_back(p.slot);
  --live_processes_;
}

void stdio_bridge::end_session(session& s, bool stop_child) {
  if (!s.open) return;
  s.open = false;
  session_ids_.erase(s.id);
  stats_.sessions_open.sub();
  if (conn* g = conn_at(s.get_slot, s.get_gen); g && g->mode == conn::mode::get) {
    end_stream(*g);
    exchange_over(*g);
    process_input(*g);
  }
  s.get_slot = no_slot;
  s.queued.clear();
  if (process* p = process_at(s.process_slot, s.process_gen)) {
    std::erase(p->sessions, std::pair{s.slot, s.gen});
    // A shared child outlives its sessions.
    if (stop_child && !config_->shared) stop_process(*p);
  }
  free_sessions_.push_back(s.slot);
}

}  // namespace mcpgate::net
