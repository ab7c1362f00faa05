// fast_upstream: an MCP Streamable HTTP server that does nothing, fast, so that benchmarks
// measure what sits in front of it. One thread per --threads, each with its own io_uring and an
// SO_REUSEPORT listener on the same port. It answers initialize (with an Mcp-Session-Id),
// notifications (202), tools/list (a fixed list) and every other request with a one-line text
// result carrying the request's id byte for byte; GET opens an SSE stream that stays open and
// quiet until the client leaves (what the gateway's memory test holds open).
//
// Prints "fast_upstream: listening on 127.0.0.1:PORT" on stderr once every thread accepts.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <simdjson.h>
#include <cxxopts.hpp>

#include "core/ring.h"
#include "net/http/parser.h"

namespace {

using namespace mcpgate;

std::atomic<bool> stopping{false};

// user_data: op in the high 32 bits, connection slot in the low 32 (accept uses no slot). A
// connection has one operation in flight at a time, so it is closed from its own completion.
enum class op : std::uint32_t { accept = 1, recv, send };
constexpr std::uint64_t pack(op o, std::uint32_t slot) {
  return (std::uint64_t{static_cast<std::uint32_t>(o)} << 32) | slot;
}

constexpr std::size_t recv_bytes = 16 * 1024;

struct connection {
  int fd = -1;
  std::string in;
  std::string out;
  std::size_t out_offset = 0;
  bool close_after_send = false;
  bool holding_stream = false;
  std::unique_ptr<char[]> buffer = std::make_unique<char[]>(recv_bytes);
};

struct options {
  bool sse = false;
  std::size_t result_bytes = 0;
};

class server {
 public:
  server(int listen_fd, const options& o) : listen_fd_(listen_fd), options_(o) {}

  void run() {
    core::ring ring(4096);
    ring_ = &ring;
    arm_accept();
    while (!stopping.load(std::memory_order_relaxed)) {
      __kernel_timespec wait{.tv_sec = 0, .tv_nsec = 200'000'000};
      io_uring_cqe* cqe = nullptr;
      io_uring_submit_and_wait_timeout(ring.raw(), &cqe, 1, &wait, nullptr);
      ring.drain([&](const io_uring_cqe& c) { on_completion(c); });
    }
    for (auto& c : conns_)
      if (c && c->fd >= 0) ::close(c->fd);
    ring_ = nullptr;
  }

 private:
  void arm_accept() {
    auto* sqe = ring_->sqe();
    io_uring_prep_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, pack(op::accept, 0));
  }

  void arm_recv(std::uint32_t slot) {
    auto& c = *conns_[slot];
    auto* sqe = ring_->sqe();
    io_uring_prep_recv(sqe, c.fd, c.buffer.get(), recv_bytes, 0);
    io_uring_sqe_set_data64(sqe, pack(op::recv, slot));
  }

  void arm_send(std::uint32_t slot) {
    auto& c = *conns_[slot];
    auto* sqe = ring_->sqe();
    io_uring_prep_send(sqe, c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, pack(op::send, slot));
  }

  void close_slot(std::uint32_t slot) {
    ::close(conns_[slot]->fd);
    conns_[slot].reset();
    free_.push_back(slot);
  }

