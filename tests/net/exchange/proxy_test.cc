// The proxy in-process: real shards on real sockets over loopback, in front of a scripted
// upstream whose behaviour each test chooses (answer, refuse, reset, stream).

#include "net/exchange/proxy.h"

#include "net/exchange/policy_gate.h"
#include "policy/access_config.h"
#include "policy/document.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace mcpgate::net {
namespace {

using namespace std::chrono_literals;
constexpr auto deadline = 10s;

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads into buf until pred(buf) holds, the peer closes, or the deadline passes.
bool read_until(int fd, std::string& buf, const std::function<bool(const std::string&)>& pred) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!pred(buf)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char tmp[65536];
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) return pred(buf);
    buf.append(tmp, static_cast<size_t>(n));
  }
  return true;
}

// A parsed HTTP message as a test sees it (Content-Length or chunked bodies, decoded).
struct message {
  std::string head;
  std::string body;
  size_t total = 0;  // bytes of the whole message on the wire
  bool complete = false;
};

size_t header_value_size(const std::string& head, const std::string& lower_name, std::string& out) {
  std::string lower = head;
  for (char& ch : lower) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  size_t at = lower.find("\r\n" + lower_name + ":");
  if (at == std::string::npos) return 0;
  size_t start = at + 3 + lower_name.size();
  size_t end = head.find("\r\n", start);
  out = head.substr(start, end - start);
  while (!out.empty() && out.front() == ' ') out.erase(0, 1);
  return 1;
}

message parse_message(const std::string& buf, bool bodyless = false) {
  message m;
  size_t head_end = buf.find("\r\n\r\n");
  if (head_end == std::string::npos) return m;
  m.head = buf.substr(0, head_end + 2);
  size_t pos = head_end + 4;
  std::string value;
  if (bodyless) {
    m.total = pos;
    m.complete = true;
  } else if (header_value_size(m.head, "content-length", value)) {
    size_t n = std::stoul(value);
    if (buf.size() < pos + n) return m;
    m.body = buf.substr(pos, n);
    m.total = pos + n;
    m.complete = true;
  } else if (header_value_size(m.head, "transfer-encoding", value)) {
    for (;;) {
      size_t line_end = buf.find("\r\n", pos);
      if (line_end == std::string::npos) return m;
      size_t size = std::stoul(buf.substr(pos, line_end - pos), nullptr, 16);
      pos = line_end + 2;
      if (size == 0) {
        if (buf.size() < pos + 2) return m;
        m.total = pos + 2;
        m.complete = true;
        return m;
      }
      if (buf.size() < pos + size + 2) return m;
      m.body += buf.substr(pos, size);
      pos += size + 2;
    }
  } else {
    m.total = pos;
    m.complete = true;
  }
  return m;
}

// An upstream that accepts connections and hands every request to a script.
class scripted_upstream {
 public:
  // The script gets the connection, the request, and how many requests came before on any
  // connection; it writes what it likes and returns false to close the connection.
  using script = std::function<bool(int fd, const message& request, int index)>;

  explicit scripted_upstream(script s) : script_(std::move(s)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(fd_, 64);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~scripted_upstream() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    std::lock_guard lock(mu_);
    for (auto& t : workers_) t.join();
  }

  uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  std::vector<std::string> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  void accept_loop() {
    while (!stop_) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      ++connections_;
      std::lock_guard lock(mu_);
      workers_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    std::string buf;
    for (;;) {
      if (!read_until(c, buf, [](const std::string& b) { return parse_message(b).complete; }))
        break;
      message m = parse_message(buf);
      buf.erase(0, m.total);
      int index = requests_++;
      {
        std::lock_guard lock(mu_);
        received_.push_back(m.head + m.body);
      }
      if (!script_(c, m, index)) break;
    }
    close(c);
  }

  script script_;
  int fd_;
  uint16_t port_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<std::string> received_;
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
};

bool answer_json(int fd, const message& request, int) {
  // Echo the request body's id back in a JSON-RPC result.
  std::string body =
      R"({"jsonrpc":"2.0","id":1,"result":{"echo":)" + std::to_string(request.body.size()) + "}}";
  send_all(fd,
           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
           "Keep-Alive: timeout=5\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\n\r\n" + body);
  return true;
}

// The gateway in-process, with `shards` shards in front of 127.0.0.1:upstream_port.
class gateway {
 public:
  gateway(uint16_t upstream_port, unsigned shards = 1, std::function<void(proxy_config&)> tune = {},
          std::shared_ptr<const gate_config> gate = std::make_shared<const gate_config>())
      : group_(shards, 256, 5'000'000) {
    auto cfg = std::make_shared<proxy_config>();
    cfg->listen = parse_host_port("127.0.0.1:0", "listen");
    cfg->upstream =
        parse_http_url("http://127.0.0.1:" + std::to_string(upstream_port) + "/mcp", "upstream");
    cfg->path = "/mcp";
    cfg->allowed_hosts = {"gateway.test", "x"};  // the Hosts requests here name
    cfg->recv_buffers = 64;
    cfg->drain_timeout_ms = 2000;
    if (tune) tune(*cfg);
    session_key_ = cfg->session_seal_key;
    std::vector<int> fds = listen_group(cfg->listen, shards, 128);
    port_ = bound_port(fds[0]);
    reinterpret_cast<sockaddr_in&>(cfg->listen.addr).sin_port = htons(port_);
    for (unsigned i = 0; i < shards; ++i) stats_.push_back(std::make_unique<shard_stats>());
    metrics_ = std::make_unique<metrics_registry>(shards, nullptr);
    std::string error = group_.start([&](unsigned i) {
      return std::make_unique<proxy_shard>(cfg, gate, fds[i], *stats_[i], metrics_.get());
    });
    EXPECT_EQ(error, "");
  }
  ~gateway() {
    drain();
    group_.join();
  }
  // What SIGTERM does: every shard stops accepting and finishes what is in flight.
  void drain() {
    core::message m;
    m.kind = static_cast<uint32_t>(shard_message::drain);
    group_.broadcast(m);
  }
  void join() { group_.join(); }
  uint16_t port() const { return port_; }
  const shard_stats& stats(unsigned i = 0) const { return *stats_[i]; }
  std::string metrics_text() const { return metrics_->render(); }
  // The Mcp-Session-Id a client of `identity` holds for the upstream's session `upstream_id`.
  std::string session_token(std::string_view upstream_id, std::string_view identity = {}) const {
    std::string token;
    session_sealer(session_key_).seal(upstream_id, identity, token);
    return token;
  }

