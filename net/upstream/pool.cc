#include "net/upstream/pool.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/user_data.h"

namespace mcpgate::net {
namespace {

constexpr int64_t ms = 1'000'000;

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

upstream_pool::~upstream_pool() {
  conns_.for_each_live([](upstream_conn& u) {
    if (u.fd >= 0) ::close(u.fd);
  });
}

void upstream_pool::set_deadline(upstream_conn& u, int64_t at_ns) {
  if (u.deadline.set(at_ns)) timers_.schedule(at_ns, core::encode({op_deadline, u.slot, u.gen}));
}

upstream_conn* upstream_pool::take(uint32_t index, const upstream_target& target) {
  if (idle_.size() <= index) idle_.resize(index + 1);
  std::vector<uint32_t>& idle = idle_[index];
  while (!idle.empty()) {
    uint32_t slot = idle.back();
    idle.pop_back();
    upstream_conn* pooled = conns_.at_slot(slot);
    if (!pooled || pooled->st != upstream_conn::state::idle) continue;
    pooled->st = upstream_conn::state::busy;
    pooled->reused = true;
    stats_.upstream_reused.add();
    return pooled;
  }
  upstream_conn& u = conns_.acquire();
  u.upstream = index;
  u.st = upstream_conn::state::connecting;
  u.reused = false;
  u.pending = 0;
  u.paused = false;
  u.recv_armed = false;
  u.send_in_flight = false;
  u.deadline = {};
  u.in.clear();
  u.response_timeout_ms = target.response_timeout_ms;
  u.sse_idle_timeout_ms = target.sse_idle_timeout_ms;
  connect(u, target);
  if (u.fd < 0) {
    conns_.release(u);
    return nullptr;
  }
  return &u;
}

void upstream_pool::connect(upstream_conn& u, const upstream_target& target) {
  const endpoint& at = target.where;
  u.fd = ::socket(at.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u.fd < 0) {
    u.fd = -1;
    return;
  }
  set_nodelay(u.fd);
  stats_.upstream_connects.add();
  io_uring_sqe* s = reactor_.io().sqe();
  io_uring_prep_connect(s, u.fd, reinterpret_cast<const sockaddr*>(&at.addr), at.addr_len);
  io_uring_sqe_set_data64(s, core::encode({op_connect, u.slot, u.gen}));
  ++u.pending;
  set_deadline(u, reactor_.now_ns() + target.connect_timeout_ms * ms);
}

void upstream_pool::send(upstream_conn& u) {
  if (u.st != upstream_conn::state::busy || u.send_in_flight || u.request_sent >= u.request.size())
    return;
  io_uring_sqe* s = reactor_.io().sqe();
  io_uring_prep_send(s, u.fd, u.request.data() + u.request_sent, u.request.size() - u.request_sent,
                     MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, core::encode({op_send, u.slot, u.gen}));
  u.send_in_flight = true;
  ++u.pending;
  // A request's first send on a connection that answered the last one: nothing else is queued
  // on the socket, so it completes while it is submitted (see ring::expect_inline_completion).
  if (u.request_sent == 0) reactor_.io().expect_inline_completion();
}

void upstream_pool::arm_recv(upstream_conn& u) {
  io_uring_sqe* s = reactor_.io().sqe();
  io_uring_prep_recv_multishot(s, u.fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = buffers_.group();
  io_uring_sqe_set_data64(s, core::encode({op_recv, u.slot, u.gen}));
  u.recv_armed = true;
  ++u.pending;
}

void upstream_pool::on_completion(const io_uring_cqe& cqe) {
  core::op_tag t = core::decode(cqe.user_data);
  if (t.op == op_cancel) return;
  upstream_conn* u = conns_.find(t.slot, t.gen);
  if (!u) return;
  if (t.op == op_connect)
    on_connected(*u, cqe);
  else if (t.op == op_recv)
    on_recv(*u, cqe);
  else if (t.op == op_send)
    on_sent(*u, cqe);
  if (u->live && u->st == upstream_conn::state::closing && u->pending == 0 && u->fd >= 0)
    release(*u);
}

void upstream_pool::on_connected(upstream_conn& u, const io_uring_cqe& cqe) {
  --u.pending;
  if (u.st == upstream_conn::state::closing) return;
  if (cqe.res < 0) {
    events_->on_failed(u, -cqe.res);
    return;
  }
  u.st = upstream_conn::state::busy;
  set_deadline(u, reactor_.now_ns() + u.response_timeout_ms * ms);
  arm_recv(u);
  send(u);
}

void upstream_pool::on_sent(upstream_conn& u, const io_uring_cqe& cqe) {
  --u.pending;
  u.send_in_flight = false;
  if (u.st == upstream_conn::state::closing) return;
  if (cqe.res < 0) {
    u.write_refused = u.request_sent == 0;
    events_->on_failed(u, -cqe.res);
    return;
  }
  u.request_sent += static_cast<size_t>(cqe.res);
  send(u);
}

void upstream_pool::on_recv(upstream_conn& u, const io_uring_cqe& cqe) {
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
  } give_back{&buffers_, (cqe.flags & IORING_CQE_F_BUFFER)
                             ? static_cast<int>(cqe.flags >> IORING_CQE_BUFFER_SHIFT)
                             : -1};
  std::string_view fresh;
  if (give_back.bid >= 0 && cqe.res > 0)
    fresh = std::string_view(buffers_.buffer(static_cast<uint16_t>(give_back.bid)),
                             static_cast<size_t>(cqe.res));
  if (u.st == upstream_conn::state::closing) return;
  if (u.st == upstream_conn::state::idle) {
    // An idle pooled connection that speaks or closes is of no further use.
    close(u);
    return;
  }
  if (cqe.res > 0) {
    events_->on_bytes(u, fresh);
  } else if (cqe.res == -ECANCELED) {
    // pause() ended the recv. Still paused, resume() arms it again; resumed before the cancel
    // landed (the client drained meanwhile), it is armed again below. Either way not a failure.
    if (u.paused) return;
  } else if (cqe.res == 0) {
    events_->on_closed(u);
    return;
  } else if (cqe.res != -ENOBUFS) {
    events_->on_failed(u, -cqe.res);
    return;
  }
  if (u.live && !u.recv_armed && !u.paused && u.st != upstream_conn::state::closing &&
      u.st != upstream_conn::state::idle)
    arm_recv(u);
}

void upstream_pool::pause(upstream_conn& u) {
  if (u.paused) return;
  u.paused = true;
  if (u.recv_armed) {
    io_uring_sqe* s = reactor_.io().sqe();
    io_uring_prep_cancel64(s, core::encode({op_recv, u.slot, u.gen}), 0);
    io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
  }
}

void upstream_pool::resume(upstream_conn& u) {
  u.paused = false;
  // Paused, the body was not read because the client was slow, not the upstream.
  if (u.st == upstream_conn::state::busy && u.head_done)
    set_deadline(u, u.body_deadline_ns(reactor_.now_ns()));
  if (!u.in.empty() && u.st == upstream_conn::state::busy) events_->on_bytes(u, {});
  if (u.live && !u.recv_armed && u.st != upstream_conn::state::closing) arm_recv(u);
}

void upstream_pool::release_to_pool(upstream_conn& u, uint32_t max_idle) {
  if (idle_.size() <= u.upstream) idle_.resize(u.upstream + 1);
  std::vector<uint32_t>& idle = idle_[u.upstream];
  if (idle.size() >= max_idle) {
    close(u);
    return;
  }
  u.st = upstream_conn::state::idle;
  u.client_slot = no_slot;
  set_deadline(u, reactor_.now_ns() + idle_timeout_ms_ * ms);
  u.request.clear();
  u.in.shrink_if_above(0);
  if (u.paused) resume(u);
  idle.push_back(u.slot);
}

void upstream_pool::close(upstream_conn& u) {
  if (u.st == upstream_conn::state::closing) return;
  if (u.st == upstream_conn::state::idle && u.upstream < idle_.size())
    std::erase(idle_[u.upstream], u.slot);
  if (u.sse_counted) {
    u.sse_counted = false;
    stats_.sse_streams_open.sub();
    if (metrics_) metrics_->sse_stream_closed();
  }
  u.st = upstream_conn::state::closing;
  u.client_slot = no_slot;
  u.deadline.clear();
  if (u.fd < 0) return;
  if (u.pending > 0)
    cancel_fd(u.fd);
  else
    release(u);
}

void upstream_pool::release(upstream_conn& u) {
  ::close(u.fd);
  u.fd = -1;
  u.in.clear();
  u.in.shrink_if_above(0);
  u.request.clear();
  conns_.release(u);
}

void upstream_pool::cancel_fd(int fd) {
  io_uring_sqe* s = reactor_.io().sqe();
  io_uring_prep_cancel_fd(s, fd, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(s, core::encode({op_cancel, 0, 0}));
}

void upstream_pool::on_deadline(uint32_t slot, uint32_t gen, int64_t fired_ns, int64_t now_ns) {
  upstream_conn* u = conns_.find(slot, gen);
  if (!u || u->fd < 0) return;
  switch (u->deadline.on_fire(fired_ns, now_ns)) {
    case core::deadline_slot::outcome::stale:
      return;
    case core::deadline_slot::outcome::rearm:
      timers_.schedule(u->deadline.deadline_ns, core::encode({op_deadline, u->slot, u->gen}));
      return;
    case core::deadline_slot::outcome::expired:
      break;
  }
  if (u->st == upstream_conn::state::idle) {
    close(*u);
  } else if ((u->st == upstream_conn::state::connecting || u->st == upstream_conn::state::busy) &&
             !u->paused) {  // a paused body waits for the client, see resume()
    events_->on_failed(*u, ETIMEDOUT);
  }
}

void upstream_pool::close_idle() {
  for (std::vector<uint32_t>& idle : idle_) {
    std::vector<uint32_t> slots = idle;
    for (uint32_t slot : slots)
      if (upstream_conn* c = conns_.at_slot(slot)) close(*c);
  }
}

void upstream_pool::close_all() {
  conns_.for_each_live([&](upstream_conn& c) {
    if (c.fd >= 0) close(c);
  });
}

}  // namespace mcpgate::net