  void on_completion(const io_uring_cqe& cqe) {
    auto o = static_cast<op>(cqe.user_data >> 32);
    auto slot = static_cast<std::uint32_t>(cqe.user_data & 0xffffffffu);
    if (o == op::accept) {
      if (cqe.res >= 0) {
        int one = 1;
        ::setsockopt(cqe.res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        std::uint32_t s;
        if (!free_.empty()) {
          s = free_.back();
          free_.pop_back();
        } else {
          s = static_cast<std::uint32_t>(conns_.size());
          conns_.emplace_back();
        }
        conns_[s] = std::make_unique<connection>();
        conns_[s]->fd = cqe.res;
        arm_recv(s);
      }
      if (!stopping.load(std::memory_order_relaxed)) arm_accept();
      return;
    }
    auto& c = *conns_[slot];
    if (o == op::recv) {
      if (cqe.res <= 0) return close_slot(slot);
      // A held SSE stream ignores what the client sends; it only waits for the close.
      if (c.holding_stream) return arm_recv(slot);
      c.in.append(c.buffer.get(), static_cast<std::size_t>(cqe.res));
      serve(c);
      if (!c.out.empty()) return arm_send(slot);
      return arm_recv(slot);
    }
    // op::send
    if (cqe.res < 0) return close_slot(slot);
    c.out_offset += static_cast<std::size_t>(cqe.res);
    if (c.out_offset < c.out.size()) return arm_send(slot);
    c.out.clear();
    c.out_offset = 0;
    if (c.close_after_send) return close_slot(slot);
    arm_recv(slot);
  }

  // Answers every complete request in c.in (pipelined ones in order) into c.out.
  void serve(connection& c) {
    std::size_t used = 0;
    while (!c.close_after_send && !c.holding_stream) {
      std::string_view rest = std::string_view(c.in).substr(used);
      auto head = net::parse_request_head(rest, limits_);
      if (head.status() == net::parse_status::incomplete) break;
      if (head.status() == net::parse_status::error ||
          head.framing() == net::body_framing::chunked) {
        reply(c, 400, "application/json",
              R"({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad request"}})", "");
        c.close_after_send = true;
        break;
      }
      std::uint64_t body_length =
          head.framing() == net::body_framing::content_length ? head.content_length() : 0;
      if (rest.size() < head.head_length() + body_length) break;
      std::string_view body = rest.substr(head.head_length(), body_length);
      used += head.head_length() + body_length;
      if (head.method() == net::http_method::get) {
        c.out +=
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n\r\n9\r\n: open\n\n\r\n";
        c.holding_stream = true;
      } else if (head.method() == net::http_method::delete_) {
        reply(c, 200, "", "", "");
      } else {
        answer_post(c, body);
      }
      if (!head.keep_alive()) c.close_after_send = true;
    }
    c.in.erase(0, used);
  }

  void answer_post(connection& c, std::string_view body) {
    namespace od = simdjson::ondemand;
    scratch_.assign(body);
    scratch_.append(simdjson::SIMDJSON_PADDING, '\0');
    od::document doc;
    od::object message;
    std::string_view id, method;
    bool has_id = false;
    if (parser_.iterate(scratch_.data(), body.size(), scratch_.size()).get(doc) ||
        doc.get_object().get(message)) {
      reply(c, 400, "application/json",
            R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}})", "");
      return;
    }
    for (auto f : message) {
      od::field field;
      std::string_view key;
      if (std::move(f).get(field) || field.unescaped_key().get(key)) break;
      if (key == "id") {
        id = field.value().raw_json_token();
        {
          while (!id.empty() &&
                 (id.back() == ' ' || id.back() == '\n' || id.back() == '\r' || id.back() == '\t'))
            id.remove_suffix(1);
          has_id = true;
        }
      } else if (key == "method") {
        // The id is copied before the string view of the method could be invalidated.
        if (field.value().get_string().get(method)) method = {};
      }
    }
    if (!has_id) {
      reply(c, 202, "", "", "");
      return;
    }
    std::string json = R"({"jsonrpc":"2.0","id":)";
    json.append(id);
    std::string session;
    if (method == "initialize") {
      json +=
          R"(,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"fast_upstream","version":"1"}}})";
      session = "fast-" + std::to_string(++sessions_);
    } else if (method == "tools/list") {
      json += R"(,"result":{"tools":[)";
      const char* names[] = {"read_file", "write_file", "list_directory", "clear_session"};
      for (std::size_t i = 0; i < std::size(names); ++i) {
        if (i) json += ',';
        json += R"({"name":")";
        json += names[i];
        json += R"(","inputSchema":{"type":"object"}})";
      }
      json += "]}}";
    } else {
      json += R"(,"result":{"content":[{"type":"text","text":"ok)";
      json.append(options_.result_bytes, 'x');
      json += R"("}]}})";
    }
    if (options_.sse && method != "initialize") {
      reply(c, 200, "text/event-stream", "event: message\ndata: " + json + "\n\n", session);
    } else {
      reply(c, 200, "application/json", json, session);
    }
  }

  void reply(connection& c, int status, std::string_view type, std::string_view body,
             std::string_view session) {
    c.out += status == 200   ? "HTTP/1.1 200 OK\r\n"
             : status == 202 ? "HTTP/1.1 202 Accepted\r\n"
                             : "HTTP/1.1 400 Bad Request\r\n";
    if (!type.empty()) c.out.append("Content-Type: ").append(type).append("\r\n");
    if (!session.empty()) c.out.append("Mcp-Session-Id: ").append(session).append("\r\n");
    c.out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    c.out.append(body);
  }

  int listen_fd_;
  options options_;
  core::ring* ring_ = nullptr;
  std::vector<std::unique_ptr<connection>> conns_;
  std::vector<std::uint32_t> free_;
  net::http_limits limits_;
  simdjson::ondemand::parser parser_;
  std::string scratch_;
  std::uint64_t sessions_ = 0;
};