 private:
  core::shard_group group_;
  session_key session_key_{};
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<shard_stats>> stats_;
  std::unique_ptr<metrics_registry> metrics_;  // the shards have ended (~gateway) before it goes
};

std::string post(std::string_view body, std::string_view extra_headers = {}) {
  return "POST /mcp HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\n"
         "Accept: application/json, text/event-stream\r\n" +
         std::string(extra_headers) + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

constexpr std::string_view call_body =
    R"({"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{"x":1}}})";

message round_trip(int fd, std::string_view request) {
  send_all(fd, request);
  std::string buf;
  read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; });
  return parse_message(buf);
}

TEST(Proxy, ForwardsBodyBytesUnchangedAndRewritesHostAndHopByHopHeaders) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  ASSERT_GE(fd, 0);
  message m = round_trip(fd, post(call_body,
                                  "Connection: keep-alive, X-Private\r\nX-Private: 1\r\n"
                                  "Mcp-Session-Id: " +
                                      gw.session_token("abc") + "\r\nKeep-Alive: timeout=9\r\n"));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(m.head.find("Keep-Alive"), std::string::npos) << m.head;
  ASSERT_EQ(up.received().size(), 1u);
  std::string seen = up.received()[0];
  EXPECT_NE(seen.find("POST /mcp HTTP/1.1\r\n"), std::string::npos);
  EXPECT_NE(seen.find("Host: 127.0.0.1:" + std::to_string(up.port()) + "\r\n"), std::string::npos);
  EXPECT_NE(seen.find("Mcp-Session-Id: abc\r\n"), std::string::npos);
  EXPECT_EQ(seen.find("X-Private"), std::string::npos) << "named in Connection: hop-by-hop";
  EXPECT_EQ(seen.find("Keep-Alive"), std::string::npos);
  EXPECT_EQ(seen.find("gateway.test"), std::string::npos);
  EXPECT_EQ(seen.substr(seen.size() - call_body.size()), call_body);
  close(fd);
}

TEST(Proxy, ReusesOneUpstreamConnectionAcrossRequestsAndClients) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  for (int client = 0; client < 3; ++client) {
    int fd = connect_to(gw.port());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(round_trip(fd, post(call_body)).complete);
    close(fd);
  }
  EXPECT_EQ(up.requests(), 15);
  EXPECT_EQ(up.connections(), 1);
  EXPECT_EQ(gw.stats().upstream_reused.get(), 14u);
}

TEST(Proxy, AnswersPipelinedRequestsInOrder) {
  int n = 0;
  scripted_upstream up([&n](int fd, const message& req, int) {
    std::string body = req.body;  // echo
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body);
    return ++n > 0;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  std::string all;
  for (int i = 1; i <= 3; ++i)
    all += post(R"({"jsonrpc":"2.0","id":)" + std::to_string(i) + R"(,"method":"ping"})");
  send_all(fd, all);
  std::string buf;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
    message m = parse_message(buf);
    EXPECT_NE(m.body.find("\"id\":" + std::to_string(i)), std::string::npos) << m.body;
    buf.erase(0, m.total);
  }
  close(fd);
}

