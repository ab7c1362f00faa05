#pragma once

// The harness of the in-process shard tests: real shards on real sockets over loopback, in
// front of a scripted upstream whose behaviour each test chooses (answer, refuse, reset,
// stream), and the raw HTTP a client sends.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

#include "net/exchange/policy_gate.h"
#include "net/exchange/shard.h"
#include "policy/access_config.h"
#include "policy/document.h"

namespace mcpgate::net::testing {

using namespace std::chrono_literals;
inline constexpr auto deadline = 10s;

inline int connect_to(uint16_t port) {
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

inline void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads into buf until pred(buf) holds, the peer closes, or the deadline passes.
inline bool read_until(int fd, std::string& buf,
                       const std::function<bool(const std::string&)>& pred) {
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

inline size_t header_value_size(const std::string& head, const std::string& lower_name,
                                std::string& out) {
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

inline message parse_message(const std::string& buf, bool bodyless = false) {
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

inline bool answer_json(int fd, const message& request, int) {
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
  gateway(uint16_t upstream_port, unsigned shards = 1,
          std::function<void(gateway_config&)> tune = {},
          std::shared_ptr<const gate_config> gate = std::make_shared<const gate_config>(),
          std::function<stage_list()> extra_stages = {})
      : group_(shards, 256, 5'000'000) {
    auto cfg = std::make_shared<gateway_config>();
    cfg->listen = parse_host_port("127.0.0.1:0", "listen");
    cfg->serve_one(
        upstream_target::http(
            "default", parse_http_url("http://127.0.0.1:" + std::to_string(upstream_port) + "/mcp",
                                      "upstream")),
        "/mcp");
    cfg->allowed_hosts = {"gateway.test", "x"};  // the Hosts requests here name
    cfg->recv_buffers = 64;
    cfg->drain_timeout_ms = 2000;
    cfg->gate = gate;
    if (tune) tune(*cfg);
    session_key_ = cfg->session_seal_key;
    std::vector<int> fds = listen_group(cfg->listen, shards, 128);
    port_ = bound_port(fds[0]);
    reinterpret_cast<sockaddr_in&>(cfg->listen.addr).sin_port = htons(port_);
    for (unsigned i = 0; i < shards; ++i) stats_.push_back(std::make_unique<shard_stats>());
    metrics_ = std::make_unique<metrics_registry>(shards, nullptr);
    std::string error = group_.start([&](unsigned i) {
      return std::make_unique<proxy_shard>(cfg, fds[i], *stats_[i], metrics_.get(),
                                           extra_stages ? extra_stages() : stage_list{});
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
  // A message to shard `i`, from the control thread's queue (this test's thread).
  void post(unsigned i, const core::message& m) {
    while (!group_.inbox(i).post(group_.size(), m)) std::this_thread::yield();
  }
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

inline std::string post(std::string_view body, std::string_view extra_headers = {}) {
  return "POST /mcp HTTP/1.1\r\nHost: gateway.test\r\nContent-Type: application/json\r\n"
         "Accept: application/json, text/event-stream\r\n" +
         std::string(extra_headers) + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + std::string(body);
}

inline constexpr std::string_view call_body =
    R"({"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"name":"echo","arguments":{"x":1}}})";

inline message round_trip(int fd, std::string_view request) {
  send_all(fd, request);
  std::string buf;
  read_until(fd, buf, [](const std::string& b) { return parse_message(b).complete; });
  return parse_message(buf);
}

inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The seed policy's deny rule in front of the scripted upstream: what hostile clients face.
inline std::shared_ptr<const gate_config> deny_clear_session(policy::counter_store& counters) {
  auto doc = std::make_shared<const policy::document>(policy::parse_document(
      R"({"clear_session":{"deny_if":[{"conditions":[],"on_deny":"Blocked by default. Requires approval."}]}})",
      "seed.json"));
  return std::make_shared<const policy_gate_config>(policy::make_access_config(doc, counters));
}

}  // namespace mcpgate::net::testing
