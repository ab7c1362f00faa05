#include "bench/mcpbench/load_generator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "bench/mcpbench/load_schedule.h"
#include "core/ring.h"
#include "policy/json_writer.h"

namespace mcpgate::bench {
namespace {

// user_data: the operation in the high 32 bits, the connection's index in the low 32. Each
// connection has at most one operation in flight (connect, send, recv or its pacing timer), so
// a connection is closed only from its own completion and no generation tag is needed.
enum class op : std::uint32_t { connect = 1, send, recv, timer };
static_assert(sizeof(std::uint64_t) == sizeof(io_uring_sqe{}.user_data));
constexpr std::uint64_t pack(op o, std::uint32_t conn) {
  return (std::uint64_t{static_cast<std::uint32_t>(o)} << 32) | conn;
}

constexpr std::size_t recv_buffer_bytes = 16 * 1024;
constexpr auto retry_delay = std::chrono::milliseconds(100);

enum class conn_state { connecting, initializing, notifying, waiting, calling, retry_wait, done };

struct connection {
  int fd = -1;
  conn_state state = conn_state::connecting;
  std::string out;
  std::size_t out_offset = 0;
  std::string expected_id;
  send_ticket ticket;
  load_clock::time_point sent;
  bool counted = false;
  response_reader reader;
  std::string session_id;
  __kernel_timespec timer{};
  std::unique_ptr<char[]> buffer = std::make_unique<char[]>(recv_buffer_bytes);
};

__kernel_timespec to_timespec(load_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return {.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
}

class worker {
 public:
  worker(const load_config& config, unsigned connections, double rate, load_clock::time_point start,
         load_progress& progress)
      : config_(config),
        conns_(connections),
        schedule_(rate > 0 ? load_schedule::open_loop(rate, start) : load_schedule::closed_loop()),
        progress_(progress),
        start_(start),
        measure_start_(start + config.warmup),
        end_(start + config.warmup + config.duration) {
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(config.port);
    if (inet_pton(AF_INET, config.host.c_str(), &addr_.sin_addr) != 1)
      throw std::runtime_error("mcpbench: not an IPv4 address: " + config.host);
    host_header_ = config.host + ":" + std::to_string(config.port);
  }

  load_result run() {
    // The ring is created here, on the worker's own thread (SINGLE_ISSUER binds it).
    core::ring ring(4096);
    ring_ = &ring;
    for (std::uint32_t i = 0; i < conns_.size(); ++i) start_connect(i);
    auto give_up = end_ + config_.grace;
    while (active_ > 0 && load_clock::now() < give_up) {
      // Wake at least every 100 ms to notice the deadline when nothing completes.
      __kernel_timespec wait{.tv_sec = 0, .tv_nsec = 100'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(ring.raw(), &cqe, 1, &wait, nullptr);
      ring.drain([&](const io_uring_cqe& c) { on_completion(c); });
    }
    for (auto& c : conns_) {
      if (c.state == conn_state::calling && c.counted) count_error(error_kind::timeout);
      if (c.fd >= 0) ::close(c.fd);
      c.fd = -1;
    }
    result_.measured = end_ - measure_start_;
    result_.offered = schedule_.is_open_loop()
                          ? schedule_.due_by(end_ - std::chrono::nanoseconds(1)) -
                                schedule_.due_by(measure_start_ - std::chrono::nanoseconds(1))
                          : 0;
    ring_ = nullptr;
    return std::move(result_);
  }

 private:
  // A connection is finished once, and its fd (if any) is already closed or closed here.
  void finish(connection& c) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    c.state = conn_state::done;
    --active_;
  }

  void start_connect(std::uint32_t i) {
    auto& c = conns_[i];
    c.state = conn_state::connecting;
    c.reader.reset();
    c.session_id.clear();
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      count_error(error_kind::connect);
      finish(c);
      return;
    }
    // Requests are small and latency is what we measure: no Nagle delay.
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* sqe = ring_->sqe();
    io_uring_prep_connect(sqe, c.fd, reinterpret_cast<const sockaddr*>(&addr_), sizeof addr_);
    io_uring_sqe_set_data64(sqe, pack(op::connect, i));
  }

  void reconnect(std::uint32_t i) {
    auto& c = conns_[i];
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    if (load_clock::now() >= end_) {
      finish(c);
      return;
    }
    ++result_.reconnects;
    start_connect(i);
  }

  void retry_later(std::uint32_t i) {
    auto& c = conns_[i];
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    if (load_clock::now() + retry_delay >= end_) {
      finish(c);
      return;
    }
    c.state = conn_state::retry_wait;
    arm_timer(i, load_clock::now() + retry_delay);
  }

  void arm_timer(std::uint32_t i, load_clock::time_point at) {
    auto& c = conns_[i];
    c.timer = to_timespec(at);
    auto* sqe = ring_->sqe();
    // Absolute on CLOCK_MONOTONIC, the clock steady_clock reads, so pacing does not drift.
    io_uring_prep_timeout(sqe, &c.timer, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, pack(op::timer, i));
  }

  void send_out(std::uint32_t i) {
    auto& c = conns_[i];
    auto* sqe = ring_->sqe();
    io_uring_prep_send(sqe, c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, pack(op::send, i));
  }

  void start_recv(std::uint32_t i) {
    auto& c = conns_[i];
    auto* sqe = ring_->sqe();
    io_uring_prep_recv(sqe, c.fd, c.buffer.get(), recv_buffer_bytes, 0);
    io_uring_sqe_set_data64(sqe, pack(op::recv, i));
  }

  void build_request(connection& c, std::string_view body, bool with_version) {
    c.out.clear();
    c.out_offset = 0;
    c.out.append("POST ").append(config_.path).append(" HTTP/1.1\r\nHost: ").append(host_header_);
    c.out.append(
        "\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n");
    if (with_version)
      c.out.append("MCP-Protocol-Version: ").append(config_.protocol_version).append("\r\n");
    if (!c.session_id.empty()) c.out.append("Mcp-Session-Id: ").append(c.session_id).append("\r\n");
    if (!config_.api_key.empty())
      c.out.append("Authorization: Bearer ").append(config_.api_key).append("\r\n");
    c.out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    c.out.append(body);
  }

  void send_initialize(std::uint32_t i) {
    auto& c = conns_[i];
    std::string body =
        R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":)";
    policy::append_json_string(body, config_.protocol_version);
    body += R"(,"capabilities":{},"clientInfo":{"name":"mcpbench","version":"1"}}})";
    build_request(c, body, false);
    c.expected_id = "0";
    c.state = conn_state::initializing;
    send_out(i);
  }

  void send_initialized(std::uint32_t i) {
    auto& c = conns_[i];
    build_request(c, R"({"jsonrpc":"2.0","method":"notifications/initialized"})", true);
    c.state = conn_state::notifying;
    send_out(i);
  }

  // The connection is free: take the next ticket, then send now or wait for its due time.
  void next_call(std::uint32_t i) {
    auto& c = conns_[i];
    auto now = load_clock::now();
    if (now >= end_) {
      finish(c);
      return;
    }
    if (!schedule_.is_open_loop() && now < start_) {
      // Closed loop: connections whose session is ready wait for the common start, so that
      // the first calls, which meet a cold target, fall in the run like in an open-loop one.
      c.state = conn_state::waiting;
      arm_timer(i, start_);
      return;
    }
    c.ticket = schedule_.next(now);
    if (c.ticket.intended >= end_) {
      finish(c);
      return;
    }
    if (c.ticket.intended > now) {
      c.state = conn_state::waiting;
      arm_timer(i, c.ticket.intended);
      return;
    }
    send_call(i);
  }

  void send_call(std::uint32_t i) {
    auto& c = conns_[i];
    std::string_view tool = config_.tools[next_tool_++ % config_.tools.size()];
    deny_credit_ += config_.deny_share;
    if (deny_credit_ >= 1.0) {
      // Spread evenly rather than at random, so short runs hit the asked share exactly.
      deny_credit_ -= 1.0;
      tool = config_.deny_tool;
    }
    std::uint64_t id = c.ticket.sequence + 1;
    build_request(c, tools_call_body(id, tool, config_.argument_bytes), true);
    c.expected_id = config_.check_ids ? std::to_string(id) : std::string();
    c.state = conn_state::calling;
    c.sent = load_clock::now();
    c.counted = c.ticket.intended >= measure_start_;
    c.reader.reset();
    send_out(i);
  }

  void count_error(error_kind kind) {
    ++result_.errors[static_cast<std::size_t>(kind)];
    progress_.errors.fetch_add(1, std::memory_order_relaxed);
  }

  // A call's exchange failed: count it when it is measured, then start over on a new
  // connection. Setup failures end the connection: a server that refuses sessions would
  // otherwise be hammered with initialize requests.
  void exchange_failed(std::uint32_t i, error_kind kind) {
    auto& c = conns_[i];
    if (c.state == conn_state::calling) {
      if (c.counted) count_error(kind);
      reconnect(i);
      return;
    }
    count_error(kind);
    if (kind == error_kind::connect || kind == error_kind::closed || kind == error_kind::recv ||
        kind == error_kind::send) {
      retry_later(i);
      return;
    }
    finish(c);
  }

  void on_completion(const io_uring_cqe& cqe) {
    auto o = static_cast<op>(cqe.user_data >> 32);
    auto i = static_cast<std::uint32_t>(cqe.user_data & 0xffffffffu);
    auto& c = conns_[i];
    switch (o) {
      case op::connect:
        if (cqe.res < 0) return exchange_failed(i, error_kind::connect);
        if (config_.open_session) return send_initialize(i);
        return next_call(i);
      case op::timer:
        // -ETIME is a timeout that expired, the normal outcome.
        if (c.state == conn_state::retry_wait) return start_connect(i);
        if (!schedule_.is_open_loop()) return next_call(i);
        return send_call(i);
      case op::send:
        if (cqe.res < 0) return exchange_failed(i, error_kind::send);
        c.out_offset += static_cast<std::size_t>(cqe.res);
        // A short send is not an error: send the rest.
        if (c.out_offset < c.out.size()) return send_out(i);
        c.reader.reset();
        return start_recv(i);
      case op::recv:
        if (cqe.res < 0) return exchange_failed(i, error_kind::recv);
        if (cqe.res == 0) return exchange_failed(i, error_kind::closed);
        return on_bytes(i, std::string_view(c.buffer.get(), static_cast<std::size_t>(cqe.res)));
    }
  }

  void on_bytes(std::uint32_t i, std::string_view bytes) {
    auto& c = conns_[i];
    auto s = c.reader.feed(bytes);
    if (s.state == response_reader::status::error)
      return exchange_failed(i, error_kind::malformed_http);
    if (s.state == response_reader::status::incomplete) return start_recv(i);
    // One request at a time: bytes past the reply were never asked for.
    if (s.consumed != bytes.size()) return exchange_failed(i, error_kind::malformed_http);
    auto now = load_clock::now();
    switch (c.state) {
      case conn_state::initializing: {
        auto outcome = classifier_.classify(c.reader, c.expected_id);
        if (outcome.kind != reply_kind::ok) return exchange_failed(i, outcome.error);
        c.session_id = c.reader.session_id();
        if (!c.reader.keep_alive()) return exchange_failed(i, error_kind::closed);
        return send_initialized(i);
      }
      case conn_state::notifying:
        if (c.reader.status_code() != 202 && c.reader.status_code() != 200)
          return exchange_failed(i, error_kind::http_status);
        ++result_.sessions;
        if (!c.reader.keep_alive()) return reconnect(i);
        return next_call(i);
      case conn_state::calling: {
        auto outcome = classifier_.classify(c.reader, c.expected_id);
        if (c.counted) {
          result_.latency.record(
              static_cast<std::uint64_t>(schedule_.latency(c.ticket, c.sent, now).count()));
          progress_.replies.fetch_add(1, std::memory_order_relaxed);
          if (outcome.kind == reply_kind::ok) ++result_.ok;
          if (outcome.kind == reply_kind::denied) ++result_.denied;
          if (outcome.kind == reply_kind::error) count_error(outcome.error);
        }
        if (!c.reader.keep_alive()) return reconnect(i);
        return next_call(i);
      }
      default:
        return exchange_failed(i, error_kind::malformed_http);
    }
  }

  const load_config& config_;
  std::vector<connection> conns_;
  load_schedule schedule_;
  load_progress& progress_;
  load_clock::time_point start_;
  load_clock::time_point measure_start_;
  load_clock::time_point end_;
  sockaddr_in addr_{};
  std::string host_header_;
  core::ring* ring_ = nullptr;
  reply_classifier classifier_;
  load_result result_;
  // Connections not yet finished; the run ends when none is left or at the grace deadline.
  std::size_t active_ = conns_.size();
  std::size_t next_tool_ = 0;
  double deny_credit_ = 0;
};

}  // namespace

std::uint64_t load_result::requests() const {
  return ok + denied + error_total();
}

std::uint64_t load_result::error_total() const {
  std::uint64_t n = 0;
  for (auto e : errors) n += e;
  return n;
}

double load_result::throughput() const {
  double seconds = std::chrono::duration<double>(measured).count();
  return seconds > 0 ? static_cast<double>(requests()) / seconds : 0.0;
}

std::string tools_call_body(std::uint64_t id, std::string_view tool, std::size_t argument_bytes) {
  std::string body = R"({"jsonrpc":"2.0","id":)";
  body += std::to_string(id);
  body += R"(,"method":"tools/call","params":{"name":)";
  policy::append_json_string(body, tool);
  body += R"(,"arguments":{"path":"/tmp/a.txt")";
  if (argument_bytes > 0) {
    body += R"(,"filler":")";
    body.append(argument_bytes, 'x');
    body += '"';
  }
  body += "}}}";
  return body;
}