TEST(Proxy, RefusedUpstreamGivesJsonRpcErrorWithTheRequestIdAndKeepsServing) {
  uint16_t dead_port;
  {
    scripted_upstream gone(answer_json);
    dead_port = gone.port();
  }  // closed: connections to it are refused
  gateway gw(dead_port);
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 502");
  EXPECT_NE(m.body.find(R"("id":41)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"("code":-32030)"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("connection refused"), std::string::npos) << m.body;
  // The same connection still works for the next request.
  message again = round_trip(fd, post(call_body));
  EXPECT_EQ(again.head.substr(0, 12), "HTTP/1.1 502");
  close(fd);
}

TEST(Proxy, UpstreamResetBeforeResponseGivesJsonRpcErrorThenRecovers) {
  scripted_upstream up([](int fd, const message& req, int index) {
    if (index == 0) {
      linger l{1, 0};  // close with RST
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      return false;
    }
    return answer_json(fd, req, index);
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 502");
  EXPECT_NE(m.body.find(R"("id":41)"), std::string::npos);
  message ok = round_trip(fd, post(call_body));
  EXPECT_EQ(ok.head.substr(0, 15), "HTTP/1.1 200 OK");
  close(fd);
}

TEST(Proxy, UpstreamResetMidStreamEndsTheClientStreamCleanly) {
  scripted_upstream up([](int fd, const message&, int) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    std::string event =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", event.size());
    send_all(fd, size + event + "\r\n");
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    return false;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  send_all(fd, post(call_body));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message m = parse_message(buf);
  EXPECT_NE(m.head.find("text/event-stream"), std::string::npos);
  EXPECT_NE(m.body.find("notifications/progress"), std::string::npos);
  // The stream ended with its terminating chunk, then the gateway closed the connection.
  std::string rest = buf.substr(m.total);
  read_until(fd, rest, [](const std::string&) { return false; });  // returns at EOF
  EXPECT_EQ(rest, "");
  close(fd);
  // And the gateway serves the next client.
  int fd2 = connect_to(gw.port());
  send_all(fd2, post(call_body));
  std::string buf2;
  ASSERT_TRUE(
      read_until(fd2, buf2, [](const std::string& b) { return parse_message(b).complete; }));
  close(fd2);
}

TEST(Proxy, UpstreamStallingAfterTheResponseHeadIsCutOffAtTheResponseTimeoutThenRecovers) {
  std::atomic<bool> upstream_saw_close{false};
  scripted_upstream up([&upstream_saw_close](int fd, const message& request, int index) {
    if (index > 0) return answer_json(fd, request, index);
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
             "{\"jsonrpc\"");
    // Nothing more: the gateway has to give up on the body and close this connection.
    pollfd p{fd, POLLIN, 0};
    char byte;
    upstream_saw_close = poll(&p, 1, 10'000) == 1 && recv(fd, &byte, 1, 0) <= 0;
    return false;
  });
  gateway gw(up.port(), 1, [](proxy_config& c) { c.upstream_response_timeout_ms = 200; });
  int fd = connect_to(gw.port());
  auto start = std::chrono::steady_clock::now();
  send_all(fd, post(call_body));
  std::string buf;
  read_until(fd, buf, [](const std::string&) { return false; });  // returns at EOF
  auto waited = std::chrono::steady_clock::now() - start;
  close(fd);
  // The client got what was relayed, then a closed connection well before read_until's deadline.
  EXPECT_EQ(buf.substr(0, 15), "HTTP/1.1 200 OK") << buf;
  EXPECT_TRUE(buf.ends_with("\r\n\r\n{\"jsonrpc\"")) << buf;
  EXPECT_LT(waited, 5s);
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!upstream_saw_close && std::chrono::steady_clock::now() < end) std::this_thread::yield();
  EXPECT_TRUE(upstream_saw_close);
  EXPECT_NE(gw.metrics_text().find(R"(mcpgate_upstream_errors_total{kind="timeout"} 1)"),
            std::string::npos)
      << gw.metrics_text();
  int fd2 = connect_to(gw.port());
  EXPECT_EQ(round_trip(fd2, post(call_body)).head.substr(0, 12), "HTTP/1.1 200");
  close(fd2);
}

TEST(Proxy, RelaysEachSseEventBeforeTheStreamEnds) {
  std::atomic<bool> release{false};
  scripted_upstream up([&release](int fd, const message&, int) {
    send_all(
        fd,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string event = "data: first\n\n";
    send_all(fd, "d\r\n" + event + "\r\n");
    auto end = std::chrono::steady_clock::now() + deadline;
    while (!release && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    send_all(fd, "e\r\ndata: second\n\n\r\n0\r\n\r\n");
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  send_all(fd, post(call_body));
  std::string buf;
  // The first event arrives while the upstream still holds the stream open.
  ASSERT_TRUE(read_until(
      fd, buf, [](const std::string& b) { return b.find("data: first") != std::string::npos; }));
  EXPECT_EQ(buf.find("data: second"), std::string::npos);
  release = true;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  EXPECT_EQ(parse_message(buf).body, "data: first\n\ndata: second\n\n");
  close(fd);
}

TEST(Proxy, FiltersOnlyTheToolsListResponseOfAStreamAndPassesEveryOtherEventAsItCame) {
  // A 2025-11-25 server's reply: a priming event (an id and empty data), a comment, a retry
  // field, a notification, a server request, then the response.
  const std::string stream =
      "id: prime-1\ndata: \n\n: keep-alive\n\nretry: 3000\n\n"
      "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
      "\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n"
      "data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"roots/list\"}\n\n"
      "id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"tools\":[{\"name\":\"a\"},"
      "{\"name\":\"secret\"}]}}\n\n";
  scripted_upstream up([&stream](int fd, const message&, int) {
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", stream.size());
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n" +
                 std::string(size) + stream + "\r\n0\r\n\r\n");
    return true;
  });
  policy::counter_store counters;
  auto doc = std::make_shared<const policy::document>(
      policy::parse_document(R"({"version":"1","hide":["secret"]})", "hide.json"));
  auto gate = std::make_shared<const policy_gate_config>(policy::make_access_config(doc, counters));
  gateway gw(up.port(), 1, {}, gate);
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(R"({"jsonrpc":"2.0","id":5,"method":"tools/list"})"));
  ASSERT_TRUE(m.complete) << m.head;
  EXPECT_EQ(m.body,
            "id: prime-1\ndata: \n\n: keep-alive\n\nretry: 3000\n\n"
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
            "\"params\":{\"level\":\"info\",\"data\":\"x\"}}\n\n"
            "data: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"method\":\"roots/list\"}\n\n"
            "id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"tools\":[{\"name\":\"a\"}]}}"
            "\n\n");
  close(fd);
  // The stream has ended: the gauge is back at 0.
  EXPECT_NE(gw.metrics_text().find("\nmcpgate_open_sse_streams 0\n"), std::string::npos)
      << gw.metrics_text();
}

TEST(Proxy, AStreamThatFailsOrLosesItsClientLeavesTheOpenStreamsGauge) {
  // The first stream breaks off mid-way (the upstream resets), the second loses its client.
  scripted_upstream up([](int fd, const message&, int index) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\n\r\n");
    if (index == 0) {
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      return false;
    }
    std::string ignored;
    read_until(fd, ignored, [](const std::string&) { return false; });  // until the gateway closes
    return false;
  });
  gateway gw(up.port());
  auto gauge = [&gw] {
    std::string text = gw.metrics_text();
    std::string_view needle = "\nmcpgate_open_sse_streams ";
    size_t at = text.find(needle);
    if (at == std::string::npos) return std::string("?");
    size_t from = at + needle.size();
    return text.substr(from, text.find('\n', from) - from);
  };
  for (int i = 0; i < 2; ++i) {
    int fd = connect_to(gw.port());
    send_all(fd, post(call_body));
    std::string buf;
    ASSERT_TRUE(read_until(
        fd, buf, [](const std::string& b) { return b.find("data: 1") != std::string::npos; }));
    close(fd);
  }
  auto end = std::chrono::steady_clock::now() + deadline;
  while (gauge() != "0" && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(gauge(), "0") << gw.metrics_text();
}

TEST(Proxy, RelaysAChunkedStreamLongerThanTheRequestBodyLimitWhole) {
  // 6 MiB of events, over max_body (4 MiB): a stream is relayed however long it runs.
  const std::string event = "data: " + std::string(64 * 1024 - 8, 'x') + "\n\n";
  constexpr int events = 96;
  scripted_upstream up([&event](int fd, const message&, int) {
    send_all(fd,
             "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
             "Transfer-Encoding: chunked\r\n\r\n");
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", event.size());
    for (int i = 0; i < events; ++i) send_all(fd, size + event + "\r\n");
    send_all(fd, "0\r\n\r\n");
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete) << m.head;
  EXPECT_EQ(m.body.size(), event.size() * events);
  close(fd);
}

TEST(Proxy, AClientReadingSlowlyPausesTheUpstreamAndStillGetsTheWholeStream) {
  // 8 MiB sent at once: the gateway stops reading the upstream while more than
  // relay_high_water waits for the client, and reads on as the client catches up.
  const std::string event = "data: " + std::string(64 * 1024 - 8, 'y') + "\n\n";
  constexpr int events = 128;
  scripted_upstream up([&event](int fd, const message&, int) {
    std::string all =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", event.size());
    for (int i = 0; i < events; ++i) all += size + event + "\r\n";
    all += "0\r\n\r\n";
    send_all(fd, all);
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  int small = 16 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  send_all(fd, post(call_body));
  std::string buf;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!parse_message(buf).complete && std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 1000) <= 0) continue;
    char tmp[4096];  // a little at a time
    ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
  }
  message m = parse_message(buf);
  ASSERT_TRUE(m.complete) << buf.size() << " bytes before the stream ended";
  EXPECT_EQ(m.body.size(), event.size() * events);
  close(fd);
}

TEST(Proxy, RelaysAResponseThatArrivesOneByteAtATimeAfterAnInterim100) {
  scripted_upstream up([](int fd, const message&, int) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string body = R"({"jsonrpc":"2.0","id":41,"result":{}})";
    std::string response =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(body.size()) + "\r\n\r\n" + body;
    for (char ch : response) send_all(fd, std::string_view(&ch, 1));
    return true;
  });
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body));
  ASSERT_TRUE(m.complete);
  EXPECT_EQ(m.head.substr(0, 15), "HTTP/1.1 200 OK")
      << "the interim response is the gateway's to absorb";
  EXPECT_EQ(m.body, R"({"jsonrpc":"2.0","id":41,"result":{}})");
  // The connection stays usable: the next exchange works on it.
  EXPECT_TRUE(round_trip(fd, post(call_body)).complete);
  close(fd);
}

TEST(Proxy, RejectsDuplicateSessionHeadersBeforeForwarding) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body, "Mcp-Session-Id: a\r\nMcp-Session-Id: b\r\n"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("duplicate mcp-session-id header"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, RejectsContentLengthWithTransferEncodingAndCloses) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  send_all(fd,
           "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
               post(call_body));
  std::string buf;
  read_until(fd, buf, [](const std::string&) { return false; });  // until the gateway closes
  message m = parse_message(buf);
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.head.find("Connection: close"), std::string::npos);
  EXPECT_EQ(buf.find("HTTP/1.1", 1), std::string::npos)
      << "the smuggled request must not be answered";
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, AnswersInvalidJsonWithParseErrorAndNeverForwards) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(R"({"jsonrpc":"2.0","id":1,"method":"ping"} trailing)"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32700"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, DecodesAChunkedRequestBodyAndForwardsItWithContentLength) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  std::string body(call_body);
  std::string req =
      "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Accept: application/json, text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  char size[16];
  snprintf(size, sizeof size, "%zx\r\n", body.size() - 10);
  req += size + body.substr(0, body.size() - 10) + "\r\na\r\n" + body.substr(body.size() - 10) +
         "\r\n0\r\n\r\n";
  // One byte at a time: the parser must cope with every split.
  for (char ch : req) send_all(fd, std::string_view(&ch, 1));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  EXPECT_EQ(parse_message(buf).head.substr(0, 15), "HTTP/1.1 200 OK");
  ASSERT_EQ(up.received().size(), 1u);
  std::string seen = up.received()[0];
  EXPECT_NE(seen.find("Content-Length: " + std::to_string(body.size()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(seen.find("Transfer-Encoding"), std::string::npos);
  EXPECT_EQ(seen.substr(seen.size() - body.size()), body);
  close(fd);
}

TEST(Proxy, ServesOtherPathsWith404AndOtherMethodsWith405) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 404");
  message put = round_trip(fd, "PUT /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(put.head.substr(0, 12), "HTTP/1.1 405");
  EXPECT_NE(put.head.find("Allow: GET, POST, DELETE"), std::string::npos);
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(Proxy, AnswersConnectionsOverTheLimitWith503AndKeepsAccepting) {
  scripted_upstream up(answer_json);
  gateway gw(up.port(), 1, [](proxy_config& c) { c.max_connections = 2; });
  int a = connect_to(gw.port());
  int b = connect_to(gw.port());
  ASSERT_TRUE(round_trip(a, post(call_body)).complete);
  ASSERT_TRUE(round_trip(b, post(call_body)).complete);
  int c = connect_to(gw.port());
  std::string buf;
  read_until(c, buf, [](const std::string&) { return false; });
  EXPECT_EQ(buf.substr(0, 12), "HTTP/1.1 503");
  close(c);
  close(a);
  // Once a slot frees, new clients are served again.
  std::string later;
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    int d = connect_to(gw.port());
    message m = round_trip(d, post(call_body));
    close(d);
    later = m.head.substr(0, 12);
    if (later == "HTTP/1.1 200") break;
  }
  EXPECT_EQ(later, "HTTP/1.1 200");
  close(b);
}

TEST(Proxy, DrainFinishesTheExchangeInFlightThenStopsAccepting) {
  std::atomic<bool> release{false};
  std::atomic<bool> arrived{false};
  scripted_upstream up([&](int fd, const message& req, int index) {
    arrived = true;
    auto end = std::chrono::steady_clock::now() + deadline;
    while (!release && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    return answer_json(fd, req, index);
  });
  gateway gw(up.port(), 2);
  int fd = connect_to(gw.port());
  send_all(fd, post(call_body));
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!arrived && std::chrono::steady_clock::now() < end) std::this_thread::yield();
  ASSERT_TRUE(arrived);
  gw.drain();
  // New clients are no longer accepted once every shard has closed its listener.
  bool refused = false;
  while (!refused && std::chrono::steady_clock::now() < end) {
    int probe = connect_to(gw.port());
    refused = probe < 0;
    if (probe >= 0) close(probe);
  }
  EXPECT_TRUE(refused);
  release = true;
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message m = parse_message(buf);
  EXPECT_EQ(m.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_NE(m.head.find("Connection: close"), std::string::npos);
  gw.join();
  close(fd);
}

TEST(Proxy, GivesTheCountBackWhenTheUpstreamAnswers5xx) {
  // One write per hour. The first attempt meets a failing upstream (503): the upstream never
  // handled it, so the count goes back and the retry is admitted; the third call is over.
  scripted_upstream up([](int fd, const message& req, int index) {
    if (index == 0) {
      send_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
      return true;
    }
    return answer_json(fd, req, index);
  });
  policy::counter_store counters;
  auto doc = std::make_shared<const policy::document>(policy::parse_document(
      R"({"write_file":{"limits":[{"counter":"w","window":"hour","max":1,"scope":"grant"}]}})",
      "test.json"));
  auto gate = std::make_shared<const policy_gate_config>(policy::make_access_config(doc, counters));
  gateway gw(up.port(), 1, {}, gate);
  int fd = connect_to(gw.port());
  std::string call = post(
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"write_file","arguments":{}}})");
  EXPECT_EQ(round_trip(fd, call).head.substr(0, 12), "HTTP/1.1 503");
  message second = round_trip(fd, call);
  EXPECT_EQ(second.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(second.body.find("POLICY DENIED"), std::string::npos) << second.body;
  message third = round_trip(fd, call);
  EXPECT_NE(third.body.find("[POLICY DENIED]"), std::string::npos) << third.body;
  EXPECT_NE(third.body.find("rate_limited"), std::string::npos) << third.body;
  EXPECT_EQ(up.requests(), 2);
  close(fd);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The seed policy's deny rule in front of the scripted upstream: what hostile clients face.
std::shared_ptr<const gate_config> deny_clear_session(policy::counter_store& counters) {
  auto doc = std::make_shared<const policy::document>(policy::parse_document(
      R"({"clear_session":{"deny_if":[{"conditions":[],"on_deny":"Blocked by default. Requires approval."}]}})",
      "seed.json"));
  return std::make_shared<const policy_gate_config>(policy::make_access_config(doc, counters));
}

TEST(Proxy, WritesOneAuditLinePerMessageWithTheDecisionTheClientSaw) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  auto gate = deny_clear_session(counters);
  std::string path = ::testing::TempDir() + "proxy_audit.log";
  std::remove(path.c_str());
  {
    gateway gw(
        up.port(), 2,
        [&](proxy_config& c) {
          c.audit.file = core::log_file::open(path).file;
          c.audit.arguments = arguments_mode::keys;
        },
        gate);
    int fd = connect_to(gw.port());
    // allowed
    EXPECT_EQ(round_trip(fd, post(call_body)).head.substr(0, 15), "HTTP/1.1 200 OK");
    // denied by policy
    message denied = round_trip(
        fd,
        post(
            R"({"jsonrpc":"2.0","id":"d1","method":"tools/call","params":{"name":"clear_session","arguments":{}}})"));
    EXPECT_NE(denied.body.find("[POLICY DENIED]"), std::string::npos);
    // invalid JSON
    EXPECT_EQ(round_trip(fd, post("{nope")).head.substr(0, 12), "HTTP/1.1 400");
    // a notification, forwarded
    round_trip(fd, post(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
    close(fd);
    std::string text = gw.metrics_text();
    EXPECT_NE(text.find(R"(mcpgate_requests_total{method="tools/call",decision="allowed"} 1)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(R"(mcpgate_requests_total{method="tools/call",decision="denied"} 1)"),
              std::string::npos);
    EXPECT_NE(text.find(R"(mcpgate_upstream_responses_total{class="2xx"} 2)"), std::string::npos);
    // And the exposition passes Prometheus' own checker.
    std::string file = ::testing::TempDir() + "proxy_metrics.txt";
    std::ofstream(file) << text;
    EXPECT_EQ(std::system(("promtool check metrics < " + file + " >/dev/null").c_str()), 0);
  }  // the gateway drains, and the audit log is flushed before the shards end
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  simdjson::dom::parser parser;
  auto field = [&](const std::string& line, const char* key) {
    simdjson::dom::element doc = parser.parse(line);
    simdjson::dom::element v = doc[key];
    return v.is_null() ? std::string("null") : simdjson::minify(v);
  };
  EXPECT_EQ(field(lines[0], "decision"), R"("allowed")");
  EXPECT_EQ(field(lines[0], "id"), "41");
  EXPECT_EQ(field(lines[0], "tool"), R"("echo")");
  EXPECT_EQ(field(lines[0], "upstream_status"), "200");
  EXPECT_EQ(field(lines[0], "identity"), R"("anonymous")");
  EXPECT_EQ(field(lines[0], "args"), R"({"keys":["x"]})");
  EXPECT_EQ(field(lines[1], "decision"), R"("denied")");
  EXPECT_EQ(field(lines[1], "id"), R"("d1")");
  EXPECT_EQ(field(lines[1], "rule"), R"("tools.clear_session.deny_if[0]")");
  EXPECT_EQ(lines[1].find("upstream_status"), std::string::npos) << "never forwarded";
  EXPECT_EQ(field(lines[2], "decision"), R"("invalid")");
  EXPECT_EQ(field(lines[3], "method"), R"("notifications/initialized")");
  EXPECT_EQ(field(lines[3], "id"), "null");
  EXPECT_EQ(up.requests(), 2);
}

TEST(Proxy, LeavesExactlyOneMatchingAuditLineForEachOf200000CallsAt64Connections) {
  constexpr int clients = 64;
  constexpr int per_client = 3125;  // 200,000 calls; every fourth is denied by the policy
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  auto gate = deny_clear_session(counters);
  std::string path = ::testing::TempDir() + "proxy_audit_load.log";
  std::remove(path.c_str());
  std::atomic<int> mismatches{0};
  {
    gateway gw(
        up.port(), 2,
        [&](proxy_config& c) {
          c.audit.file = core::log_file::open(path).file;
          c.audit.arguments = arguments_mode::hash;
          c.max_idle_upstreams = clients;
        },
        gate);
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        int fd = connect_to(gw.port());
        std::string buf;
        for (int i = 0; i < per_client; ++i) {
          int id = t * per_client + i;
          bool deny = id % 4 == 0;
          std::string body = R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                             R"(,"method":"tools/call","params":{"name":")" +
                             (deny ? "clear_session" : "echo") + R"(","arguments":{"n":1}}})";
          send_all(fd, post(body));
          if (!read_until(fd, buf,
                          [](const std::string& b) { return parse_message(b).complete; })) {
            ++mismatches;
            break;
          }
          message m = parse_message(buf);
          buf.erase(0, m.total);
          bool saw_denial = m.body.find("[POLICY DENIED]") != std::string::npos;
          if (saw_denial != deny) ++mismatches;
        }
        close(fd);
      });
    }
    for (auto& th : threads) th.join();
  }  // drain: every audit line is written before the shards end
  EXPECT_EQ(mismatches.load(), 0);
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), size_t{clients} * per_client);
  std::vector<uint8_t> seen(size_t{clients} * per_client, 0);
  simdjson::dom::parser parser;
  int wrong = 0;
  for (const std::string& line : lines) {
    simdjson::dom::element doc;
    if (parser.parse(line).get(doc)) {
      ++wrong;
      continue;
    }
    int64_t id = doc["id"].get_int64().value_unsafe();
    std::string_view decision = doc["decision"].get_string().value_unsafe();
    if (id < 0 || id >= int64_t(seen.size()) || seen[size_t(id)]++) {
      ++wrong;
      continue;
    }
    if (decision != (id % 4 == 0 ? "denied" : "allowed")) ++wrong;
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), long(seen.size()));
  EXPECT_EQ(up.requests(), clients * per_client / 4 * 3);
}

