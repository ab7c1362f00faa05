#include "net/upstream/stdio/bridge.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "core/random.h"
#include "core/user_data.h"
#include "net/upstream/stdio/bridge_parts.h"

namespace mcpgate::net {

using namespace stdio_detail;

stdio_bridge::bound_socket stdio_bridge::bind_socket() {
  bound_socket b = bind_internal_socket("stdio", true);
  if (b.fd < 0) b.error = "stdio bridge: " + b.error;
  return b;
}

stdio_bridge::stdio_bridge(std::shared_ptr<const stdio_upstream_config> config, int listen_fd,
                           stdio_bridge_stats& stats)
    : config_(std::move(config)), listen_fd_(listen_fd), stats_(stats), scanner_() {}

stdio_bridge::~stdio_bridge() {
  processes_.for_each_live([](process& p) {
    // The loop ended with children still running (a drain that timed out): do not leave them.
    if (!p.reaped) {
      core::signal_child(p.child, SIGKILL);
      while (!core::reap_child(p.child)) ::poll(nullptr, 0, 1);
    }
    for (int fd : {p.child.stdin_fd, p.child.stdout_fd, p.child.stderr_fd, p.child.pidfd})
      if (fd >= 0) ::close(fd);
  });
  conns_.for_each_live([](conn& c) {
    if (c.fd >= 0) ::close(c.fd);
  });
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void stdio_bridge::on_start(core::reactor& r) {
  reactor_ = &r;
  arm_accept();
}

bool stdio_bridge::finished() const {
  return draining_ && processes_.live() == 0 && conns_.live() == 0 && !accept_armed_ &&
         !log_in_flight_;
}

void stdio_bridge::on_message(const core::message& m) {
  if (m.kind != core::message_drain || draining_) return;
  draining_ = true;
  if (accept_armed_) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_accept, 0, 0}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_ignore, 0, 0}));
  }
  conns_.for_each_live([&](conn& c) { close_conn(c); });
  sessions_.for_each_live([&](session& s) { end_session(s, true); });
  processes_.for_each_live([&](process& p) { stop_process(p); });
}

// Completions

stdio_bridge::conn* stdio_bridge::conn_at(uint32_t slot, uint32_t gen) {
  return conns_.find(slot, gen);
}

stdio_bridge::process* stdio_bridge::process_at(uint32_t slot, uint32_t gen) {
  return processes_.find(slot, gen);
}

stdio_bridge::session* stdio_bridge::session_at(uint32_t slot, uint32_t gen) {
  return sessions_.find(slot, gen);
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
          conn& c = conns_.acquire();
          c.fd = cqe.res;
          c.pending = 0;
          c.closing = false;
          c.recv_armed = false;
          c.in.clear();
          c.out.clear();
          c.mode = conn::mode::idle;
          c.streaming = false;
          arm_recv(c);
        }
      }
      if (!accept_armed_ && !draining_) arm_accept();
      return;
    }
    case op_recv:
    case op_send: {
      conn* c = conns_.find(t.slot, t.gen);
      if (!c) return;
      --c->pending;
      if (t.op == op_recv)
        on_recv(*c, cqe);
      else
        on_sent(*c, cqe);
      maybe_release_conn(*c);
      return;
    }
    case op_read_out:
    case op_read_err:
    case op_write_in:
    case op_exit: {
      process* p = processes_.find(t.slot, t.gen);
      if (!p) return;
      --p->pending;
      if (t.op == op_write_in)
        on_written(*p, cqe);
      else if (t.op == op_exit)
        on_exit_ready(*p);
      else
        on_read(*p, t.op == op_read_err, cqe);
      maybe_release_process(*p);
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
  if (draining_ && processes_.live() == 0 && conns_.live() == 0 && log_in_flight_ &&
      !log_cancelled_) {
    io_uring_sqe* s = reactor_->io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_log, 0, 0}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_ignore, 0, 0}));
    log_cancelled_ = true;
  }
  processes_.for_each_live([&](process& p) {
    if (p.stop_at_ns && !p.reaped && !p.stop_requested && now >= p.stop_at_ns) {
      // The child closed its stdout but runs on: it can no longer answer anything.
      log_line("mcpgate: stdio: " + p.label + " pid " + std::to_string(p.pid) +
               " closed its stdout; stopping it\n");
      stop_process(p);
    }
    if (p.kill_at_ns && !p.reaped && now >= p.kill_at_ns) {
      core::signal_child(p.child, SIGKILL);
      p.kill_at_ns = 0;
    }
    if (p.finalize_at_ns && !p.finalized && now >= p.finalize_at_ns) {
      p.stdout_eof = true;
      finalize_process(p);
      maybe_release_process(p);
    }
  });
  if (config_->session_idle_timeout_ms > 0) {
    int64_t idle_before = now - config_->session_idle_timeout_ms * ms;
    sessions_.for_each_live([&](session& s) {
      if (s.busy > 0 || s.last_ns >= idle_before) return;
      log_line("mcpgate: stdio: session " + s.id.substr(0, 8) + " idle for " +
               std::to_string(config_->session_idle_timeout_ms) + " ms, ending it\n");
      end_session(s, true);
    });
  }
}

stdio_bridge::session* stdio_bridge::find_session(std::string_view id) {
  auto it = session_ids_.find(std::string(id));
  if (it == session_ids_.end()) return nullptr;
  return sessions_.at_slot(it->second);
}
void stdio_bridge::end_session(session& s, bool stop_child) {
  if (!s.live) return;
  session_ids_.erase(s.id);
  stats_.sessions_open.sub();
  conn* stream = conn_at(s.get_slot, s.get_gen);
  if (stream && stream->mode != conn::mode::get) stream = nullptr;
  if (process* p = process_at(s.process_slot, s.process_gen)) {
    std::erase(p->sessions, std::pair{s.slot, s.gen});
    // A shared child outlives its sessions.
    if (stop_child && !config_->shared) stop_process(*p);
  }
  s.get_slot = no_slot;
  s.queued.clear();
  sessions_.release(s);
  // Last, once the session is gone: the stream's connection may take its next request now.
  if (stream) {
    end_stream(*stream);
    exchange_over(*stream);
    process_input(*stream);
  }
}

}  // namespace mcpgate::net
