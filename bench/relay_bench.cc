// Relaying an upstream response to a client: copying through user space (what net/proxy.cc
// does) against splice (socket -> pipe -> socket with IORING_OP_SPLICE), over loopback TCP in
// one process. A writer thread plays the upstream, a reader thread plays the client, and the
// relay loop runs on the benchmark thread with its own io_uring, set up as core/ring.cc sets up
// a shard's ring. The question it answers is in bench/RELAY.md: does splice earn its pipe per
// connection and two ops per hop?
//
// Each iteration is one message of `message` bytes that the writer sends in `write`-byte
// pieces. The writer starts message i only after the reader has received message i-1, so
// small messages measure a request/response round and large ones a stream from first byte to
// last. Time is wall time; the CPU column is the whole process (writer, reader, relay and the
// kernel's io-wq workers, which run splice), since on a 2-core machine CPU spent anywhere is
// CPU the gateway does not have.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/byte_buffer.h"
#include "core/ring.h"
#include "core/send_queue.h"
#include "core/user_data.h"

namespace {

using namespace mcpgate;

enum class relay_mode {
  copy_as_proxy,    // provided buffer -> upstream byte_buffer -> send_queue, as net/proxy.cc does
  copy_once,        // provided buffer -> send_queue: the cheapest copying relay
  splice,           // upstream socket -> pipe -> client socket, never through user space
  splice_big_pipe,  // the same with a 256 KiB pipe, to tell the pipe's size from splice itself
};

enum op : uint8_t { op_recv = 1, op_send, op_splice_in, op_splice_out };

// Gateway defaults (net/exchange/gateway_config.h), so the copy path touches as much buffer memory
// as a shard does.
constexpr unsigned recv_buffers = 1024;
constexpr unsigned recv_buffer_size = 16384;
constexpr unsigned ring_entries = 256;

// Raising a pipe above the default 64 KiB needs no privilege up to fs.pipe-max-size (1 MiB).
constexpr int big_pipe_bytes = 256 << 10;

// A relay that makes no progress for this long is broken; the benchmark reports it instead of
// hanging.
constexpr long stall_seconds = 10;

void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

// Two TCP connections on 127.0.0.1: upstream (writer <-> relay) and client (relay <-> reader).
// All four ends have TCP_NODELAY, as the gateway sets on its own sockets, so a 1 KiB reply is
// not held back by Nagle waiting for a delayed ACK.
struct wire {
  int upstream_far = -1;   // the writer thread's socket: plays the MCP server
  int upstream_near = -1;  // the relay's upstream connection
  int client_near = -1;    // the relay's client connection
  int client_far = -1;     // the reader thread's socket: plays the MCP client
  std::string error;

  wire() = default;
  wire(const wire&) = delete;
  wire& operator=(const wire&) = delete;
  ~wire() {
    for (int fd : {upstream_far, upstream_near, client_near, client_far})
      if (fd >= 0) ::close(fd);
  }