TEST(ProxyHostile, DecidesOnTheUnescapedToolNameAndMethod) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  gateway gw(up.port(), 1, {}, deny_clear_session(counters));
  int fd = connect_to(gw.port());
  message m = round_trip(
      fd,
      post(
          R"({"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"clear\u005fsession","arguments":{}}})"));
  EXPECT_NE(m.body.find("[POLICY DENIED] Blocked by default. Requires approval."),
            std::string::npos)
      << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(ProxyHostile, RejectsADuplicateNameThatAnUpstreamCouldReadDifferently) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  gateway gw(up.port(), 1, {}, deny_clear_session(counters));
  int fd = connect_to(gw.port());
  message m = round_trip(
      fd,
      post(
          R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"clear_session"}})"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32600"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(ProxyHostile, AnswersAnMcpMethodHeaderThatDisagreesWithTheBodyWith400And32020) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd, post(call_body,
                                  "MCP-Protocol-Version: 2026-07-28\r\n"
                                  "Mcp-Method: tools/list\r\n"));
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32020"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find(R"("id":41)"), std::string::npos) << m.body;
  message name = round_trip(fd, post(call_body, "Mcp-Method: tools/call\r\nMcp-Name: other\r\n"));
  EXPECT_NE(name.body.find("-32020"), std::string::npos) << name.body;
  message agree = round_trip(fd, post(call_body, "Mcp-Method: tools/call\r\nMcp-Name: echo\r\n"));
  EXPECT_EQ(agree.head.substr(0, 15), "HTTP/1.1 200 OK");
  EXPECT_EQ(up.requests(), 1);
  close(fd);
}