load_result run_load(const load_config& config, load_progress& progress) {
  if (config.threads == 0 || config.connections < config.threads)
    throw std::runtime_error("mcpbench: need at least one connection per thread");
  if (config.tools.empty()) throw std::runtime_error("mcpbench: no tools to call");
  // Sessions open during the first moments; the timeline starts a little later so that an
  // open-loop run does not begin behind schedule.
  auto start = load_clock::now() + std::chrono::milliseconds(config.open_session ? 200 : 20);
  std::vector<load_result> results(config.threads);
  std::vector<std::string> failures(config.threads);
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < config.threads; ++t) {
    unsigned conns =
        config.connections / config.threads + (t < config.connections % config.threads);
    double rate = config.rate / config.threads;
    threads.emplace_back([&, t, conns, rate] {
      try {
        worker w(config, conns, rate, start, progress);
        results[t] = w.run();
      } catch (const std::exception& e) {
        failures[t] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& f : failures)
    if (!f.empty()) throw std::runtime_error(f);
  load_result total = std::move(results[0]);
  for (unsigned t = 1; t < config.threads; ++t) {
    total.latency.merge(results[t].latency);
    total.ok += results[t].ok;
    total.denied += results[t].denied;
    for (std::size_t k = 0; k < error_kind_count; ++k) total.errors[k] += results[t].errors[k];
    total.reconnects += results[t].reconnects;
    total.sessions += results[t].sessions;
    total.offered += results[t].offered;
  }
  return total;
}

}  // namespace mcpgate::bench
