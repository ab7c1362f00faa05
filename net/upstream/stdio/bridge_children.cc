// The stdio bridge's children: started per session (or one shared), fed on stdin, read line by
// line on stdout and stderr, watched for exit on a pidfd, and stopped with a grace period.

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <string>

#include "core/user_data.h"
#include "net/http/writer.h"
#include "net/upstream/stdio/bridge_parts.h"

namespace mcpgate::net {

using namespace stdio_detail;

stdio_bridge::process* stdio_bridge::start_process(std::string_view identity, std::string& error,
                                                   int& http_status, int& code) {
  if (config_->shared) {
    if (process* p = processes_.at_slot(shared_process_);
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
  if (processes_.live() >= config_->max_processes) {
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
    log_line("mcpgate: stdio: " + r.error, core::log_level::warn);
    return nullptr;
  }
  process& p = processes_.acquire();
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
  stats_.processes_running.add();
  stats_.spawned.add();
  if (config_->shared) shared_process_ = p.slot;
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

void stdio_bridge::log_line(std::string_view message, core::log_level level) {
  std::string line;
  core::append_log_line(line, level, message);
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
  if (!p.identity.empty()) {
    auto held = identity_processes_.find(p.identity);
    if (held != identity_processes_.end() && --held->second == 0) identity_processes_.erase(held);
    p.identity.clear();
  }
  p.to_child.clear();
  p.out_line.clear();
  p.err_line.clear();
  processes_.release(p);
}

}  // namespace mcpgate::net