TEST(ProxyHostile, DeniesTheSecondOfTwoPipelinedRequestsInOneSegment) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  gateway gw(up.port(), 1, {}, deny_clear_session(counters));
  int fd = connect_to(gw.port());
  send_all(
      fd,
      post(call_body) +
          post(
              R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"clear_session"}})"));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message first = parse_message(buf);
  buf.erase(0, first.total);
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message second = parse_message(buf);
  EXPECT_EQ(first.body.find("POLICY DENIED"), std::string::npos);
  EXPECT_NE(second.body.find("[POLICY DENIED]"), std::string::npos) << second.body;
  EXPECT_EQ(up.requests(), 1);
  close(fd);
}

TEST(ProxyHostile, AnswersARequestPipelinedBehindA404OnTheSameConnection) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  // Both requests in one segment: the second is already buffered when the first is answered.
  send_all(fd, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n" + post(call_body));
  std::string buf;
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }));
  message first = parse_message(buf);
  buf.erase(0, first.total);
  ASSERT_TRUE(read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; }))
      << buf;
  EXPECT_EQ(first.head.substr(0, 12), "HTTP/1.1 404");
  EXPECT_EQ(parse_message(buf).head.substr(0, 15), "HTTP/1.1 200 OK") << buf;
  EXPECT_EQ(up.requests(), 1);
  close(fd);
}