int open_listener(const std::string& host, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Every thread listens on the same port; the kernel spreads connections across them.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 4096) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("fast_upstream", "A do-nothing MCP Streamable HTTP server for benchmarks");
  cli.add_options()("listen", "IPV4:PORT (port 0 picks one)",
                    cxxopts::value<std::string>()->default_value("127.0.0.1:0"))(
      "threads", "threads, each with its own ring and listener",
      cxxopts::value<unsigned>()->default_value("1"))(
      "sse", "answer requests other than initialize as text/event-stream")(
      "result-bytes", "extra bytes in each tool result's text",
      cxxopts::value<std::size_t>()->default_value("0"))("h,help", "this help");
  std::string host;
  std::uint16_t port = 0;
  unsigned threads = 1;
  options o;
  try {
    auto args = cli.parse(argc, argv);
    if (args.count("help")) {
      std::cout << cli.help() << "\n";
      return 0;
    }
    auto listen = args["listen"].as<std::string>();
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("--listen wants IPV4:PORT");
    host = listen.substr(0, colon);
    port = static_cast<std::uint16_t>(std::stoul(listen.substr(colon + 1)));
    threads = std::max(1u, args["threads"].as<unsigned>());
    o.sse = args.count("sse") > 0;
    o.result_bytes = args["result-bytes"].as<std::size_t>();
  } catch (const std::exception& e) {
    std::cerr << "fast_upstream: " << e.what() << "\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::vector<int> fds;
  for (unsigned t = 0; t < threads; ++t) {
    int fd = open_listener(host, port);
    if (fd < 0) {
      std::cerr << "fast_upstream: cannot listen on " << host << ":" << port << ": "
                << std::strerror(errno) << "\n";
      return 1;
    }
    if (port == 0) {
      sockaddr_in bound{};
      socklen_t len = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
      port = ntohs(bound.sin_port);
    }
    fds.push_back(fd);
  }
  std::vector<std::thread> workers;
  std::atomic<unsigned> failed{0};
  for (int fd : fds)
    workers.emplace_back([fd, &o, &failed] {
      try {
        server(fd, o).run();
      } catch (const std::exception& e) {
        std::cerr << "fast_upstream: " << e.what() << "\n";
        failed.fetch_add(1);
        stopping.store(true);
        ::kill(::getpid(), SIGTERM);
      }
    });
  std::cerr << "fast_upstream: listening on " << host << ":" << port << std::endl;
  int sig = 0;
  sigwait(&stop_signals, &sig);
  stopping.store(true);
  for (auto& w : workers) w.join();
  for (int fd : fds) ::close(fd);
  return failed.load() == 0 ? 0 : 1;
}