  // Unblocks the writer and reader threads whatever they are waiting on.
  void shut_all() {
    for (int fd : {upstream_far, upstream_near, client_near, client_far})
      if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  }
};

std::unique_ptr<wire> open_wire() {
  auto w = std::make_unique<wire>();
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) {
    w->error = errno_text("socket", errno);
    return w;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(listener, 4) < 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    w->error = errno_text("bind/listen on 127.0.0.1:0", errno);
    ::close(listener);
    return w;
  }
  auto connect_one = [&](int& active, int& passive) {
    active = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (active < 0) return errno_text("socket", errno);
    if (::connect(active, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
      return errno_text("connect", errno);
    passive = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (passive < 0) return errno_text("accept", errno);
    set_nodelay(active);
    set_nodelay(passive);
    return std::string();
  };
  // The relay connects to the upstream and accepts the client, as the gateway does.
  w->error = connect_one(w->upstream_near, w->upstream_far);
  if (w->error.empty()) w->error = connect_one(w->client_far, w->client_near);
  ::close(listener);
  return w;
}

// What the writer sends: `messages` messages of `message_bytes`, each in `write_bytes` pieces.
struct traffic {
  size_t message_bytes;
  size_t write_bytes;
  int64_t messages;
};

// Message content: a byte pattern that differs between neighbouring offsets, so a relay that
// drops, repeats or reorders a piece is caught by the reader's check.
std::vector<char> make_message(size_t n) {
  std::vector<char> m(n);
  for (size_t i = 0; i < n; ++i) m[i] = static_cast<char>((i * 131 + (i >> 9)) & 0xff);
  return m;
}

// The handoff between reader and writer: the number of messages the reader has received in
// full. The writer waits for it to reach i before it sends message i; abandon() releases it.
class delivery {
 public:
  void wait_for(int64_t n) {
    int64_t seen = count_.load(std::memory_order_acquire);
    while (seen < n) {
      count_.wait(seen, std::memory_order_acquire);
      seen = count_.load(std::memory_order_acquire);
    }
  }
  void delivered(int64_t n) {
    count_.store(n, std::memory_order_release);
    count_.notify_one();
  }
  void abandon() { delivered(std::numeric_limits<int64_t>::max()); }

 private:
  std::atomic<int64_t> count_{0};
};

void run_writer(int fd, traffic t, const std::vector<char>& message, delivery& d) {
  for (int64_t i = 0; i < t.messages; ++i) {
    d.wait_for(i);
    for (size_t off = 0; off < t.message_bytes;) {
      size_t piece = std::min(t.write_bytes, t.message_bytes - off);
      ssize_t n = ::send(fd, message.data() + off, piece, MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        return;  // the benchmark is tearing down after an error
      }
      off += static_cast<size_t>(n);
    }
  }
}

// Returns an empty string, or what went wrong. Checks every byte of the first and the last
// message (checking all of them would put a memcmp per byte into the time measured).
std::string run_reader(int fd, traffic t, const std::vector<char>& message, delivery& d) {
  std::vector<char> buf(1 << 16);
  for (int64_t i = 0; i < t.messages; ++i) {
    bool check = i == 0 || i == t.messages - 1;
    for (size_t off = 0; off < t.message_bytes;) {
      size_t want = std::min(buf.size(), t.message_bytes - off);
      ssize_t n = ::recv(fd, buf.data(), want, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        d.abandon();
        return n == 0 ? "client side saw EOF before the last message"
                      : errno_text("client side recv", errno);
      }
      if (check && std::memcmp(buf.data(), message.data() + off, static_cast<size_t>(n)) != 0) {
        d.abandon();
        return "message " + std::to_string(i) + " arrived corrupted near offset " +
               std::to_string(off);
      }
      off += static_cast<size_t>(n);
    }
    d.delivered(i + 1);
  }
  return {};
}

// The relay loop for one upstream/client connection pair. It keeps the gateway's discipline:
// one multishot recv (copy) or one splice per direction (splice), at most one send in flight,
// one submit-and-wait per loop turn, the CQ advanced once per batch.
class relay {
 public:
  relay(core::ring& r, relay_mode mode, int upstream_fd, int client_fd)
      : ring_(r), mode_(mode), upstream_fd_(upstream_fd), client_fd_(client_fd) {}
  ~relay() {
    if (pipe_[0] >= 0) ::close(pipe_[0]);
    if (pipe_[1] >= 0) ::close(pipe_[1]);
  }
  relay(const relay&) = delete;
  relay& operator=(const relay&) = delete;

  // Called once, before run_until(). Returns an empty string or the setup failure.
  std::string start() {
    if (mode_ == relay_mode::splice || mode_ == relay_mode::splice_big_pipe) {
      if (::pipe2(pipe_, O_CLOEXEC) < 0) return errno_text("pipe2", errno);
      if (mode_ == relay_mode::splice_big_pipe &&
          ::fcntl(pipe_[1], F_SETPIPE_SZ, big_pipe_bytes) < 0)
        return errno_text("F_SETPIPE_SZ", errno);
      int cap = ::fcntl(pipe_[1], F_GETPIPE_SZ);
      if (cap <= 0) return errno_text("F_GETPIPE_SZ", errno);
      pipe_capacity_ = static_cast<size_t>(cap);
      arm_splice_in();
    } else {
      try {
        buffers_ = std::make_unique<core::buffer_ring>(ring_, 0, recv_buffers, recv_buffer_size);
      } catch (const std::exception& e) {
        return e.what();
      }
      arm_recv();
    }
    return {};
  }

  // Runs the loop until `target` bytes in total have been handed to the client socket.
  std::string run_until(uint64_t target) {
    while (relayed_ < target) {
      if (!error_.empty()) return error_;
      if (upstream_eof_) return "upstream closed before the message was relayed";
      if (std::string e = turn(); !e.empty()) return e;
    }
    return error_;
  }

  // After the writer has shut its side: runs until the upstream EOF has been seen and no
  // operation is in flight, so the ring can be torn down with nothing pending in io-wq.
  std::string run_until_quiet() {
    while (!(upstream_eof_ && in_flight_ == 0)) {
      if (!error_.empty()) return error_;
      if (std::string e = turn(); !e.empty()) return e;
    }
    return error_;
  }

 private:
  std::string turn() {
    __kernel_timespec stall{stall_seconds, 0};
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_submit_and_wait_timeout(ring_.raw(), &cqe, 1, &stall, nullptr);
    if (rc == -ETIME) return "relay made no progress for " + std::to_string(stall_seconds) + " s";
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
      return errno_text("io_uring_submit_and_wait_timeout", -rc);
    ring_.drain([this](const io_uring_cqe& c) { on_completion(c); });
    if (buffers_) buffers_->publish();  // buffers go back to the kernel once per batch
    return {};
  }

  void on_completion(const io_uring_cqe& cqe) {
    switch (core::decode(cqe.user_data).op) {
      case op_recv:
        on_recv(cqe);
        break;
      case op_send:
        on_sent(cqe);
        break;
      case op_splice_in:
        on_spliced_in(cqe);
        break;
      case op_splice_out:
        on_spliced_out(cqe);
        break;
      default:
        error_ = "completion with an unknown tag";
    }
  }

  // --- copy --------------------------------------------------------------------------------

  void arm_recv() {
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_recv_multishot(s, upstream_fd_, nullptr, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = buffers_->group();
    io_uring_sqe_set_data64(s, core::encode({op_recv, 0, 0}));
    recv_armed_ = true;
    ++in_flight_;
  }

  void on_recv(const io_uring_cqe& cqe) {
    if (!(cqe.flags & IORING_CQE_F_MORE)) {
      recv_armed_ = false;
      --in_flight_;
    }
    if (cqe.flags & IORING_CQE_F_BUFFER) {
      uint16_t bid = static_cast<uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
      if (cqe.res > 0) {
        std::string_view bytes(buffers_->buffer(bid), static_cast<size_t>(cqe.res));
        if (mode_ == relay_mode::copy_as_proxy) {
          // net/proxy.cc appends to the upstream connection's input (where the response head
          // is parsed), then copies the body bytes on into the client's send queue.
          upstream_in_.append(bytes);
          out_.append(upstream_in_.view());
          upstream_in_.consume(upstream_in_.size());
        } else {
          out_.append(bytes);
        }
      }
      buffers_->give_back(bid);
    }
    if (cqe.res == 0) {
      upstream_eof_ = true;
    } else if (cqe.res < 0 && cqe.res != -ENOBUFS) {
      error_ = errno_text("upstream recv", -cqe.res);
      return;
    }
    // ENOBUFS: the buffer ring ran dry; the buffers given back above let the re-arm proceed.
    if (!recv_armed_ && !upstream_eof_) arm_recv();
    flush();
  }

  void flush() {
    std::string_view next = out_.next();
    if (next.empty()) return;
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_send(s, client_fd_, next.data(), next.size(), MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, core::encode({op_send, 0, 0}));
    ++in_flight_;
  }

  void on_sent(const io_uring_cqe& cqe) {
    --in_flight_;
    if (cqe.res < 0) {
      out_.sent(0);
      error_ = errno_text("client send", -cqe.res);
      return;
    }
    out_.sent(static_cast<size_t>(cqe.res));  // a short send leaves the rest for next()
    relayed_ += static_cast<uint64_t>(cqe.res);
    flush();
  }

  // --- splice ------------------------------------------------------------------------------

  // io_uring never issues a splice inline (its prep marks every splice REQ_F_FORCE_ASYNC), so
  // each one runs in an io-wq worker thread, and this one sleeps there until the upstream
  // sends: each open stream holds a kernel thread. Asks for as much as the pipe has room for, since
  // a splice into a full pipe would also sleep until the other splice drains it.
  void arm_splice_in() {
    if (splice_in_armed_ || upstream_eof_ || in_pipe_ >= pipe_capacity_) return;
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_splice(s, upstream_fd_, -1, pipe_[1], -1,
                         static_cast<unsigned>(pipe_capacity_ - in_pipe_), 0);
    io_uring_sqe_set_data64(s, core::encode({op_splice_in, 0, 0}));
    splice_in_armed_ = true;
    ++in_flight_;
  }

  // Asks for exactly what is in the pipe, so the splice never waits on an empty pipe.
  void arm_splice_out() {
    if (splice_out_armed_ || in_pipe_ == 0) return;
    io_uring_sqe* s = ring_.sqe();
    io_uring_prep_splice(s, pipe_[0], -1, client_fd_, -1, static_cast<unsigned>(in_pipe_), 0);
    io_uring_sqe_set_data64(s, core::encode({op_splice_out, 0, 0}));
    splice_out_armed_ = true;
    ++in_flight_;
  }

  void on_spliced_in(const io_uring_cqe& cqe) {
    --in_flight_;
    splice_in_armed_ = false;
    if (cqe.res < 0) {
      error_ = errno_text("splice upstream -> pipe", -cqe.res);
      return;
    }
    if (cqe.res == 0) upstream_eof_ = true;
    in_pipe_ += static_cast<size_t>(cqe.res);
    arm_splice_out();
    arm_splice_in();
  }

  void on_spliced_out(const io_uring_cqe& cqe) {
    --in_flight_;
    splice_out_armed_ = false;
    if (cqe.res <= 0) {
      error_ = cqe.res == 0 ? std::string("splice pipe -> client moved nothing")
                            : errno_text("splice pipe -> client", -cqe.res);
      return;
    }
    in_pipe_ -= static_cast<size_t>(cqe.res);
    relayed_ += static_cast<uint64_t>(cqe.res);
    arm_splice_out();
    arm_splice_in();
  }

  core::ring& ring_;
  relay_mode mode_;
  int upstream_fd_;
  int client_fd_;
  uint64_t relayed_ = 0;
  int in_flight_ = 0;  // submissions not yet completed; a multishot recv counts once
  bool upstream_eof_ = false;
  std::string error_;

  std::unique_ptr<core::buffer_ring> buffers_;
  core::byte_buffer upstream_in_;
  core::send_queue out_;
  bool recv_armed_ = false;

  int pipe_[2] = {-1, -1};
  size_t pipe_capacity_ = 0;
  size_t in_pipe_ = 0;
  bool splice_in_armed_ = false;
  bool splice_out_armed_ = false;
};

void run_relay(benchmark::State& state, relay_mode mode) {
  // A send or splice into a socket the reader has shut must fail with EPIPE, not kill us.
  ::signal(SIGPIPE, SIG_IGN);
  const traffic t{static_cast<size_t>(state.range(0)), static_cast<size_t>(state.range(1)),
                  static_cast<int64_t>(state.max_iterations)};
  const std::vector<char> message = make_message(t.message_bytes);

  std::unique_ptr<core::ring> ring;
  try {
    ring = std::make_unique<core::ring>(ring_entries);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::unique_ptr<wire> w = open_wire();
  if (!w->error.empty()) {
    state.SkipWithError(w->error.c_str());
    return;
  }
  // Declared after the ring: the relay's buffer ring must be unregistered before the ring goes.
  relay r(*ring, mode, w->upstream_near, w->client_near);
  if (std::string e = r.start(); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }

  delivery d;
  std::string reader_error;
  std::thread writer([&] { run_writer(w->upstream_far, t, message, d); });
  std::thread reader([&] { reader_error = run_reader(w->client_far, t, message, d); });

  std::string error;
  uint64_t target = 0;
  for (auto _ : state) {
    target += t.message_bytes;
    error = r.run_until(target);
    if (!error.empty()) break;
  }

  if (error.empty()) {
    // Everything was handed to the client socket; the reader returns once it has read it all.
    writer.join();
    reader.join();
    ::shutdown(w->upstream_far, SHUT_WR);
    error = r.run_until_quiet();
    if (error.empty()) error = reader_error;
  } else {
    d.abandon();
    w->shut_all();
    writer.join();
    reader.join();
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(t.message_bytes));
  state.SetItemsProcessed(state.iterations());
}

void relay_copy_as_proxy(benchmark::State& state) {
  run_relay(state, relay_mode::copy_as_proxy);
}
void relay_copy_once(benchmark::State& state) {
  run_relay(state, relay_mode::copy_once);
}
void relay_splice(benchmark::State& state) {
  run_relay(state, relay_mode::splice);
}
void relay_splice_big_pipe(benchmark::State& state) {
  run_relay(state, relay_mode::splice_big_pipe);
}

// Request/response JSON replies (one write per message), then streams written in SSE-sized
// events and in large writes.
void cases(benchmark::internal::Benchmark* b) {
  b->ArgNames({"message", "write"});
  b->Args({1024, 1024})->Args({4096, 4096});
  for (int64_t total : {int64_t{64} << 10, int64_t{1} << 20})
    for (int64_t piece : {int64_t{200}, int64_t{16} << 10}) b->Args({total, piece});
  b->UseRealTime()->MeasureProcessCPUTime();
}

BENCHMARK(relay_copy_as_proxy)->Apply(cases);
BENCHMARK(relay_copy_once)->Apply(cases);
BENCHMARK(relay_splice)->Apply(cases);
BENCHMARK(relay_splice_big_pipe)->Apply(cases);

}  // namespace