TEST(ProxyHostile, AnswersAPostWithoutABodyWithParseError) {
  scripted_upstream up(answer_json);
  gateway gw(up.port());
  int fd = connect_to(gw.port());
  message m = round_trip(fd,
                         "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Accept: application/json, text/event-stream\r\n\r\n");
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 400");
  EXPECT_NE(m.body.find("-32700"), std::string::npos) << m.body;
  EXPECT_EQ(up.requests(), 0);
  close(fd);
}

TEST(ProxyHostile, StatesTheExactLengthOfThe503OverTheConnectionLimit) {
  scripted_upstream up(answer_json);
  gateway gw(up.port(), 1, [](proxy_config& c) { c.max_connections = 1; });
  int a = connect_to(gw.port());
  ASSERT_TRUE(round_trip(a, post(call_body)).complete);
  int b = connect_to(gw.port());
  std::string buf;
  read_until(b, buf, [](const std::string&) { return false; });  // until the gateway closes
  message m = parse_message(buf);
  ASSERT_TRUE(m.complete) << buf;
  EXPECT_EQ(m.head.substr(0, 12), "HTTP/1.1 503");
  EXPECT_EQ(m.total, buf.size()) << "Content-Length must match the body";
  EXPECT_EQ(m.body.back(), '}');
  close(b);
  close(a);
}

