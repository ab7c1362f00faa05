#include "net/admin_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "net/http_parser.h"
#include "net/replies.h"

namespace mcpgate::net {
namespace {

struct response {
  int status = 200;
  std::string_view content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string_view extra_headers;  // complete "Name: value\r\n" lines
};

std::string serialize(const response& r) {
  std::string out;
  append_status_line(out, r.status);
  out += "Content-Type: ";
  out += r.content_type;
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  out += r.extra_headers;
  out += "\r\n";
  out += r.body;
  return out;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

response method_not_allowed(std::string_view allow) {
  response r{405, "text/plain; charset=utf-8", "method not allowed\n", {}};
  r.extra_headers = allow;
  return r;
}

}  // namespace

admin_server::start_result admin_server::start(const admin_options& options,
                                               admin_handlers handlers) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(options.port);
  std::string where = options.host + ":" + port_text;
  int rc = getaddrinfo(options.host.c_str(), port_text.c_str(), &hints, &found);
  if (rc != 0) return {nullptr, "admin listener " + where + ": " + gai_strerror(rc)};
  int fd = -1;
  std::string error;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    // SO_REUSEADDR for quick restarts; deliberately not SO_REUSEPORT, so that a second gateway
    // on the same admin port fails loudly instead of splitting the scrapes.
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return {nullptr, "admin listener " + where + ": " + error};
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  uint16_t port = bound.ss_family == AF_INET6
                      ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return {nullptr, std::string("admin listener: eventfd: ") + std::strerror(errno)};
  }
  std::unique_ptr<admin_server> server(
      new admin_server(options, std::move(handlers), fd, wake, port));
  server->thread_ = std::thread([s = server.get()] { s->run(); });
  return {std::move(server), {}};
}

admin_server::admin_server(admin_options options, admin_handlers handlers, int listen_fd,
                           int wake_fd, uint16_t port)
    : options_(std::move(options)),
      handlers_(std::move(handlers)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port) {}

admin_server::~admin_server() {
  stop();
}

void admin_server::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

void admin_server::run() {
  pthread_setname_np(pthread_self(), "mcpgate-admin");
  while (!stopping_.load(std::memory_order_acquire)) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents) break;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // the peer went away, or out of fds: try again on the next event
    serve(fd);
    close(fd);
  }
}

// Reads one request (head and any Content-Length body), answers it, and returns; the caller
// closes. Every wait also watches wake_fd_ and the deadline.
void admin_server::serve(int fd) {
  const int64_t deadline = now_ms() + options_.request_timeout_ms;
  auto wait_for = [&](short events) {
    int64_t left = deadline - now_ms();
    if (left <= 0) return false;
    pollfd fds[2] = {{fd, events, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(left)) <= 0) return false;
    if (fds[1].revents) return false;
    return (fds[0].revents & (events | POLLHUP | POLLERR)) != 0;
  };
  auto send_all = [&](std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!wait_for(POLLOUT)) return;
      } else {
        return;
      }
    }
  };

  http_limits limits;
  limits.max_head = options_.max_request_bytes;
  limits.max_body = options_.max_request_bytes;
  std::string in;
  size_t resume = 0;
  for (;;) {
    request_head head = parse_request_head(in, limits, resume);
    if (head.status() == parse_status::error) {
      response r{head.error_status(),
                 "text/plain; charset=utf-8",
                 std::string(head.error_reason()) + "\n",
                 {}};
      send_all(serialize(r));
      return;
    }
    if (head.status() == parse_status::complete) {
      if (head.framing() == body_framing::chunked) {
        send_all(serialize({411, "text/plain; charset=utf-8", "send a Content-Length\n", {}}));
        return;
      }
      size_t need = head.head_length() +
                    (head.framing() == body_framing::content_length ? head.content_length() : 0);
      while (in.size() < need) {
        if (!wait_for(POLLIN)) return;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0) return;
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) continue;
          return;
        }
        in.append(buf, static_cast<size_t>(n));
      }
      std::string reply = respond(head.method_text(), head.target());
      send_all(head.method() == http_method::head ? reply.substr(0, reply.find("\r\n\r\n") + 4)
                                                  : reply);
      return;
    }
    resume = head.resume_offset();
    if (!wait_for(POLLIN)) return;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) return;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return;
    }
    in.append(buf, static_cast<size_t>(n));
  }
}

std::string admin_server::respond(std::string_view method, std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  bool get = method == "GET" || method == "HEAD";
  bool post = method == "POST";
  response r;
  if (path == "/metrics" && handlers_.metrics) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = handlers_.metrics();
  } else if (path == "/healthz") {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.body = "ok\n";
  } else if (path == "/readyz" && handlers_.ready) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    readiness state = handlers_.ready();
    std::string reasons;
    auto reason = [&](bool ok, const char* why) {
      if (ok) return;
      if (!reasons.empty()) reasons += "; ";
      reasons += why;
    };
    reason(state.listening, "not listening");
    reason(state.upstream_reachable, "upstream unreachable");
    reason(state.policy_loaded, "policy not loaded");
    r.status = reasons.empty() ? 200 : 503;
    r.body = reasons.empty() ? "ready\n" : "not ready: " + reasons + "\n";
  } else if (path == "/admin/policy" && handlers_.policy) {
    if (!get) return serialize(method_not_allowed("Allow: GET, HEAD\r\n"));
    r.content_type = "application/json";
    r.body = handlers_.policy();
  } else if (path == "/admin/reopen" && handlers_.reopen) {
    if (!post) return serialize(method_not_allowed("Allow: POST\r\n"));
    std::string error = handlers_.reopen();
    r.status = error.empty() ? 200 : 500;
    r.body = error.empty() ? "reopened\n" : error + "\n";
  } else {
    r.status = 404;
    r.body = "not found\n";
  }
  return serialize(r);
}

}  // namespace mcpgate::net
