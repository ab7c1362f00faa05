#include "bench/mcpbench/load_generator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace mcpgate::bench {
namespace {

using namespace std::chrono_literals;

// A scripted MCP upstream on a loopback port: one connection at a time, blocking I/O, each
// request answered by `answer(sequence, id)` (sequence counts tools/call requests from 0).
class scripted_upstream {
 public:
  using answer_fn = std::function<std::string(int sequence, const std::string& id)>;

  explicit scripted_upstream(answer_fn answer) : answer_(std::move(answer)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~scripted_upstream() {
    // shutdown() wakes the blocking accept() and recv() so the thread ends.
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    int fd = conn_fd_.load();
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    thread_.join();
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }

  static std::string json_reply(const std::string& id) {
    std::string body = R"({"jsonrpc":"2.0","id":)" + id + R"(,"result":{"content":[]}})";
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }

 private:
  void serve() {
    int calls = 0;
    while (!stopping_) {
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      conn_fd_ = fd;
      std::string in;
      char buf[4096];
      while (!stopping_) {
        auto end = in.find("\r\n\r\n");
        std::size_t length = 0;
        if (end != std::string::npos) {
          auto cl = in.find("Content-Length: ");
          length = std::stoul(in.substr(cl + 16));
        }
        if (end == std::string::npos || in.size() < end + 4 + length) {
          ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, static_cast<std::size_t>(n));
          continue;
        }
        std::string body = in.substr(end + 4, length);
        in.erase(0, end + 4 + length);
        std::string reply;
        auto id_at = body.find("\"id\":");
        if (id_at == std::string::npos) {
          reply = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        } else {
          std::string id = body.substr(id_at + 5, body.find(',', id_at) - id_at - 5);
          reply =
              body.find("tools/call") == std::string::npos ? json_reply(id) : answer_(calls++, id);
        }
        ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      }
      conn_fd_ = -1;
      ::close(fd);
    }
  }

  answer_fn answer_;
  int listen_fd_ = -1;
  std::atomic<int> conn_fd_{-1};
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

load_config one_connection(std::uint16_t port, std::chrono::milliseconds duration) {
  load_config c;
  c.port = port;
  c.connections = 1;
  c.duration = duration;
  c.grace = 2000ms;
  return c;
}

// The upstream holds the first tools/call for 300 ms (the stall under test), then answers at
// once. At 200 calls/s, about 60 calls fall due during the stall.
std::string stall_first(int sequence, const std::string& id) {
  if (sequence == 0) std::this_thread::sleep_for(300ms);
  return scripted_upstream::json_reply(id);
}

TEST(RunLoad, OpenLoopCountsAStalledUpstreamsDelayInTheCallsDueDuringIt) {
  scripted_upstream upstream(stall_first);
  auto config = one_connection(upstream.port(), 1000ms);
  config.rate = 200;
  load_progress progress;
  auto result = run_load(config, progress);
  EXPECT_EQ(result.error_total(), 0u);
  EXPECT_GE(result.ok, 190u);
  EXPECT_EQ(result.sessions, 1u);
  // Call i (i < 60) was due at 5 i ms and answered after the stall, near 300 ms: it records
  // about 300 - 5 i ms. So a fifth of the calls took 100 ms or more.
  EXPECT_GE(result.latency.max(), 300'000'000u);
  EXPECT_GE(result.latency.percentile(80), 90'000'000u);
  EXPECT_EQ(result.offered, 200u);
}

TEST(RunLoad, ClosedLoopRecordsTheSameStallOnceOnly) {
  scripted_upstream upstream(stall_first);
  auto config = one_connection(upstream.port(), 1000ms);
  load_progress progress;
  auto result = run_load(config, progress);
  EXPECT_EQ(result.error_total(), 0u);
  EXPECT_GE(result.latency.max(), 300'000'000u);
  // Every other call was answered at once.
  EXPECT_LT(result.latency.percentile(50), 50'000'000u);
}

TEST(RunLoad, ReadsRepliesSentAsEventStreamsAndCountsDenials) {
  // Every call answered on an SSE stream, a progress notification first; every other call
  // denied by policy as a tool result with isError.
  scripted_upstream upstream([](int sequence, const std::string& id) {
    std::string events =
        "event: message\ndata: "
        R"({"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}})"
        "\n\nevent: message\ndata: "
        R"({"jsonrpc":"2.0","id":)" +
        id + (sequence % 2 ? R"(,"result":{"content":[],"isError":true}})" : R"(,"result":{}})") +
        "\n\n";
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", events.size());
    return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: "
           "chunked\r\n\r\n" +
           std::string(size) + events + "\r\n0\r\n\r\n";
  });
  auto config = one_connection(upstream.port(), 300ms);
  load_progress progress;
  auto result = run_load(config, progress);
  EXPECT_EQ(result.error_total(), 0u);
  EXPECT_GT(result.ok, 10u);
  EXPECT_GE(result.denied + 1, result.ok);
  EXPECT_LE(result.denied, result.ok);
  EXPECT_EQ(progress.replies.load(), result.requests());
}

TEST(RunLoad, CountsARepliesForAnotherRequestAsIdMismatch) {
  scripted_upstream upstream(
      [](int, const std::string&) { return scripted_upstream::json_reply("999999"); });
  auto config = one_connection(upstream.port(), 200ms);
  load_progress progress;
  auto result = run_load(config, progress);
  EXPECT_EQ(result.ok, 0u);
  EXPECT_GT(result.errors[static_cast<std::size_t>(error_kind::id_mismatch)], 0u);
  EXPECT_EQ(result.error_total(), result.errors[static_cast<std::size_t>(error_kind::id_mismatch)]);
}

TEST(RunLoad, CountsARefusedConnectionAsAConnectError) {
  // Bind a port, then close it, so nothing listens there.
  std::uint16_t port;
  {
    scripted_upstream gone([](int, const std::string&) { return std::string(); });
    port = gone.port();
  }
  auto config = one_connection(port, 200ms);
  load_progress progress;
  auto result = run_load(config, progress);
  EXPECT_EQ(result.requests(), result.error_total());
  EXPECT_GT(result.errors[static_cast<std::size_t>(error_kind::connect)], 0u);
}

}  // namespace
}  // namespace mcpgate::bench