TEST(ProxyHostile, AuditsASlowlorisHeadAsARequestOfItsOwn) {
  scripted_upstream up(answer_json);
  policy::counter_store counters;
  auto gate = deny_clear_session(counters);
  constexpr std::string_view partial_head = "POST /mcp HTTP/1.1\r\nHost: x\r\n";
  std::string path = ::testing::TempDir() + "proxy_audit_slowloris.log";
  std::remove(path.c_str());
  {
    gateway gw(
        up.port(), 1,
        [&](proxy_config& c) {
          c.audit.file = core::log_file::open(path).file;
          c.header_timeout_ms = 200;
        },
        gate);
    int fd = connect_to(gw.port());
    ASSERT_TRUE(round_trip(fd, post(call_body, "Mcp-Session-Id: " +
                                                   gw.session_token("s1", "anonymous") + "\r\n"))
                    .complete);
    send_all(fd, partial_head);  // and never the rest
    std::string buf;
    read_until(fd, buf, [](const std::string&) { return false; });  // until the gateway closes
    EXPECT_EQ(buf.substr(0, 12), "HTTP/1.1 408") << buf;
    close(fd);
  }
  std::vector<std::string> lines = read_lines(path);
  ASSERT_EQ(lines.size(), 2u);
  simdjson::dom::parser parser;
  simdjson::dom::element allowed = parser.parse(lines[0]);
  int64_t allowed_req = allowed["req"].get_int64().value_unsafe();
  EXPECT_EQ(std::string_view(allowed["identity"].get_string().value_unsafe()), "anonymous");
  EXPECT_EQ(std::string_view(allowed["session"].get_string().value_unsafe()), "s1");
  simdjson::dom::element timed_out = parser.parse(lines[1]);
  EXPECT_EQ(std::string_view(timed_out["decision"].get_string().value_unsafe()), "invalid");
  EXPECT_EQ(timed_out["req"].get_int64().value_unsafe(), allowed_req + 1) << lines[1];
  EXPECT_EQ(timed_out["bytes_in"].get_int64().value_unsafe(), int64_t(partial_head.size()))
      << lines[1];
  // Neither the identity nor the session of the request before: this one never said who it is.
  EXPECT_TRUE(timed_out["identity"].is_null()) << lines[1];
  EXPECT_TRUE(timed_out["session"].is_null()) << lines[1];
  EXPECT_EQ(up.requests(), 1);
}

// A tmpfs of 256 KiB, mostly filled by a ballast file, so the audit log runs out of space
// after a few hundred lines. Needs root (tests run as root here and in CI); skips otherwise.
class full_disk {
 public:
  full_disk() : dir_(::testing::TempDir() + "mcpgate-full-" + std::to_string(getpid())) {
    std::string mkdir = "mkdir -p " + dir_;
    std::string mount = "mount -t tmpfs -o size=256k tmpfs " + dir_ + " 2>/dev/null";
    mounted_ = std::system(mkdir.c_str()) == 0 && std::system(mount.c_str()) == 0;
    if (!mounted_) return;
    std::ofstream ballast(dir_ + "/ballast", std::ios::binary);
    std::string block(1024, 'x');
    for (int i = 0; i < 224; ++i) ballast << block;
  }
  ~full_disk() {
    if (mounted_) std::system(("umount " + dir_ + " && rmdir " + dir_).c_str());
  }
  bool mounted() const { return mounted_; }
  std::string log_path() const { return dir_ + "/audit.log"; }
  void free_space() { std::remove((dir_ + "/ballast").c_str()); }

 private:
  std::string dir_;
  bool mounted_ = false;
};

void check_full_disk(core::failure_policy on_failure) {
  full_disk disk;
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
  scripted_upstream up(answer_json);
  std::vector<int64_t> answered;  // ids the client saw answered 200 by the upstream
  bool refused = false;
  std::string text;
  std::vector<std::string> lines;
  {
    gateway gw(up.port(), 1, [&](proxy_config& c) {
      c.audit.file = core::log_file::open(disk.log_path()).file;
      c.audit.arguments = arguments_mode::full;
      c.audit.writer.on_failure = on_failure;
      c.audit.writer.flush_interval_ns = 5'000'000;
      c.audit.writer.retry_interval_ns = 5'000'000;
    });
    int fd = connect_to(gw.port());
    std::string padding(400, 'p');  // about 600 bytes a line: the disk fills within ~60 calls
    auto call = [&](int64_t id) {
      return round_trip(
          fd, post(R"({"jsonrpc":"2.0","id":)" + std::to_string(id) +
                   R"(,"method":"tools/call","params":{"name":"echo","arguments":{"p":")" +
                   padding + R"("}}})"));
    };
    int64_t id = 0;
    auto end = std::chrono::steady_clock::now() + deadline;
    // Until the writer reports the failure (fail_closed: calls refused) or, for fail_open, past
    // the point where the disk is full (32 KiB free hold about 50 lines; 100 lines, 64 KiB, fit
    // once the ballast is gone).
    while (std::chrono::steady_clock::now() < end && id < 100) {
      message m = call(++id);
      if (m.head.substr(0, 12) == "HTTP/1.1 503") {
        EXPECT_NE(m.body.find("-32060"), std::string::npos) << m.body;
        refused = true;
        break;
      }
      if (m.head.substr(0, 15) == "HTTP/1.1 200 OK") answered.push_back(id);
    }
    // The writer flushes every 5 ms: in a fast build the calls above can all be answered before
    // it has tried to write past the free space. Wait (with the deadline) until it has failed,
    // and under fail_closed until a call is refused, before giving the space back.
    auto failures = [&] {
      std::string t = gw.metrics_text();
      size_t at = t.find("\nmcpgate_audit_failures_total ");
      return at == std::string::npos ? 0ull : std::stoull(t.substr(at + 30));
    };
    while (failures() == 0 && std::chrono::steady_clock::now() < end) std::this_thread::yield();
    while (on_failure == core::failure_policy::fail_closed && !refused &&
           std::chrono::steady_clock::now() < end) {
      message m = call(++id);
      refused = m.head.substr(0, 12) == "HTTP/1.1 503";
      if (m.head.substr(0, 15) == "HTTP/1.1 200 OK") answered.push_back(id);
    }
    disk.free_space();
    // Writing works again: calls are served and the held lines are written.
    bool served = false;
    while (!served && std::chrono::steady_clock::now() < end) {
      message m = call(++id);
      served = m.head.substr(0, 15) == "HTTP/1.1 200 OK";
      if (served) answered.push_back(id);
    }
    EXPECT_TRUE(served);
    close(fd);
    text = gw.metrics_text();
  }
  lines = read_lines(disk.log_path());
  if (on_failure == core::failure_policy::fail_closed)
    EXPECT_TRUE(refused) << "a full disk must stop calls under fail_closed";
  else
    EXPECT_FALSE(refused) << "fail_open keeps serving";
  // The disk did fill: the writer counted failed writes.
  size_t at = text.find("\nmcpgate_audit_failures_total ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GT(std::stoull(text.substr(at + 30)), 0u) << text.substr(at, 60);
  // Every call the client saw served has its line, whole, exactly once.
  simdjson::dom::parser parser;
  std::map<int64_t, int> count;
  for (const std::string& line : lines) {
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(line).get(doc)) << "torn line: " << line;
    count[doc["id"].get_int64().value_unsafe()]++;
  }
  for (int64_t id : answered) EXPECT_EQ(count[id], 1) << "id " << id;
}

TEST(Proxy, FailClosedRefusesCallsWhileTheAuditDiskIsFullAndLosesNoLine) {
  check_full_disk(core::failure_policy::fail_closed);
}

TEST(Proxy, FailOpenKeepsServingWhileTheAuditDiskIsFullAndLosesNoLine) {
  check_full_disk(core::failure_policy::fail_open);
}

}  // namespace
}  // namespace mcpgate::net
